"""Fresh models at the edge (issue 25): a real ``precache serve`` with the online layer republishes the edge
table with the online counts every ``MODEL_EDGE_REFRESH``; a real table Worker (workerd) syncing from the
service's model-files endpoint verifies it by sha256 and answers with the learned transition; a refresh
with no new page views publishes nothing."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_harness import build_worker, post, require_edge_tools, running, settled, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_harness import TOKEN, running_service, service_env, train_model

from conftest import RedisProcess, free_port, hub_sessions
from precache.config import ConfigError, duration_seconds, load_settings
from precache.defaults import PAGE_PREDICTOR
from precache.edge.online_table import OnlineTable, refreshed_export, rows_digest
from precache.edge.tables import export_table
from precache.models import build_predictor, load_predictor
from precache.online.merge import MergeParams


def test_durations_read_like_the_other_settings() -> None:
    assert duration_seconds("300") == duration_seconds(300) == duration_seconds("5m") == 300.0
    assert duration_seconds("1.5h") == 5400.0 and duration_seconds("250ms") == 0.25
    assert duration_seconds(None) is None and duration_seconds("0") is None and duration_seconds("off") is None
    assert load_settings(model_edge_refresh="5m").model_edge_refresh == 300.0
    for bad in ("soon", "-5", "5x"):
        with pytest.raises(ConfigError, match="MODEL_EDGE_REFRESH"):
            load_settings(model_edge_refresh=bad)


def test_the_refreshed_table_merges_live_rows_per_context_and_leaves_unknown_pages_out() -> None:
    frozen = build_predictor("ppm")
    frozen.fit(hub_sessions(300))
    before = [p for p, _ in frozen.predict(["/a3", "/b3"], 10)]
    target = next(p for p in frozen.vocabulary.pages[1:] if p not in before)
    rows = {"/b3": {target: 5.0, "/never-seen": 3.0}}
    table = OnlineTable(frozen, rows, MergeParams(1.0, 1.0, None), now=1000.0)
    for history in (["/b3"], ["/a3", "/b3"], ["/x", "/b3"]):  # every listed context ending in /b3
        assert table.predict(history, 5)[0][0] == target
    assert table.predict(["/a3"], 5) == frozen.predict(["/a3"], 5)  # no live row: the frozen answer
    export = refreshed_export(frozen, export_table(frozen, "v1", 10), rows, MergeParams(1.0, 1.0, None), 1000.0,
                              "v1+online-1", 10)
    manifest = export.manifest()
    assert manifest["online"] is True and manifest["online_contexts"] == 1 and manifest["online_left_out"] == 1
    assert manifest["source"]["base_version"] == "v1" and manifest["version"] == "v1+online-1"
    assert rows_digest(rows) == rows_digest({**rows, "/empty": {}}) != rows_digest({"/b3": {target: 6.0}})


def _broken_export(*_: object) -> None:
    raise OSError("disk full")


def worker_top(url: str, history: list[str]) -> list[str]:
    status, body = post(url + "/predict", {"context": {"history": history}, "options": {"topK": 5}})
    assert status == 200, body
    return [p["page"] for p in body["predictions"]]


def teach(client: httpx.Client, session: str, pages: list[str]) -> None:
    for page in pages:
        response = client.post("/api/ml/predict", json={"sessionId": session, "context": {"currentPath": page}})
        assert response.status_code == 200, response.text


def metrics(client: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/api/ml/metrics").json()
    return body


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.mark.slow
def test_the_worker_gets_the_online_counts_after_a_refresh_and_an_unchanged_refresh_publishes_nothing(
        redis_server: RedisProcess, tmp_path: Path) -> None:
    require_edge_tools()
    from precache.registry import RegistrySettings

    model_dir = train_model(tmp_path / "ppm")
    registry = RegistrySettings(tmp_path / "store", tmp_path / "backup").open()
    version = registry.activate(PAGE_PREDICTOR, registry.register(PAGE_PREDICTOR, model_dir).version).version
    frozen = [p for p, _ in load_predictor(model_dir).predict(["/b3"], 10)]
    target = next(p for p in load_predictor(model_dir).vocabulary.pages[1:] if p not in frozen)
    dist, _ = build_worker("table", tmp_path / "dist")
    env = service_env(redis_server.url, None, MODEL_STORAGE_PATH=str(tmp_path / "store"),
                      MODEL_BACKUP_PATH=str(tmp_path / "backup"), MODEL_EDGE_REFRESH="1s",
                      PRECACHE_PREDICTION_CACHE_SIZE="0", ML_ONLINE_WEIGHT="1", ML_ONLINE_EVIDENCE="1",
                      ML_ONLINE_REFRESH_MS="0", ML_ONLINE_REDIS_PREFIX=f"o{free_port()}:")
    with running_service(env) as service, service.client() as api:
        manifest_url = f"{service.url}/api/ml/models/{PAGE_PREDICTOR}/active/files/edge-manifest.json"
        with running(dist, "table", {"MODEL_MANIFEST_URL": manifest_url, "MODEL_SYNC_TOKEN": TOKEN,
                                     "SYNC_INTERVAL_MS": "200"}) as worker:
            status, model = settled(worker.url)
            assert status == 200 and model["version"] == version, model
            assert target not in worker_top(worker.url, ["/b3"])
            for i in range(5):  # five visitors go /b3 -> target: a transition the frozen model does not rank
                teach(api, f"teach-{i}", ["/b3", target])
            wait_for(lambda: metrics(api).get("edgeRefreshPublished", 0) >= 1, 10, "a refresh published")
            info = wait_until(worker.url, lambda m: str(m.get("version", "")).startswith(f"{version}+online-"),
                              timeout=10)
            assert worker_top(worker.url, ["/b3"])[0] == target
            assert worker_top(worker.url, ["/a3", "/b3"])[0] == target  # a longer context ending in /b3 too
            published = metrics(api)["edgeRefreshPublished"]
            unchanged = metrics(api)["edgeRefreshUnchanged"]
            wait_for(lambda: metrics(api)["edgeRefreshUnchanged"] >= unchanged + 2, 6, "unchanged refreshes")
            after = metrics(api)
            assert after["edgeRefreshPublished"] == published and after["edgeRefreshFailed"] == 0
            assert wait_until(worker.url, lambda m: True)["version"] == info["version"]  # nothing new to sync
            exposition = api.get("/api/ml/metrics", params={"format": "prometheus"}).text
            assert 'precache_edge_refreshes_total{result="published"}' in exposition


async def test_one_replica_publishes_unchanged_counts_publish_nothing_and_a_failure_keeps_the_served_version(
        redis_url: str, tmp_path: Path) -> None:
    import hashlib
    import json
    import uuid

    from redis.asyncio import Redis

    from precache.online.layer import OnlineLayer
    from precache.online.redis_store import RedisCounts
    from precache.registry import RegistrySettings
    from precache.serve.edge_refresh import EdgeRefresher
    from precache.serve.registry_routes import read_active_file

    registry = RegistrySettings(tmp_path / "store", tmp_path / "backup").open()
    info = registry.activate(PAGE_PREDICTOR, registry.register(PAGE_PREDICTOR, train_model(tmp_path / "m")).version)
    prefix, params = f"t{uuid.uuid4().hex[:8]}:", MergeParams(1.0, 1.0, 3600.0)
    client = Redis.from_url(redis_url)
    layer = OnlineLayer(params, store=RedisCounts(client, params.half_life, prefix=prefix))
    a, b = (EdgeRefresher(registry, client, layer, 1.0, prefix) for _ in range(2))
    assert await a.tick() == "unchanged"  # nothing learned yet: the activation's table stays
    layer.observe("/b3", "/entry0", session="s", client="c")
    await layer.flush()
    assert (await a.tick(), await b.tick()) == ("published", "not_leader")
    data, digest = read_active_file(registry, PAGE_PREDICTOR, "edge-manifest.json")
    manifest = json.loads(data)
    assert manifest["version"] == f"{info.version}+online-1" and manifest["online"] is True
    table, table_digest = read_active_file(registry, PAGE_PREDICTOR, "edge-table.bin")
    assert table_digest == manifest["files"]["edge-table.bin"]["sha256"] == hashlib.sha256(table).hexdigest()
    assert await a.tick() == "unchanged"
    layer.observe("/a3", "/entry0", session="s2", client="c2")
    await layer.flush()
    with pytest.MonkeyPatch.context() as patch:  # an export that fails: counted, the served version stays
        patch.setattr("precache.edge.online_table.export_table", _broken_export)
        assert await a.tick() == "failed"
    assert read_active_file(registry, PAGE_PREDICTOR, "edge-manifest.json")[1] == digest
    assert await a.tick() == "published" and a.last["version"] == f"{info.version}+online-2"
    assert registry.verify(PAGE_PREDICTOR) == [(info.version, None)]  # the registry still verifies the version
    assert dict(a.stats) == {"unchanged": 2, "published": 2, "failed": 1} and dict(b.stats) == {"not_leader": 1}
    await client.aclose()
