"""The table Worker in workerd on loopback, syncing from a real HTTP origin (issue 19).

Models are trained on the NASA July extract (../shared/data). Parity is exact: every history's top-k
pages and probabilities from the Worker equal the Python predictor's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from edge_harness import Origin, build_worker, bundle_gzip_bytes, get, post, request, require_edge_tools, running

from conftest import shared_file
from precache.edge.build import export_predictor
from precache.edge.manifest import EDGE_MANIFEST, EdgeExport
from precache.evaluation import time_split, transitions
from precache.models import build_predictor
from precache.models.ppm import NgramPredictor
from precache.traces import read_sessions

pytestmark = pytest.mark.realdata
TOKEN = "test-sync-token"
K = 10


@pytest.fixture(scope="module")
def nasa() -> Any:
    return time_split(read_sessions(shared_file("nasa-http/NASA_access_log_small.gz")))


@pytest.fixture(scope="module")
def models(nasa: Any) -> dict[str, NgramPredictor]:
    out = {}
    for kind in ("markov", "ppm"):
        model = build_predictor(kind)
        model.fit(nasa.train, nasa.validation)
        assert isinstance(model, NgramPredictor)
        out[kind] = model
    return out


def write_export(model: NgramPredictor, version: str, directory: Path) -> EdgeExport:
    export = export_predictor(model, version, "table", K)
    export.write(directory)
    return export


@pytest.fixture(scope="module")
def versions(models: dict[str, NgramPredictor], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("versions")
    out = {}
    for version, kind in (("v1", "markov"), ("v2", "ppm")):
        write_export(models[kind], version, root / version)
        out[version] = root / version
    return out


@pytest.fixture(scope="module")
def table_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_edge_tools()
    dist, _ = build_worker("table", tmp_path_factory.mktemp("table-dist"))
    return dist


def bindings(origin: Origin, interval_ms: int = 100, token: str = TOKEN) -> dict[str, str]:
    return {"MODEL_MANIFEST_URL": origin.manifest_url, "MODEL_SYNC_TOKEN": token, "SYNC_INTERVAL_MS": str(interval_ms)}


def histories_for(nasa: Any, model: NgramPredictor, limit: int = 1500) -> list[list[str]]:
    """Test-session prefixes plus the awkward ones: empty, unknown pages, very long."""
    found = [h for h, _ in transitions(nasa.test)][:limit]
    pages = model.vocabulary.pages[1:]
    found += [[], ["/never/seen"], ["/never/seen", "/also/unknown"], [pages[0], "/never/seen"],
              ["/never/seen", pages[0]], [pages[i % 50] for i in range(300)], [pages[-1]] * 7]
    return found


def predict_batch(url: str, histories: list[list[str]], top_k: int = K) -> list[list[tuple[str, float]]]:
    out: list[list[tuple[str, float]]] = []
    for i in range(0, len(histories), 200):
        chunk = histories[i : i + 200]
        status, body = post(url + "/predict/batch", {
            "requests": [{"type": "page", "context": {"history": h}} for h in chunk], "options": {"topK": top_k},
        })
        assert status == 200, body
        out += [[(p["page"], p["probability"]) for p in r["predictions"]] for r in body["results"]]
    return out


def pairs(body: dict[str, Any]) -> list[tuple[str, float]]:
    return [(p["page"], p["probability"]) for p in body["predictions"]]


def wait_for(url: str, version: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = get(url + "/model")
        if status == 200 and body["version"] == version:
            return dict(body)
        time.sleep(0.05)
    raise AssertionError(f"worker did not reach {version}: {body}")


def test_table_parity_with_python(nasa: Any, models: dict[str, NgramPredictor], versions: dict[str, Path],
                                  table_dist: Path) -> None:
    with Origin(versions["v1"], TOKEN) as origin, running(table_dist, "table", bindings(origin)) as worker:
        for version, kind in (("v1", "markov"), ("v2", "ppm")):
            origin.serve(versions[version])
            wait_for(worker.url, version)
            model = models[kind]
            histories = histories_for(nasa, model)
            got = predict_batch(worker.url, histories)
            want = [model.predict(h, K) for h in histories]
            mismatches = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
            assert not mismatches, f"{kind}: {len(mismatches)} of {len(histories)} differ: {histories[mismatches[0]]}"
            # single requests, history split into history + currentPath, smaller topK
            for h in histories[:40] + histories[-7:]:
                context: dict[str, Any] = {"history": h[:-1], "currentPath": h[-1]} if h else {}
                status, body = post(worker.url + "/predict", {"context": context, "options": {"topK": 3}})
                assert status == 200, body
                assert pairs(body) == model.predict(h, 3)
                assert body["modelVersion"] == version and body["cached"] is False


def test_api_errors_and_session_history(nasa: Any, models: dict[str, NgramPredictor], versions: dict[str, Path],
                                        table_dist: Path) -> None:
    with Origin(versions["v2"], TOKEN) as origin, running(table_dist, "table", bindings(origin)) as worker:
        url = worker.url
        assert get(url + "/healthz", token=None)[0] == 200
        wait_for(url, "v2")
        status, ready = get(url + "/readyz")
        assert status == 200 and ready["modelVersion"] == "v2", ready
        status, info = get(url + "/model")
        manifest_sha = hashlib.sha256((versions["v2"] / EDGE_MANIFEST).read_bytes()).hexdigest()
        assert info["sha256"] == manifest_sha and info["k"] == K and info["loadedAt"]
        assert request("POST", url + "/predict", raw=b'{"context": ')[0] == 400
        status, body = post(url + "/predict", {"options": {"topK": K + 1}})
        assert status == 422 and "topK" in body["error"]
        assert post(url + "/predict", {"options": {"topK": 0}})[0] == 400
        assert post(url + "/predict", {"type": "asset"})[0] == 422
        assert post(url + "/predict", {"context": {"history": "not a list"}})[0] == 400
        assert post(url + "/predict/batch", {"requests": [{}] * 257})[0] == 413
        assert request("POST", url + "/predict", raw=b"[" + b"1," * 40000 + b"1]")[0] == 413
        assert get(url + "/predict")[0] == 405 and get(url + "/nope")[0] == 404
        # per-isolate session history: the second request is predicted from both pages
        model = models["ppm"]
        session = next(s for s in nasa.test if len(s.pages) >= 3)
        for i, page in enumerate(session.pages[:3]):
            status, body = post(url + "/predict", {"sessionId": "s-1", "context": {"currentPath": page}})
            assert status == 200
            assert pairs(body) == model.predict(session.pages[: i + 1], 5)
        # the admin sync endpoint needs the secret
        assert request("POST", url + "/admin/sync", raw=b"")[0] == 401  # the inference token is not enough
        status, body = request("POST", url + "/admin/sync", raw=b"", headers={"authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body["status"] == "unchanged"


def test_swap_under_load_zero_failures(versions: dict[str, Path], table_dist: Path) -> None:
    """A client hammers /predict while the origin's active version flips; no request fails, versions switch."""
    with Origin(versions["v1"], TOKEN) as origin, running(table_dist, "table", bindings(origin, 30)) as worker:
        wait_for(worker.url, "v1")
        seen: Counter[str] = Counter()
        failures: list[Any] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                status, body = post(worker.url + "/predict", {"context": {"currentPath": "/history/apollo/"}})
                if status != 200 or len(body.get("predictions", [])) != 5:
                    failures.append((status, body))
                else:
                    seen[body["modelVersion"]] += 1

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for version in ("v2", "v1", "v2", "v1", "v2"):
                time.sleep(0.3)
                origin.serve(versions[version])
                wait_for(worker.url, version)
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not failures, failures[:3]
        assert seen["v1"] > 0 and seen["v2"] > 0, seen
        assert get(worker.url + "/model")[1]["swaps"] >= 6


