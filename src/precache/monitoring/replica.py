"""One replica's metrics: its workers' snapshots summed through prometheus-client's multiprocess mode.

The counting rule (issue 28): a replica's ``/metrics`` reports that replica -- the workers of one
``precache serve`` process tree, summed -- and never other replicas; cluster totals are Prometheus' ``sum()``.
Summing through Redis had two faults: every replica on the Redis reported the same deployment-wide total (a
Prometheus ``sum()`` then double-counted), and a counter fell back to one worker's value whenever Redis failed
or a worker's entry expired, so consecutive scrapes read 125, 125, 4, 125.

How: ``precache serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker starts.
Each worker writes its :class:`~precache.monitoring.snapshot.Snapshot`, flattened to one number per series,
into two prometheus-client gauges backed by memory-mapped files in that directory: cumulative series
(counters, histogram buckets) in mode ``sum``, whose files outlive the worker so a counter never goes back
when a worker dies or is replaced; point-in-time series (gauges, the rolling windows) in mode ``livesum``,
whose files are dropped with their process. The scrape merges the directory with prometheus-client's
:class:`~prometheus_client.multiprocess.MultiProcessCollector`, rebuilds one snapshot and renders it like any
other (:func:`~precache.monitoring.exposition.render_prometheus`). No Redis on this path.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from typing import Any

from precache.monitoring.families import FAMILIES
from precache.monitoring.snapshot import Snapshot, parse_series_key

ENV = "PROMETHEUS_MULTIPROC_DIR"
_CUMULATIVE = "precache_replica_cumulative"
_LIVE = "precache_replica_live"
_COUNTERS = {f.name for f in FAMILIES if f.kind == "counter"}
_LIVE_FILE = re.compile(r"gauge_livesum_(\d+)\.db$")


def replica_dir() -> str | None:
    """The directory this process tree shares its metrics through (None: not set, one process alone)."""
    return os.environ.get(ENV) or None


def flatten(snapshot: Snapshot) -> tuple[dict[str, float], dict[str, float]]:
    """``(cumulative, live)`` series of a snapshot, one number each (the inverse is :func:`unflatten`)."""
    cumulative: dict[str, float] = {}
    live: dict[str, float] = {}
    for key, value in snapshot.values.items():
        (cumulative if parse_series_key(key)[0] in _COUNTERS else live)[f"v|{key}"] = value
    for name, vector in snapshot.histograms.items():
        for i, value in enumerate(vector):
            cumulative[f"h|{name}|{i}"] = value
    for window, parts in snapshot.windows.items():
        for part, vector in parts.items():
            for i, value in enumerate(vector):
                live[f"w|{window}|{part}|{i}"] = value
    return cumulative, live


def unflatten(series: dict[str, float]) -> Snapshot:
    """A snapshot from flattened series (summed over processes)."""
    out = Snapshot()
    histograms: dict[str, dict[int, float]] = {}
    windows: dict[tuple[str, str], dict[int, float]] = {}
    for key, value in series.items():
        kind, _, rest = key.partition("|")
        if kind == "v":
            out.values[rest] = value
        elif kind == "h":
            name, _, index = rest.rpartition("|")
            histograms.setdefault(name, {})[int(index)] = value
        elif kind == "w":
            window, part, index = rest.split("|")
            windows.setdefault((window, part), {})[int(index)] = value
    for name, by_index in histograms.items():
        out.histograms[name] = [by_index.get(i, 0.0) for i in range(max(by_index) + 1)]
    for (window, part), by_index in windows.items():
        out.windows.setdefault(window, {})[part] = [by_index.get(i, 0.0) for i in range(max(by_index) + 1)]
    return out


class ReplicaWriter:
    """This worker's side: :meth:`write` its latest snapshot into the replica directory (a few microseconds
    per series: a memory-mapped store, no system call)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        registry = CollectorRegistry(auto_describe=False)  # private: nothing else exports these raw series
        self._cumulative = Gauge(_CUMULATIVE, "raw cumulative series of one worker", ["series"],
                                 multiprocess_mode="sum", registry=registry)
        self._live = Gauge(_LIVE, "raw point-in-time series of one worker", ["series"],
                           multiprocess_mode="livesum", registry=registry)

    def write(self, snapshot: Snapshot) -> None:
        cumulative, live = flatten(snapshot)
        for key, value in cumulative.items():
            self._cumulative.labels(key).set(value)
        for key, value in live.items():
            self._live.labels(key).set(value)


def read_replica(path: str) -> Snapshot:
    """The sum of every worker's series in ``path`` (cumulative ones of dead workers included, live ones of
    dead workers dropped first)."""
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    for file in glob.glob(os.path.join(path, "gauge_livesum_*.db")):
        match = _LIVE_FILE.search(file)
        if match is not None and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                mark_process_dead(int(match.group(1)), path)  # type: ignore[no-untyped-call]
    series: dict[str, float] = {}
    files = glob.glob(os.path.join(path, "*.db"))
    metrics: Any = MultiProcessCollector.merge(files, accumulate=False)  # type: ignore[no-untyped-call]
    for metric in metrics:
        if metric.name not in (_CUMULATIVE, _LIVE):
            continue
        for sample in metric.samples:
            key = sample.labels.get("series")
            if key is not None:
                series[key] = series.get(key, 0.0) + float(sample.value)
    return unflatten(series)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_dir(path: str) -> None:
    """Empty ``path`` of a previous run's files (a replica starts counting from zero, like a process)."""
    os.makedirs(path, exist_ok=True)
    for file in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(OSError):
            os.remove(file)
