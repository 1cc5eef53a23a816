"""The registry over HTTP: listing, activation and rollback seen by running replicas, model files by ETag,
the training-route auth matrix, and a full train -> gate -> activate -> predict cycle on a real trace."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_harness import TOKEN, TRAINING_KEY, Service, running_service, running_services, service_env, train_model

from conftest import SHARED_DATA, RedisProcess, hub_sessions, shared_file


def registry_env(redis_url: str, storage: Path, **extra: str) -> dict[str, str]:
    env = service_env(redis_url, None, MODEL_STORAGE_PATH=str(storage),
                      MODEL_BACKUP_PATH=str(storage.parent / "backups"), PRECACHE_REGISTRY_POLL_SECONDS="30",
                      **extra)
    return env


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with two page-predictor versions: v1 (PPM, active) and v2 (Markov)."""
    from precache.models import build_predictor
    from precache.registry import ModelRegistry

    root = tmp_path_factory.mktemp("registry")
    registry = ModelRegistry(root / "models", root / "backups")
    v1 = train_model(root / "ppm")
    markov = build_predictor("markov")
    markov.fit(hub_sessions(300))
    v2 = markov.save(root / "markov")
    registry.register("page-predictor", v1)
    registry.register("page-predictor", v2)
    registry.register("page-predictor", v2, status="rejected", reason="below target")
    registry.activate("page-predictor", "v1")
    return root / "models"


@pytest.fixture(scope="module")
def replicas(redis_server: RedisProcess, storage: Path) -> Iterator[tuple[Service, Service]]:
    env = registry_env(redis_server.url, storage, PRECACHE_REDIS_PREFIX="reg:")
    with running_services((env, ()), (env, ())) as (a, b):
        yield a, b


def version_of(service: Service, session: str = "v") -> str:
    with service.client() as client:
        r = client.post("/api/ml/predict", json={"sessionId": session, "context": {"currentPath": "/a1"}})
        assert r.status_code == 200, r.text
        return str(r.json()["modelVersion"])


def served_version(service: Service, session: str = "v") -> str | None:
    """The version a replica answers with, or None while it has no model yet (503): for polling."""
    with service.client() as client:
        r = client.post("/api/ml/predict", json={"sessionId": session, "context": {"currentPath": "/a1"}})
        return str(r.json()["modelVersion"]) if r.status_code == 200 else None


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_serves_the_registry_active_version_and_lists_versions(replicas: tuple[Service, Service]) -> None:
    a, _ = replicas
    assert version_of(a) == "v1"
    with a.client() as client:
        body = client.get("/api/ml/models").json()
    page = body["models"]["page-predictor"]
    assert page["active"] == "v1" and page["served"] == "v1"
    assert [v["version"] for v in page["versions"]] == ["v1", "v2", "v3"]
    assert page["versions"][2]["status"] == "rejected" and page["versions"][2]["reason"] == "below target"
    assert body["models"]["cache-optimizer"]["versions"] == []


def test_activation_and_rollback_reach_every_running_replica(replicas: tuple[Service, Service]) -> None:
    a, b = replicas
    with a.client(TRAINING_KEY) as admin:
        r = admin.post("/api/ml/models/page-predictor/activate/v2")
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "v2"
        assert version_of(a) == "v2"  # the replica that took the call, at once
        # the other one through the registry's notification (its poll is 30 s: this is the message)
        assert eventually(lambda: served_version(b) == "v2", timeout=20.0)
        r = admin.post("/api/ml/models/page-predictor/rollback")
        assert r.status_code == 200 and r.json()["version"] == "v1"
        assert eventually(lambda: served_version(b) == "v1", timeout=20.0)
        assert version_of(a) == "v1"


def test_activation_errors(replicas: tuple[Service, Service]) -> None:
    a, _ = replicas
    with a.client(TRAINING_KEY) as admin:
        r = admin.post("/api/ml/models/page-predictor/activate/v99")
        assert r.status_code == 404 and set(r.json()) == {"error", "detail"}
        r = admin.post("/api/ml/models/page-predictor/activate/v3")
        assert r.status_code == 409 and "rejected" in r.json()["detail"]
        r = admin.post("/api/ml/models/cache-optimizer/rollback")
        assert r.status_code == 409 and "no previous" in r.json()["detail"]
        assert admin.post("/api/ml/models/nothing/rollback").status_code == 422
        assert admin.post("/api/ml/models/page-predictor/activate/1;rm").status_code == 422