def _tampered(source: Path, target: Path, how: str) -> Path:
    shutil.copytree(source, target)
    table = target / "edge-table.bin"
    data = bytearray(table.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
        table.write_bytes(bytes(data))
    elif how == "truncate":
        table.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "rehash":  # a consistent manifest over a wrong table: only the probes can catch it
        data[:8] = (0.999).hex().encode()[:8]  # garbage in the first probability
        table.write_bytes(bytes(data))
        manifest = json.loads((target / EDGE_MANIFEST).read_text())
        manifest["files"]["edge-table.bin"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        manifest["version"] = "v2-rehashed"
        (target / EDGE_MANIFEST).write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize("how", ["flip", "truncate", "rehash"])
def test_tampered_model_rejected_old_kept(how: str, versions: dict[str, Path], table_dist: Path,
                                          tmp_path: Path) -> None:
    bad = _tampered(versions["v2"], tmp_path / "bad", how)
    with Origin(versions["v1"], TOKEN) as origin, running(table_dist, "table", bindings(origin, 50)) as worker:
        wait_for(worker.url, "v1")
        origin.serve(bad)
        deadline = time.monotonic() + 15
        info: Any = None
        while time.monotonic() < deadline:
            info = get(worker.url + "/model")[1]
            if info["rejected"]:
                break
            time.sleep(0.05)
        assert info["rejected"], info
        assert info["version"] == "v1"
        downloads = origin.hits["edge-table.bin"]
        polls = origin.hits["edge-manifest.json"]
        for _ in range(10):  # requests drive the polling: several more polls, no download of the rejected files
            get(worker.url + "/model")
            time.sleep(0.06)
        assert origin.hits["edge-table.bin"] == downloads
        assert origin.hits["edge-manifest.json"] >= polls + 3
        status, body = post(worker.url + "/predict", {"context": {"currentPath": "/history/apollo/"}})
        assert status == 200 and body["modelVersion"] == "v1"
        good = shutil.copytree(versions["v2"], tmp_path / "good")  # a good version after the bad one is taken
        manifest = json.loads((good / EDGE_MANIFEST).read_text())
        (good / EDGE_MANIFEST).write_text(json.dumps({**manifest, "version": "v3"}))
        origin.serve(good)
        wait_for(worker.url, "v3")


def test_version_switched_between_manifest_and_files_is_not_held_against_it(
        versions: dict[str, Path], table_dist: Path) -> None:
    """Files are fetched by name from the active version: when the origin switches versions right after the
    Worker read the manifest, the files do not match it. That is the origin moving, not a bad model: the
    Worker takes the new version and can still take the first one later (it was not remembered as rejected)."""
    with Origin(versions["v1"], TOKEN) as origin:
        origin.then = versions["v2"]
        with running(table_dist, "table", bindings(origin, 50)) as worker:
            info = wait_for(worker.url, "v2")
            assert info["rejected"] == [], info
            assert origin.hits["edge-manifest.json"] >= 3  # v1's, the re-read that saw the switch, v2's
            origin.serve(versions["v1"])
            info = wait_for(worker.url, "v1")
            assert info["rejected"] == [], info


def test_sync_needs_the_secret(versions: dict[str, Path], table_dist: Path) -> None:
    with Origin(versions["v1"], TOKEN) as origin, running(table_dist, "table", bindings(origin, 50, "wrong")) as w:
        deadline = time.monotonic() + 10
        status, body = get(w.url + "/readyz")
        while "401" not in body["reason"] and time.monotonic() < deadline:  # the first sync runs in the background
            time.sleep(0.02)
            status, body = get(w.url + "/readyz")
        assert status == 503 and "401" in body["reason"], body
        assert post(w.url + "/predict", {})[0] == 503


def test_bundled_model_and_free_plan_size(tmp_path: Path) -> None:
    """`precache edge build` for BMS-WebView-1 (PPM) bundled by `wrangler deploy --dry-run`: within the
    Free plan's 3 MB gzip, and it serves with no origin at all."""
    require_edge_tools()
    split = time_split(read_sessions(shared_file("bms-webview/BMSVIEW1.txt.gz")))
    model = build_predictor("ppm")
    model.fit(split.train, split.validation)
    assert isinstance(model, NgramPredictor)
    write_export(model, "bms-ppm", tmp_path / "model")
    dist, wrangler_kib = build_worker("table", tmp_path / "dist", tmp_path / "model")
    size = bundle_gzip_bytes(dist)
    assert 0 < size <= 3 * 1024 * 1024, size
    assert abs(size / 1024 - wrangler_kib) / wrangler_kib < 0.1  # our count agrees with wrangler's
    with running(dist, "table", {}) as worker:
        status, info = get(worker.url + "/model")
        assert status == 200 and info["version"] == "bms-ppm" and info["source"] == "bundle"
        history = split.test[0].pages[:2]
        status, body = post(worker.url + "/predict", {"context": {"history": history}})
        assert pairs(body) == model.predict(history, 5)
