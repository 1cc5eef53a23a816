"""One replica's workers summed through prometheus-client's multiprocess mode (issue 28): real processes write
their snapshots into one directory; the sum keeps a dead worker's counters (no counter goes backwards) and
drops its gauges; nothing of another directory (another replica) is counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from precache.monitoring.replica import flatten, prepare_dir, read_replica, unflatten
from precache.monitoring.snapshot import Snapshot

_WORKER = """
import sys, time
from precache.monitoring.replica import ReplicaWriter
from precache.monitoring.snapshot import Snapshot
predictions, stay = float(sys.argv[1]), sys.argv[2] == "stay"
snap = Snapshot(values={"precache_predictions_total{type=page}": predictions,
                        "precache_model_info{name=page-predictor,version=v1}": 1.0},
                histograms={"precache_prediction_latency_seconds": [predictions, 0.0, predictions * 0.001]},
                windows={"60": {"current": [predictions, 1.0], "previous": [0.0, 0.0]}})
ReplicaWriter().write(snap)
print("written", flush=True)
if stay:
    time.sleep(60)
"""


def _worker(directory: Path, predictions: int, stay: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(predictions), "stay" if stay else "go"],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    return proc


def test_flatten_round_trip() -> None:
    snap = Snapshot(values={"precache_predictions_total{type=page}": 3.0,
                            "precache_memory_bytes{component=model}": 9.0},
                    histograms={"h": [1.0, 2.0, 0.5]}, windows={"60": {"current": [1.0, 2.0]}})
    cumulative, live = flatten(snap)
    assert "v|precache_predictions_total{type=page}" in cumulative
    assert "v|precache_memory_bytes{component=model}" in live
    back = unflatten({**cumulative, **live})
    assert back.values == snap.values and back.histograms == snap.histograms and back.windows == snap.windows


def test_workers_sum_dead_counters_stay_dead_gauges_go_other_replicas_apart(tmp_path: Path) -> None:
    replica, other = tmp_path / "replica-a", tmp_path / "replica-b"
    prepare_dir(str(replica))
    prepare_dir(str(other))
    alive = _worker(replica, 7, stay=True)
    try:
        done = _worker(replica, 5, stay=False)
        done.wait(timeout=30)
        _worker(other, 1000, stay=False).wait(timeout=30)
        snap = read_replica(str(replica))
        assert snap.values["precache_predictions_total{type=page}"] == 12.0  # the exited worker's 5 stay
        assert snap.values["precache_model_info{name=page-predictor,version=v1}"] == 1.0  # live only
        assert snap.histograms["precache_prediction_latency_seconds"][0] == 12.0
        assert snap.windows["60"]["current"] == [7.0, 1.0]
    finally:
        alive.kill()
        alive.wait()
    later = read_replica(str(replica))
    assert later.values["precache_predictions_total{type=page}"] == 12.0  # never backwards
    assert "precache_model_info{name=page-predictor,version=v1}" not in later.values
    assert read_replica(str(other)).values["precache_predictions_total{type=page}"] == 1000.0
    prepare_dir(str(replica))  # a new run of the replica starts from zero
    assert read_replica(str(replica)).values == {}
