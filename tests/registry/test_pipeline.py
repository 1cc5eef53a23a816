"""The training pipeline end to end on real data: collect → train → gate → register → activate."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
import redis

from conftest import shared_file
from precache.registry import ModelRegistry, RedisNotifier
from precache.training import TraceSource, TrainingConfig, TrainingError, TrainRequest, pipeline, run_pipeline

NASA_JUL = "nasa-http/NASA_access_log_small.gz"


def markov_request(model_type: str = "page-predictor", **config: object) -> TrainRequest:
    return TrainRequest(model_type, [TraceSource(str(shared_file(NASA_JUL)))],  # type: ignore[arg-type]
                        config=TrainingConfig(predictor="markov", **config))  # type: ignore[arg-type]


@pytest.mark.slow
def test_full_cycle_then_rejected_candidate(tmp_path: Path, redis_url: str) -> None:
    messages: list[dict[str, object]] = []
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe("precache:models")
    reg = ModelRegistry(tmp_path / "models", tmp_path / "backups", notify=RedisNotifier(redis_url))
    progress: list[str] = []

    first = run_pipeline(markov_request("all"), reg, progress=progress.append)
    by_name = {o.name: o for o in first.outcomes}
    assert by_name["page-predictor"].status == "activated" and by_name["page-predictor"].version == "v1"
    assert by_name["cache-optimizer"].status == "activated"
    assert any(p.startswith("collect") for p in progress) and any("gate accepted" in p for p in progress)
    info = reg.active("page-predictor")
    assert info is not None and info.kind == "markov" and info.status == "accepted"
    assert 0.2 < info.metrics["test_hr5"] < 0.8  # Markov on the NASA Jul extract is about 0.40
    assert info.data_span["sessions"] > 100 and info.data_span["start"] < info.data_span["end"]
    assert info.training_config["config"]["predictor"] == "markov"
    assert info.gate["accepted"] and info.gate["active"] is None
    opt = reg.active("cache-optimizer")
    assert opt is not None and 0.5 < opt.gate["candidate"] <= 1.0
    assert (tmp_path / "backups/page-predictor/v1/manifest.json").is_file()

    # the same data again: scored against the active v1 on the same slice, equal, so accepted
    second = run_pipeline(markov_request(), reg)
    (outcome,) = second.outcomes
    assert outcome.status == "activated" and outcome.decision is not None
    assert outcome.decision.active == pytest.approx(outcome.decision.candidate)
    assert reg.pointer("page-predictor")["previous"] == "v1"

    # a target above what the data allows: registered, marked rejected with the reason, not activated
    revision = reg.revision()
    third = run_pipeline(markov_request(target_accuracy=0.99), reg)
    (rejected,) = third.outcomes
    assert rejected.status == "rejected" and "below the target" in rejected.reason
    kept = reg.get("page-predictor", rejected.version or "")
    assert kept.status == "rejected" and "0.99" in kept.reason
    assert reg.pointer("page-predictor")["version"] == "v2"
    assert reg.revision() == revision + 1  # registered (rejected), nothing activated

    # rollback to v1, and every change was announced with an increasing revision
    assert reg.rollback("page-predictor").version == "v1"
    deadline = 50
    while deadline and len(messages) < reg.revision():
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "message":
            messages.append(json.loads(message["data"]))
        deadline -= 1
    revisions = [int(m["revision"]) for m in messages]  # type: ignore[call-overload]
    assert revisions == sorted(revisions) and revisions[-1] == reg.revision()
    assert messages[-1]["event"] == "activated" and messages[-1]["version"] == "v1"
    pubsub.close()

    # the cache optimizer's files are checked the same way: a flipped byte is named by verify
    graph = opt.path / "optimizer.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 1
    graph.write_bytes(bytes(data))
    ((version, error),) = reg.verify("cache-optimizer")
    assert version == opt.version and error is not None and "optimizer.onnx" in error


def test_worker_crash_and_timeout_leave_registry_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    reg = ModelRegistry(tmp_path / "models", tmp_path / "backups")
    run_pipeline(markov_request(), reg)
    before = (reg.revision(), [v.version for v in reg.versions("page-predictor")], reg.pointer("page-predictor"))
    # a worker that writes half a model and a result, then dies hard
    crash = ("import os, sys, pathlib; job = pathlib.Path(sys.argv[1]); (job / 'page-predictor').mkdir();"
             "(job / 'page-predictor' / 'manifest.json').write_text('{'); os.abort()")
    monkeypatch.setattr(pipeline, "worker_command", lambda job: [sys.executable, "-c", crash, str(job)])
    with pytest.raises(TrainingError, match="registry is unchanged"):
        run_pipeline(markov_request(), reg)
    hang = "import time; print('{\"progress\": \"stuck\"}', flush=True); time.sleep(60)"
    monkeypatch.setattr(pipeline, "worker_command", lambda job: [sys.executable, "-c", hang, str(job)])
    started = threading.Event()
    with pytest.raises(TrainingError, match="timed out"):
        run_pipeline(markov_request(timeout_seconds=1.5), reg, progress=lambda _m: started.set())
    assert started.is_set()
    after = (reg.revision(), [v.version for v in reg.versions("page-predictor")], reg.pointer("page-predictor"))
    assert after == before
    assert not list((tmp_path / "models" / "page-predictor").glob(".staging-*"))


def test_bad_trace_is_a_clear_error(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models", tmp_path / "backups")
    empty = tmp_path / "empty.log"
    empty.write_text("not a log line\n")
    with pytest.raises(ValueError):
        run_pipeline(TrainRequest("page-predictor", [TraceSource(str(empty))],
                                  config=TrainingConfig(predictor="markov")), reg)
    assert reg.revision() == 0


def test_gate_rules() -> None:
    from precache.training import decide

    assert decide("HR@5", 0.40, target=None, tolerance=0.01).accepted  # nothing to compare with
    assert decide("HR@5", 0.395, target=None, tolerance=0.01, active=0.40, active_version="v1").accepted
    worse = decide("HR@5", 0.38, target=None, tolerance=0.01, active=0.40, active_version="v1")
    assert not worse.accepted and "worse than the active v1" in worse.reason
    both = decide("HR@5", 0.38, target=0.5, tolerance=0.01, active=0.40, active_version="v1")
    assert not both.accepted and "below the target" in both.reason and "worse than" in both.reason
    assert not decide("HR@5", float("nan"), target=None, tolerance=0.01).accepted


def test_candidate_not_activated_over_a_version_that_went_live_meanwhile(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models", tmp_path / "backups")
    run_pipeline(markov_request(), reg)  # v1 active
    other = reg.get("page-predictor", "v1").path

    def another_process_activates(message: str) -> None:  # between this run's gate and its activation
        if "gate accepted" in message:
            reg.activate("page-predictor", reg.register("page-predictor", other).version)

    (outcome,) = run_pipeline(markov_request(), reg, progress=another_process_activates).outcomes
    assert outcome.status == "registered" and "not activated" in outcome.reason
    assert reg.pointer("page-predictor")["version"] == "v2" and outcome.version == "v3"


def test_trace_read_options_reach_the_worker(tmp_path: Path) -> None:
    """The shared trace options travel to the worker process: a LogFormat reads the log; a bad option is a
    clear error before anything is registered."""
    reg = ModelRegistry(tmp_path / "models", tmp_path / "backups")
    path = str(shared_file(NASA_JUL))
    with pytest.raises(ValueError, match="max-malformed"):
        run_pipeline(TrainRequest("page-predictor", [TraceSource(path, options={"max_malformed": 5.0})],
                                  config=TrainingConfig(predictor="markov")), reg)
    assert reg.revision() == 0
    (outcome,) = run_pipeline(TrainRequest("page-predictor", [TraceSource(path, options={"log_format": "common"})],
                                           config=TrainingConfig(predictor="markov")), reg).outcomes
    assert outcome.status == "activated" and outcome.decision is not None
    assert outcome.decision.candidate == pytest.approx(0.40, abs=0.02)