def test_model_files_carry_a_sha256_etag(replicas: tuple[Service, Service], storage: Path) -> None:
    import hashlib
    import json

    a, _ = replicas
    manifest = json.loads((storage / "page-predictor" / "v1" / "manifest.json").read_text())
    name, digest = next(iter(manifest["files"].items()))
    with a.client() as client:
        r = client.get(f"/api/ml/models/page-predictor/active/files/{name}")
        assert r.status_code == 200 and r.headers["etag"] == f'"{digest}"'
        assert hashlib.sha256(r.content).hexdigest() == digest
        again = client.get(f"/api/ml/models/page-predictor/active/files/{name}",
                           headers={"If-None-Match": f'"{digest}"'})
        assert again.status_code == 304 and again.content == b""
        stale = client.get(f"/api/ml/models/page-predictor/active/files/{name}", headers={"If-None-Match": '"x"'})
        assert stale.status_code == 200
        assert client.get("/api/ml/models/page-predictor/active/files/manifest.json").status_code == 200
        assert client.get("/api/ml/models/page-predictor/active/files/registry.json").status_code == 404
        assert client.get("/api/ml/models/page-predictor/active/files/..%2Fx").status_code in (404, 422)
        assert client.get("/api/ml/models/cache-optimizer/active/files/manifest.json").status_code == 404


def test_published_edge_files_are_served_for_worker_sync(replicas: tuple[Service, Service], storage: Path) -> None:
    """``precache edge build --publish`` writes edge-manifest.json and its files into the active version."""
    import hashlib
    import json

    a, _ = replicas
    version = storage / "page-predictor" / "v1"
    table = b"\x00" * 64
    (version / "edge-table.bin").write_bytes(table)
    (version / "edge-manifest.json").write_text(json.dumps(
        {"format": "precache-edge-model", "files": {"edge-table.bin": {"sha256": hashlib.sha256(table).hexdigest(),
                                                                       "bytes": len(table)}}}))
    try:
        with a.client() as client:
            manifest = client.get("/api/ml/models/page-predictor/active/files/edge-manifest.json")
            assert manifest.status_code == 200
            assert manifest.headers["etag"] == f'"{hashlib.sha256(manifest.content).hexdigest()}"'
            again = client.get("/api/ml/models/page-predictor/active/files/edge-manifest.json",
                               headers={"If-None-Match": manifest.headers["etag"]})
            assert again.status_code == 304
            assert client.get("/api/ml/models/page-predictor/active/files/edge-table.bin").content == table
            (version / "edge-table.bin").write_bytes(b"tampered")
            assert client.get("/api/ml/models/page-predictor/active/files/edge-table.bin").status_code == 409
    finally:
        (version / "edge-table.bin").unlink()
        (version / "edge-manifest.json").unlink()


