"""A process's metric values as plain data: what one worker publishes and what ``/metrics`` sums.

Why a snapshot and not prometheus-client's multiprocess mode: that mode forbids custom collectors and
``Info`` metrics, and precache exports the counts its components already keep through a collector. So
each process turns its counts into a :class:`Snapshot` (JSON-safe), workers share snapshots (through
Redis, :mod:`precache.monitoring.share`), and the scrape renders the sum. Everything in a snapshot sums
meaningfully across processes: counters, byte and item gauges, "processes in state X" gauges, histogram
buckets, and the windowed count vectors the JSON summary is computed from. Ratios are never stored; they
are computed after merging, from the summed counts. The one exception is ``extras``: named JSON sections
that every worker computes from shared state (the experiments' readouts, read from Redis), so merging keeps
one copy per name (the freshest by its ``at`` field) instead of a sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Labels = tuple[tuple[str, str], ...]


def series_key(name: str, labels: Mapping[str, str] | None = None) -> str:
    """``name`` or ``name{a=x,b=y}`` with labels sorted: one string key per series, JSON-friendly."""
    if not labels:
        return name
    inner = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    return f"{name}{{{inner}}}"


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """The inverse of :func:`series_key` (label values never contain ``,``, ``=`` or braces)."""
    if not key.endswith("}"):
        return key, {}
    name, _, inner = key[:-1].partition("{")
    labels = dict(part.split("=", 1) for part in inner.split(",") if part)
    return name, labels


@dataclass(slots=True)
class Snapshot:
    """``values``: counters and gauges by series key. ``histograms``: family name -> cumulative-free
    bucket counts (one per finite bucket, then +Inf), followed by the sum. ``windows``: window seconds
    (as a string) -> ``{"current": [...], "previous": [...]}`` count vectors (see ``monitor.WINDOW_FIELDS``)."""

    values: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, list[float]] = field(default_factory=dict)
    windows: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    """Named JSON sections added to the summary as they are (see the module docstring)."""

    def as_dict(self) -> dict[str, Any]:
        return {"values": self.values, "histograms": self.histograms, "windows": self.windows, "extras": self.extras}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """Rebuild a snapshot another process published; anything malformed raises ``ValueError``."""
        try:
            values = {str(k): float(v) for k, v in dict(data.get("values", {})).items()}
            histograms = {str(k): [float(x) for x in v] for k, v in dict(data.get("histograms", {})).items()}
            windows = {
                str(w): {str(part): [float(x) for x in vec] for part, vec in dict(parts).items()}
                for w, parts in dict(data.get("windows", {})).items()
            }
            extras = {str(k): v for k, v in dict(data.get("extras", {})).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed metrics snapshot: {exc}") from exc
        return cls(values, histograms, windows, extras)


def _add_vectors(a: list[float] | None, b: list[float]) -> list[float]:
    if a is None:
        return list(b)
    if len(a) != len(b):
        raise ValueError(f"cannot merge vectors of lengths {len(a)} and {len(b)}")
    return [x + y for x, y in zip(a, b, strict=True)]


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The sum of several processes' snapshots (every field sums; see the module docstring)."""
    out = Snapshot()
    for snap in snapshots:
        for key, value in snap.values.items():
            out.values[key] = out.values.get(key, 0.0) + value
        for name, vec in snap.histograms.items():
            out.histograms[name] = _add_vectors(out.histograms.get(name), vec)
        for window, parts in snap.windows.items():
            into = out.windows.setdefault(window, {})
            for part, vec in parts.items():
                into[part] = _add_vectors(into.get(part), vec)
        for name, section in snap.extras.items():
            if name not in out.extras or _at(section) > _at(out.extras[name]):
                out.extras[name] = section
    return out


def _at(section: Any) -> float:
    at = section.get("at") if isinstance(section, dict) else None
    return float(at) if isinstance(at, int | float) else float("-inf")
