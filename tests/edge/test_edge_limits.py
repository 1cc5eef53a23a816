"""The Worker is safe to put in front of a real site (issue 27): a token on every route but /healthz, memory
bounded in bytes, a no-model state and a hung origin that cost one origin request per interval and hold no
request, rejected versions retried after a back-off, files fetched concurrently. Real workerd on loopback."""

from __future__ import annotations

import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from edge_harness import EDGE_TOKEN, Origin, build_worker, get, post, request, require_edge_tools, running, wait_until

from conftest import hub_sessions
from precache.edge.build import export_predictor
from precache.edge.stress import ISOLATE_LIMIT_FLAGS, MIB, flood_body, hung_origin, send_chunked
from precache.models import build_predictor

SYNC = "test-sync-token"
MB = 1_000_000


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A PPM table of the hub site: bundled in one dist, published as version v1 for an origin, and an
    unbundled dist that only syncs."""
    require_edge_tools()
    root = tmp_path_factory.mktemp("edge-limits")
    model = build_predictor("ppm")
    model.fit(hub_sessions(300))
    export_predictor(model, "v1", "table", 10).write(root / "v1")
    bundled, _ = build_worker("table", root / "bundled", root / "v1")
    syncing, _ = build_worker("table", root / "syncing")
    return {"v1": root / "v1", "bundled": bundled, "syncing": syncing}


def auth(value: str) -> dict[str, str]:
    return {"authorization": value}


def test_every_route_but_healthz_needs_a_token(hub: dict[str, Path]) -> None:
    with running(hub["bundled"], "table", {"MODEL_SYNC_TOKEN": SYNC}) as worker:
        url = worker.url
        assert get(url + "/healthz", token=None)[0] == 200
        reads = [("POST", "/predict", {}), ("POST", "/predict/batch", {"requests": [{}]}), ("GET", "/model", None),
                 ("GET", "/readyz", None)]
        for method, path, body in reads:
            for header in (None, EDGE_TOKEN, f"Bearer {EDGE_TOKEN}x", f"Basic {EDGE_TOKEN}", "Bearer",
                           f"Bearer {EDGE_TOKEN} extra"):
                status, answer = request(method, url + path, body, token=None,
                                         headers=auth(header) if header else None)
                assert status == 401 and "INFERENCE_TOKEN" in answer["error"], (path, header, answer)
            for header in (f"Bearer {EDGE_TOKEN}", f"bearer {EDGE_TOKEN}", f"BEARER   {EDGE_TOKEN}",
                           f"Bearer {SYNC}"):
                status, answer = request(method, url + path, body, token=None, headers=auth(header))
                assert status == 200, (path, header, answer)
        assert get(url + "/nope", token=None)[0] == 401 and get(url + "/nope")[0] == 404
        # /admin/sync takes only the sync secret, with the scheme in any case, never a bare token
        for header, want in ((f"Bearer {EDGE_TOKEN}", 401), (SYNC, 401), (f"bearer {SYNC}", 200)):
            assert request("POST", url + "/admin/sync", raw=b"", token=None, headers=auth(header))[0] == want
    with running(hub["bundled"], "table", {"MODEL_SYNC_TOKEN": SYNC}, token=None) as worker:
        assert post(worker.url + "/predict", {}, token=None)[0] == 401  # no INFERENCE_TOKEN: closed, not open
        assert post(worker.url + "/predict", {}, token="")[0] == 401
    with running(hub["bundled"], "table", {"PUBLIC_READ": "true", "MODEL_SYNC_TOKEN": SYNC}, token=None) as worker:
        assert post(worker.url + "/predict", {"context": {"currentPath": "/hub"}}, token=None)[0] == 200
        assert get(worker.url + "/model", token=None)[0] == 200
        assert request("POST", worker.url + "/admin/sync", raw=b"", token=None)[0] == 401  # still guarded


def test_memory_is_bounded_in_bytes(hub: dict[str, Path]) -> None:
    """96 batch calls of ~1 MB (24,576 sessions with 50 long paths each) at concurrency 16, then a 90 MB chunked
    body: the process stays within 128 MB, sessions within their byte budget; requests beyond the in-flight
    body budget wait their turn (503 only after BODY_WAIT_MS)."""
    with running(hub["bundled"], "table", {"SESSION_MAX_BYTES": str(8 * MIB)}, v8_flags=ISOLATE_LIMIT_FLAGS) as worker:
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda b: request("POST", worker.url + "/predict/batch", raw=flood_body(b),
                                                       timeout=60)[0], range(96)))
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 90, statuses
        info = worker.get("/model")[1]
        assert info["waitedRequests"] > 0  # the budget (4 MiB: four batches) did hold requests back
        assert 0 < info["sessions"]["bytes"] <= 8 * MIB and info["sessions"]["evicted"] > 10_000, info["sessions"]
        assert info["inflightBodyBytes"] == 0
        _, peak = worker.rss_bytes()
        assert peak <= 128 * MB, f"peak RSS {peak / MB:.0f} MB after the batch flood"
        sent, answer = send_chunked(worker.url, 90 * MIB, EDGE_TOKEN)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 32 * MIB, sent  # refused after 64 KiB, not after reading the body
        _, peak = worker.rss_bytes()
        assert peak <= 128 * MB, f"peak RSS {peak / MB:.0f} MB after the 90 MB chunked body"
        status, body = worker.post("/predict", {"sessionId": "s-0-0", "context": {"currentPath": "/hub"}})
        assert status == 200 and body["predictions"]


def test_no_model_costs_one_origin_request_per_interval(hub: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()  # the origin has no edge manifest (404)
    with Origin(empty, SYNC) as origin, running(hub["syncing"], "table", {
            "MODEL_MANIFEST_URL": origin.manifest_url, "MODEL_SYNC_TOKEN": SYNC, "SYNC_INTERVAL_MS": "60000"}) as w:
        for i in range(200):
            path, body = [("/predict", {}), ("/readyz", None), ("/model", None)][i % 3]
            status, answer = request("POST" if body is not None else "GET", w.url + path, body)
            assert status == 503, answer
        time.sleep(0.2)  # let the background sync finish
        assert origin.hits["edge-manifest.json"] == 1, origin.hits
        assert get(w.url + "/model")[1]["originRequests"] == 1
        assert "404" in get(w.url + "/readyz")[1]["reason"]


def test_hung_origin_holds_no_request(hub: dict[str, Path]) -> None:
    for dist, ready in ((hub["syncing"], 503), (hub["bundled"], 200)):
        with hung_origin() as manifest_url, running(dist, "table", {
                "MODEL_MANIFEST_URL": manifest_url, "MODEL_SYNC_TOKEN": SYNC, "SYNC_INTERVAL_MS": "100"}) as worker:
            times = []
            for path in ["/readyz"] * 20 + ["/model", "/predict"] * 5:
                t0 = time.perf_counter()
                status, _ = request("POST" if path == "/predict" else "GET", worker.url + path,
                                    {} if path == "/predict" else None, timeout=5)
                times.append((path, time.perf_counter() - t0))
                if path == "/readyz":
                    assert status == ready
                time.sleep(0.01)
            readyz = [t for p, t in times if p == "/readyz"]
            assert statistics.median(readyz) <= 0.05, readyz
            assert max(t for _, t in times) <= 1.0, times  # was 30 s: three 10 s attempts, awaited
            info = worker.get("/model")[1]
            assert info["syncing"] and info["originRequests"] == 1, info  # one sync under way, no pile-up


def test_rejected_version_is_retried_after_its_back_off(hub: dict[str, Path], tmp_path: Path) -> None:
    """A table truncated on the origin is refused (sha256); once the origin's file is fixed, the same manifest
    is taken after REJECTED_RETRY_MS (it was remembered, not banned)."""
    served = shutil.copytree(hub["v1"], tmp_path / "served")
    table = served / "edge-table.bin"
    good = table.read_bytes()
    table.write_bytes(good[: len(good) // 2])
    with Origin(served, SYNC) as origin, running(hub["syncing"], "table", {
            "MODEL_MANIFEST_URL": origin.manifest_url, "MODEL_SYNC_TOKEN": SYNC, "SYNC_INTERVAL_MS": "50",
            "REJECTED_RETRY_MS": "600"}) as worker:
        info = wait_until(worker.url, lambda m: bool(m["rejected"]))
        assert info["rejected"][0]["version"] == "v1" and info["rejected"][0]["failures"] == 1
        table.write_bytes(good)
        info = wait_until(worker.url, lambda m: m["version"] == "v1")
        assert info["rejected"] == [] and info["source"] == "sync"
        assert 2 <= origin.hits["edge-table.bin"] <= 3, origin.hits  # no download per poll meanwhile


def test_model_files_download_concurrently(hub: dict[str, Path]) -> None:
    with Origin(hub["v1"], SYNC) as origin, running(hub["syncing"], "table", {
            "MODEL_MANIFEST_URL": origin.manifest_url, "MODEL_SYNC_TOKEN": SYNC}) as worker:
        origin.delay = 0.4
        wait_until(worker.url, lambda m: m["version"] == "v1")
        files = [(start, end) for name, start, end in origin.log if name != "edge-manifest.json"]
        assert len(files) == 2
        (s1, e1), (s2, e2) = files
        assert max(s1, s2) < min(e1, e2), files  # the second started before the first ended