def test_corrupt_manifest_is_409_and_a_symlink_is_never_followed(replicas: tuple[Service, Service],
                                                                 storage: Path) -> None:
    """Issue 28: a corrupt edge-manifest.json made every file answer 500; a symlink in the version was followed
    out of it (it served active.json)."""
    a, _ = replicas
    version = storage / "page-predictor" / "v1"
    edge = version / "edge-manifest.json"
    try:
        edge.write_text("{not json")
        with a.client() as client:
            for file in ("manifest.json", "edge-manifest.json"):
                r = client.get(f"/api/ml/models/page-predictor/active/files/{file}")
                assert r.status_code == 409 and set(r.json()) == {"error", "detail"}, r.text
            edge.unlink()
            edge.symlink_to("../active.json")  # valid JSON outside the version
            r = client.get("/api/ml/models/page-predictor/active/files/edge-manifest.json")
            assert r.status_code == 409 and "symbolic link" in r.json()["detail"], r.text
            assert b"version" not in r.content or r.json()["error"] == "conflict"
            edge.unlink()
            assert client.get("/api/ml/models/page-predictor/active/files/manifest.json").status_code == 200
    finally:
        if edge.is_symlink() or edge.exists():
            edge.unlink()


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong", 401), (TOKEN, 403), (TRAINING_KEY, 200)])
def test_training_routes_auth_matrix(replicas: tuple[Service, Service], token: str | None, status: int) -> None:
    a, _ = replicas
    with a.client(token) as client:
        r = client.post("/api/ml/models/page-predictor/activate/v1")
        assert r.status_code == status, r.text
        if status != 200:
            assert set(r.json()) == {"error", "detail"}
        train = client.post("/api/ml/train", json={"modelType": "page-predictor"})
        assert train.status_code == (422 if status == 200 else status)  # 422: no data source configured
        assert client.get("/api/ml/train/" + "0" * 32).status_code == (404 if status == 200 else status)


def test_training_routes_are_closed_without_a_training_key(redis_server: RedisProcess, storage: Path) -> None:
    env = registry_env(redis_server.url, storage, ML_TRAINING_API_KEY="", PRECACHE_REDIS_PREFIX="nokey:")
    with running_service(env) as svc, svc.client(TOKEN) as client:
        r = client.post("/api/ml/models/page-predictor/rollback")
        assert r.status_code == 403 and "ML_TRAINING_API_KEY" in r.json()["detail"]
        assert client.get("/api/ml/models").status_code == 200


