"""The opt-in ORT Worker (attention model, format 2, through onnxruntime-web) in workerd: parity with the
Python attention predictor (encoder in wasm, page table, path segments and Markov term in JavaScript), the
Paid-plan bundle limit, and that the table Worker refuses an ONNX model (issue 19)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edge_harness import Origin, build_worker, bundle_gzip_bytes, get, post, require_edge_tools, running, settled

from conftest import shared_file
from precache.edge.build import export_predictor
from precache.evaluation import time_split, transitions
from precache.models import build_predictor
from precache.traces import read_sessions

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
K = 10
TOKEN = "t"


@pytest.fixture(scope="module")
def attention(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    require_edge_tools()
    split = time_split(read_sessions(shared_file("nasa-http/NASA_access_log_small.gz")))
    # d_model 30: not a multiple of 4, so the Worker's dot-product tail loop is covered too
    model = build_predictor("attention", epochs=2, d_model=30, layers=1, max_seconds=10, threads=1, vocab_size=400)
    model.fit(split.train, split.validation)
    directory = tmp_path_factory.mktemp("ort-model")
    export_predictor(model, "att-1", "ort", K).write(directory)
    return model, split, directory


def test_ort_worker_parity_and_paid_plan_size(attention: tuple[Any, Any, Path], tmp_path: Path) -> None:
    model, split, directory = attention
    dist, _ = build_worker("ort", tmp_path / "dist", directory)
    size = bundle_gzip_bytes(dist)
    assert size <= 10 * 1024 * 1024, size  # Workers Paid plan limit (over Free's 3 MB: onnxruntime's wasm)
    histories = [h for h, _ in transitions(split.test)][:600]
    pages = model.vocabulary.pages[1:]
    segment = model.tables.segments[0]
    assert model.tables.markov is not None and model.tables.segment_table is not None  # format 2 in full
    unseen = f"/{segment}/never-seen.html"  # OOV, but it keeps its path segment's vector
    histories += [[], ["/never/seen"], [unseen], [pages[i % 40] for i in range(200)],
                  [pages[0], "/never/seen", pages[1]], [unseen, *pages[:3]], [pages[5], unseen]]
    with running(dist, "ort", {}) as worker:
        got: list[list[tuple[str, float]]] = []
        for i in range(0, len(histories), 64):  # 64 sessions per model run
            chunk = histories[i : i + 64]
            status, body = post(worker.url + "/predict/batch", {
                "requests": [{"context": {"history": h}} for h in chunk], "options": {"topK": 5}})
            assert status == 200, body
            got += [[(p["page"], p["probability"]) for p in r["predictions"]] for r in body["results"]]
        info = get(worker.url + "/model")[1]
        assert info["kind"] == "onnx" and info["version"] == "att-1"
    want = [model.predict(h, 5) for h in histories]
    worst = max(abs(g[1] - w[1]) for gs, ws in zip(got, want, strict=True) for g, w in zip(gs, ws, strict=True))
    same = sum(1 for g, w in zip(got, want, strict=True) if [p for p, _ in g] == [p for p, _ in w])
    assert worst < 1e-5, worst
    assert same >= 0.99 * len(histories), (same, len(histories))


def test_table_worker_refuses_onnx_model(attention: tuple[Any, Any, Path], tmp_path: Path) -> None:
    _, _, directory = attention
    dist, _ = build_worker("table", tmp_path / "dist")
    with Origin(directory, TOKEN) as origin, running(dist, "table", {
        "MODEL_MANIFEST_URL": origin.manifest_url, "MODEL_SYNC_TOKEN": TOKEN, "SYNC_INTERVAL_MS": "50"}) as worker:
        status, body = settled(worker.url, "/readyz")
        assert status == 503 and "ORT worker" in body["reason"], body
        assert origin.hits["edge-model.onnx"] == 0  # refused from the manifest alone, nothing downloaded


def test_ort_worker_syncs_the_attention_model(attention: tuple[Any, Any, Path], tmp_path: Path) -> None:
    """No bundled model: the ORT Worker fetches the three files over HTTP, verifies them, replays the probes
    and serves the Python predictor's answers."""
    model, split, directory = attention
    dist, _ = build_worker("ort", tmp_path / "dist")
    histories = [h for h, _ in transitions(split.test)][:64]
    with Origin(directory, TOKEN) as origin, running(dist, "ort", {
            "MODEL_MANIFEST_URL": origin.manifest_url, "MODEL_SYNC_TOKEN": TOKEN, "SYNC_INTERVAL_MS": "50"}) as worker:
        status, info = settled(worker.url)
        assert status == 200 and info["version"] == "att-1" and info["source"] == "sync", info
        assert {origin.hits[n] for n in ("edge-model.onnx", "edge-attention.bin", "edge-vocabulary.json")} == {1}
        status, body = post(worker.url + "/predict/batch", {
            "requests": [{"context": {"history": h}} for h in histories], "options": {"topK": 5}})
        assert status == 200, body
    same = 0
    for result, history in zip(body["results"], histories, strict=True):
        got = [(p["page"], p["probability"]) for p in result["predictions"]]
        want = model.predict(history, 5)
        assert max(abs(g[1] - w[1]) for g, w in zip(got, want, strict=True)) < 1e-5
        same += [p for p, _ in got] == [p for p, _ in want]
    assert same >= 0.95 * len(histories), same
