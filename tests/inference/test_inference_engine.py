"""InferenceEngine: loads any model directory, bounded session store, micro-batching, fallbacks, and
no torch / scikit-learn in the serving process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import hub_sessions
from precache.history import MemoryHistories
from precache.inference import InferenceEngine
from precache.models.base import ModelFileError

ROOT = Path(__file__).resolve().parents[2]




@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny trained attention model (int8-quantized ONNX) and a Markov model, saved (training imports
    torch here, in the test process only; the engine is checked for torch in a subprocess)."""
    import torch

    from precache.models.attention import AttentionPredictor
    from precache.models.markov import MarkovPredictor

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("engine-models")
    sessions = hub_sessions(1500)
    attention = AttentionPredictor(
        epochs=5, batch_size=32, d_model=32, max_len=8, lr=5e-3, dropout=0.0, threads=1, int8=True
    )
    attention.fit(sessions[:1200], sessions[1200:])
    markov = MarkovPredictor()
    markov.fit(sessions[:1200])
    return {"attention": attention.save(root / "attention"), "markov": markov.save(root / "markov")}


def test_engine_predicts_through_onnx_without_torch_or_sklearn(model_dirs: dict[str, Path]) -> None:
    code = f"""
import json, sys
from precache.inference import InferenceEngine
out = {{}}
for kind, path in {json.dumps({k: str(v) for k, v in model_dirs.items()})}.items():
    engine = InferenceEngine.load(path)
    out[kind] = engine.predict(["/entry0", "/a3", "/hub"], 3)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sklearn"))
print(json.dumps({{"predictions": out, "heavy": heavy}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["heavy"] == []
    assert json.loads((model_dirs["attention"] / "attention.json").read_text())["quantized"] is True
    assert data["predictions"]["attention"][0][0] == "/b3"  # it learned the second-order pattern
    assert len(data["predictions"]["markov"]) == 3


def test_session_store_is_lru_and_caps_history() -> None:
    store = MemoryHistories(max_sessions=2, max_history=3)
    for page in ["/1", "/2", "/3", "/4"]:
        store.add("s1", [page])
    assert store.read("s1") == ["/2", "/3", "/4"]
    store.add("s2", ["/x"])
    store.read("s1")  # s1 is now the most recently used
    store.add("s3", ["/y"])  # evicts s2
    assert "s2" not in store and "s1" in store and "s3" in store and store.evicted == 1
    with pytest.raises(ValueError):
        MemoryHistories(max_sessions=0)


def test_sessions_and_fallbacks(model_dirs: dict[str, Path]) -> None:
    engine = InferenceEngine.load(model_dirs["attention"], max_sessions=10, max_history=5)
    engine.observe("u", "/entry1")
    engine.observe("u", "/a2")
    engine.observe("u", "/hub")
    assert engine.predict_session("u", 1)[0][0] == "/b2"
    popular = engine.predict([], 3)
    assert popular == engine.predict_session("nobody", 3) == engine.predict(["/unknown", "/pages"], 3)
    assert engine.stats.empty_history_fallbacks == 2 and engine.stats.unknown_history_fallbacks == 1
    assert popular[0][0] == "/hub"
    assert len(engine.predict(["/a1"], 10**6)) == 15  # capped at the vocabulary (15 pages)
    for bad in (0, -1):
        with pytest.raises(ValueError):
            engine.predict(["/a1"], bad)


async def test_concurrent_requests_are_micro_batched(model_dirs: dict[str, Path]) -> None:
    engine = InferenceEngine.load(model_dirs["attention"], max_batch=16, max_wait_us=2000)
    histories = [["/entry0", f"/a{i % 6}", "/hub"] for i in range(40)]
    try:
        results = await asyncio.gather(*(engine.submit(h, 2) for h in histories))
    finally:
        await engine.aclose()
    assert [r[0][0] for r in results] == [f"/b{i % 6}" for i in range(40)]
    assert engine.stats.largest_batch == 16  # 40 concurrent requests went in batches of at most 16
    assert engine.stats.batches == 3  # 16 + 16 + 8, not 40 calls
    assert results == engine.predict_batch(histories, 2)


async def test_mixed_k_and_observe_and_predict(model_dirs: dict[str, Path]) -> None:
    engine = InferenceEngine.load(model_dirs["markov"])
    try:
        small, large = await asyncio.gather(engine.submit(["/a1"], 1), engine.submit(["/a1"], 5))
        await engine.observe_and_predict("s", "/entry0", 2)
        after = await engine.observe_and_predict("s", "/a4", 2)
        with pytest.raises(ValueError):
            await engine.submit(["/a1"], 0)
    finally:
        await engine.aclose()
    assert len(small) == 1 and len(large) == 5 and small[0] == large[0]
    assert after[0][0] == "/hub" and engine.sessions.read("s") == ["/entry0", "/a4"]


def test_bad_model_directories_are_refused(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        InferenceEngine.load(tmp_path / "absent")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model_dirs["attention"].iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "attention.json").write_text('{"temperature": 0.5, "max_len": 8, "attention_format": 1}')
    with pytest.raises(ModelFileError, match="sha256"):
        InferenceEngine.load(broken)


def test_batch_one_latency_is_sub_millisecond(model_dirs: dict[str, Path]) -> None:
    """A loose in-test bound (shared CPU); the benchmark measures the real p99."""
    engine = InferenceEngine.load(model_dirs["attention"])
    history = ["/entry0", "/a1", "/hub"]
    for _ in range(20):
        engine.predict(history, 10)
    times = []
    for _ in range(300):
        started = time.perf_counter()
        engine.predict(history, 10)
        times.append(time.perf_counter() - started)
    times.sort()
    assert times[len(times) // 2] < 0.002