def wait_job(client: httpx.Client, job_id: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/ml/train/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return dict(job)
        time.sleep(0.5)
    raise AssertionError(f"training job {job_id} did not finish in {timeout} s")


@pytest.mark.realdata
@pytest.mark.slow
def test_train_gate_activate_predict_cycle(redis_server: RedisProcess, tmp_path: Path) -> None:
    trace = shared_file("nasa-http/NASA_access_log_small.gz")
    storage = tmp_path / "models"
    env = registry_env(redis_server.url, storage, PRECACHE_TRAINING_DATA_DIR=str(SHARED_DATA),
                       PRECACHE_REDIS_PREFIX="cycle:")
    with running_services((env, ()), (env, ())) as (a, b), a.client(TRAINING_KEY) as admin:
        assert a.client().post("/api/ml/predict", json={"sessionId": "s", "context": {"currentPath": "/"}}
                               ).status_code == 503  # nothing registered yet
        rel = str(trace.relative_to(SHARED_DATA))
        body = {"modelType": "page-predictor", "config": {"predictor": "ppm", "targetAccuracy": 0.2},
                "trace": {"path": rel}}
        started = admin.post("/api/ml/train", json=body)
        assert started.status_code == 202, started.text
        job_id = started.json()["jobId"]
        with b.client(TRAINING_KEY) as other:  # one job at a time, across replicas
            busy = other.post("/api/ml/train", json=body)
            assert busy.status_code == 409 and job_id in busy.json()["detail"]
            job = wait_job(other, job_id)  # any replica answers for the job
        assert job["status"] == "succeeded", json.dumps(job)
        outcome = job["outcomes"][0]
        assert outcome["status"] == "activated" and outcome["version"] == "v1"
        assert outcome["gate"]["accepted"] is True
        # every replica serves the new version (the job ran in its own process; the registry notified)
        assert eventually(lambda: served_version(a) == "v1" and served_version(b) == "v1", timeout=30.0)
        # a target the data cannot reach: the candidate is kept, rejected, and the active one stays
        body["config"]["targetAccuracy"] = 0.99
        job = wait_job(admin, admin.post("/api/ml/train", json=body).json()["jobId"])
        assert job["status"] == "succeeded" and job["outcomes"][0]["status"] == "rejected"
        assert version_of(a) == "v1"
        bad = admin.post("/api/ml/train", json={**body, "trace": {"path": "../../etc/passwd"}})
        assert bad.status_code == 422 and "body.trace.path" in bad.json()["detail"]
        weekly = admin.post("/api/ml/train", json={**body, "schedule": "weekly"})
        assert weekly.status_code == 202 and weekly.json()["status"] == "scheduled", weekly.text
        from precache.training.scheduler import list_schedules, remove_schedule

        declared = list_schedules(redis_server.url)[weekly.json()["jobId"]]
        assert declared["schedule"]["kind"] == "weekly" and declared["request"]["modelType"] == "page-predictor"
        remove_schedule(redis_server.url, weekly.json()["jobId"])
        hourly = admin.post("/api/ml/train", json={**body, "schedule": "hourly"})
        assert hourly.status_code == 422 and "body.schedule" in hourly.json()["detail"]


@pytest.mark.slow
def test_files_of_an_auto_models_components_are_served(redis_server: RedisProcess, tmp_path: Path) -> None:
    """An ``auto`` model keeps each component in a sub-directory; every file there is reachable, pinned by the
    chain of checksums (manifest -> auto.json -> component manifest -> component files)."""
    import hashlib
    import json

    from precache.models.auto import AutoPredictor
    from precache.registry import ModelRegistry

    sessions = hub_sessions(600)
    auto = AutoPredictor(candidates=[], blend_with=["markov", "ppm"], weights=[], gates=["markov+ppm"])
    auto.fit(sessions[:500], sessions[500:])
    registry = ModelRegistry(tmp_path / "models", tmp_path / "backups")
    registry.register("page-predictor", auto.save(tmp_path / "auto"))
    registry.activate("page-predictor", "v1")
    version = tmp_path / "models" / "page-predictor" / "v1"
    components = json.loads((version / "auto.json").read_text())["components"]
    assert len(components) == 2
    env = registry_env(redis_server.url, tmp_path / "models", PRECACHE_REDIS_PREFIX="auto:")
    url = "/api/ml/models/page-predictor/active/files/"
    with running_service(env) as svc, svc.client() as client:
        for entry in components:
            sub = entry["dir"]
            manifest = client.get(url + f"{sub}/manifest.json")
            assert manifest.status_code == 200 and manifest.headers["etag"] == f'"{entry["manifest_sha256"]}"'
            for name, digest in json.loads(manifest.content)["files"].items():
                r = client.get(url + f"{sub}/{name}")
                assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == digest
                assert r.headers["etag"] == f'"{digest}"'
                assert client.get(url + f"{sub}/{name}", headers={"If-None-Match": f'"{digest}"'}).status_code == 304
        assert client.get(url + "auto.json").status_code == 200
        sub = components[0]["dir"]
        for bad in (f"{sub}/registry.json", "component-9/manifest.json", f"{sub}/..%2Fmanifest.json",
                    f"{sub}/x/manifest.json"):
            assert client.get(url + bad).status_code in (404, 422), bad
        (version / sub / "manifest.json").write_text("{}")  # tampered: no longer the manifest auto.json pinned
        assert client.get(url + f"{sub}/manifest.json").status_code == 409


def test_no_filesystem_path_reaches_api_token_holders(replicas: tuple[Service, Service], storage: Path) -> None:
    """Issue 28: /api/ml/models showed the absolute training-data paths to holders of the client token; /readyz
    (no auth) the model directories. The training key still sees them."""
    from precache.registry import ModelRegistry

    source = str(storage.parent / "private" / "data" / "access-2026.log")
    registry = ModelRegistry(storage, storage.parent / "backups")
    registry.register("page-predictor", storage / "page-predictor" / "v1", status="rejected",
                      reason=f"the active model could not be scored: {storage}/page-predictor/v1: broken",
                      data_span={"sources": [source]})
    a, _ = replicas
    with a.client() as api, a.client(TRAINING_KEY) as admin:
        public = api.get("/api/ml/models")
        assert public.status_code == 200
        assert str(storage.parent) not in public.text, public.text
        assert "access-2026.log" in public.text  # the name alone still tells sources apart
        assert source in admin.get("/api/ml/models").text
        ready = httpx.get(f"{a.url}/readyz")
        assert str(storage.parent) not in ready.text, ready.text
