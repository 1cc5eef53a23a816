"""The attention predictor: learns history beyond the last page, exports to ONNX with parity, calibrates,
saves/loads with checksums, and handles bad input."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shared_file
from precache.evaluation import evaluate, time_split
from precache.models import build_predictor, load_predictor
from precache.models.attention import AttentionPredictor
from precache.models.attention.export import quantize_int8
from precache.models.attention.features import MarkovTerm, PageIndex, build_segments
from precache.models.attention.network import NetworkConfig, PageModel
from precache.models.attention.runtime import AttentionRuntime
from precache.models.attention.train import make_batch
from precache.models.base import ModelFileError
from precache.models.markov import MarkovPredictor
from precache.traces import read_sessions
from precache.traces.model import Session

torch.set_num_threads(2)


def order2_sessions(n: int, seed: int = 0) -> list[Session]:
    """Sessions where the page after ``/hub`` depends on the page *before* it: ``/a_j -> /hub -> /b_j``.
    A first-order model cannot tell which ``/b`` follows; a model of the history can."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        j = rng.randrange(8)
        pages = [f"/entry{rng.randrange(3)}", f"/a{j}", "/hub", f"/b{j}"]
        if rng.random() < 0.5:
            pages.append(f"/c{rng.randrange(4)}")
        out.append(Session(str(i), f"c{i}", float(i), pages))
    return out


@pytest.fixture(scope="module")
def synthetic_split() -> tuple[list[Session], list[Session], list[Session]]:
    sessions = order2_sessions(3000)
    return sessions[:2400], sessions[2400:2700], sessions[2700:]


TINY = {"threads": 1, "epochs": 6, "batch_size": 64, "d_model": 32, "max_len": 10, "lr": 5e-3, "dropout": 0.0}


@pytest.fixture(scope="module")
def synthetic_model(synthetic_split) -> AttentionPredictor:  # type: ignore[no-untyped-def]
    train, validation, _ = synthetic_split
    model = AttentionPredictor(**TINY)
    model.fit(train, validation)
    return model


def test_attention_learns_second_order_context_that_markov_cannot(synthetic_model, synthetic_split) -> None:  # type: ignore[no-untyped-def]
    _, _, test = synthetic_split
    hub_cases = [(s.pages[:3], s.pages[3]) for s in test]
    hits = sum(synthetic_model.predict(h, 1)[0][0] == t for h, t in hub_cases)
    markov = MarkovPredictor()
    markov.fit(synthetic_split[0])
    markov_hits = sum(markov.predict(h, 1)[0][0] == t for h, t in hub_cases)
    assert hits / len(hub_cases) >= 0.95
    assert markov_hits / len(hub_cases) <= 0.3  # 8 equally likely successors of /hub


def test_predictions_are_sorted_probabilities_and_k_is_checked(synthetic_model) -> None:  # type: ignore[no-untyped-def]
    ranked = synthetic_model.predict(["/a1", "/hub"], 5)
    probs = [p for _, p in ranked]
    assert len(ranked) == 5 and probs == sorted(probs, reverse=True)
    assert 0 < sum(probs) <= 1.0 + 1e-9
    assert len(synthetic_model.predict(["/a1"], 10_000)) == synthetic_model.vocabulary_size
    with pytest.raises(ValueError):
        synthetic_model.predict(["/a1"], 0)
    with pytest.raises(ValueError):
        synthetic_model.predict_batch([["/a1"]], -3)


def test_empty_and_unknown_histories_fall_back(synthetic_model) -> None:  # type: ignore[no-untyped-def]
    empty = synthetic_model.predict([], 3)
    assert empty and empty[0][0] == "/hub"  # the most frequent training page
    unknown = synthetic_model.predict(["/never-seen", "/also-unknown"], 3)
    assert len(unknown) == 3 and all(0 <= p <= 1 for _, p in unknown)
    batch = synthetic_model.predict_batch([[], ["/entry0", "/a2", "/hub"], ["/zzz"]], 2)
    assert batch[1][0][0] == "/b2"


def test_save_load_roundtrip_and_checksums(synthetic_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = synthetic_model.save(tmp_path / "m")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["kind"] == "attention" and set(manifest["files"]) == {
        "model.onnx", "vocabulary.json.gz", "attention.json", "tables.npz"}
    assert "calibration" in manifest["metrics"] and "validation" in manifest["metrics"]
    loaded = load_predictor(root)
    assert isinstance(loaded, AttentionPredictor)
    history = ["/entry1", "/a3", "/hub"]
    assert loaded.predict(history, 5) == synthetic_model.predict(history, 5)

    tampered = tmp_path / "t"
    shutil.copytree(root, tampered)
    data = bytearray((tampered / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (tampered / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        load_predictor(tampered)

    missing = tmp_path / "x"
    shutil.copytree(root, missing)
    (missing / "vocabulary.json.gz").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        AttentionPredictor.load(missing)

    newer = tmp_path / "n"
    shutil.copytree(root, newer)
    m = json.loads((newer / "manifest.json").read_text())
    m["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match="newer"):
        load_predictor(newer)


def test_registry_builds_attention() -> None:
    model = build_predictor("attention", epochs=1)
    assert isinstance(model, AttentionPredictor)
    with pytest.raises(ValueError):
        build_predictor("attention", no_such_option=1)


@pytest.mark.slow
def test_ten_thousand_page_model_is_under_one_megabyte_and_onnx_matches_torch(tmp_path: Path) -> None:
    """The size budget holds at 10,000 pages (int8 page table, narrowed width, pruned Markov table), and
    the served runtime (numpy tables + ONNX encoder) computes the torch model's logits."""
    torch.manual_seed(0)
    pages = [f"/s{i % 40}/p{i}" for i in range(10_000)]
    index = PageIndex(pages, build_segments(pages))
    config = AttentionPredictor().train_config()
    net_config = NetworkConfig(vocab_size=index.size, d_model=config.budget_d_model(index.size),
                               segments=len(index.segment_ids) + 1)
    assert net_config.d_model == 48
    model = PageModel(net_config, torch.from_numpy(index.segment_of), torch.zeros(index.size)).eval()
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(2, index.size, size=6)) for _ in range(20_000)]
    term = MarkovTerm.from_sequences(sequences, index.size, config.budget_markov_entries())
    predictor = AttentionPredictor()
    predictor.adopt(model, index, [2] * len(pages), list(index.segment_ids), term)
    root = predictor.save(tmp_path / "big")
    assert predictor.size_bytes(root) <= 1_000_000, predictor.size_bytes(root)
    loaded = AttentionPredictor.load(root)
    assert loaded.runtime is not None
    histories = [[pages[j] for j in rng.integers(0, len(pages), size=n)] for n in (1, 3, 9) for _ in range(4)]
    histories.append(["/s3/never-seen", pages[5]])  # an unknown page still brings its segment
    served = loaded.runtime.logits(loaded.runtime.encode(histories))
    reference = _torch_logits(model, term, index, histories)
    overlap, same = _top5_agreement(reference, served)
    assert overlap >= 0.95 and same >= 0.8, (overlap, same)  # int8 page table: close, not bit-equal
    fp32 = AttentionPredictor(int8=False)
    fp32.adopt(model, index, [2] * len(pages), list(index.segment_ids), term)
    assert fp32.runtime is not None
    exact = fp32.runtime.logits(fp32.runtime.encode(histories[:3]))
    assert np.all(np.isfinite(exact))


def _torch_logits(model: PageModel, term: MarkovTerm | None, index: PageIndex,
                  histories: list[list[str]]) -> np.ndarray:
    """The torch model's last-position logits with the Markov term (the reference for parity)."""
    rows = []
    for h in histories:
        ids, segs = index.encode(h[-model.config.max_len :])
        entry_ids, entry_segs = index.encode(h[:1])
        rows.append((ids, segs, entry_ids[0], entry_segs[0]))
    batch = make_batch(rows)
    with torch.no_grad():
        hidden = model.hidden(torch.from_numpy(batch.ids), torch.from_numpy(batch.segs),
                              torch.from_numpy(batch.entry_ids), torch.from_numpy(batch.entry_segs), last=True)
        markov = torch.from_numpy(term.rows(batch.ids[:, -1])) if term is not None else None
        return model.logits(hidden, markov).numpy()


@pytest.mark.realdata
def test_onnx_parity_with_torch_on_real_sessions(tmp_path: Path) -> None:
    sessions = read_sessions(shared_file("bms-webview/BMSVIEW1.txt.gz"))
    split = time_split(sessions[:12000])
    model = AttentionPredictor(epochs=3, batch_size=32, max_len=20, max_seconds=40, threads=1, int8=False)
    model.fit(split.train, split.validation)
    assert model.runtime is not None and model.tables is not None
    int8_path = quantize_int8(_write(tmp_path / "fp32.onnx", model.fp32_onnx_bytes), tmp_path / "int8.onnx")
    int8 = AttentionRuntime(int8_path, model.tables, np.ones(model.vocabulary_size), 1.0, 20)
    histories = [s.pages[:i][-20:] for s in split.test for i in range(1, len(s.pages))][:2000]
    reference = _torch_logits(model.net, model.tables.markov, model.runtime.index, histories)
    overlap32, same32 = _top5_agreement(reference, model.runtime.logits(model.runtime.encode(histories)))
    overlap8, same8 = _top5_agreement(reference, int8.logits(int8.encode(histories)))
    assert overlap32 >= 0.98 and same32 >= 0.93, (overlap32, same32)
    assert overlap8 >= 0.97 and same8 >= 0.9, (overlap8, same8)
    # the served model (calibrated, through onnxruntime) is a real next-page predictor on this trace
    scores = evaluate(model, split.test, max_transitions=3000)
    assert scores.hr5 > 0.25
    calibration = model.metrics["calibration"]
    applied = calibration["ece_after"] if calibration["applied_temperature"] != 1.0 else calibration["ece_before"]
    assert applied <= calibration["ece_before"]  # a temperature that does not help is not applied


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _top5_agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean top-5 overlap |A & B| / 5, and the share of rows whose top-5 sets are identical
    (PAD/OOV columns excluded)."""
    top_a = np.argsort(-a[:, 2:], axis=1)[:, :5]
    top_b = np.argsort(-b[:, 2:], axis=1)[:, :5]
    pairs = [(set(x), set(y)) for x, y in zip(top_a, top_b, strict=True)]
    return float(np.mean([len(x & y) / 5 for x, y in pairs])), float(np.mean([x == y for x, y in pairs]))
