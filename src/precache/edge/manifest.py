"""The edge manifest (``edge-manifest.json``): what the Worker polls, verifies and swaps to.

Why one small file: the Worker polls it with ``If-None-Match`` (ETag = its sha256), so an unchanged
model costs one 304. It names every model file with sha256 and length (the Worker refuses a file that
does not match), the model's parameters, and probes: histories with the Python predictor's own answers
that the Worker replays on the built model before swapping (the layout is in docs/contracts.md, "Edge").
Building is deterministic for a given source model (no wall-clock time), so rebuilding an unchanged
model does not make every Worker download it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from precache.defaults import PAGE_PREDICTOR

EDGE_MANIFEST = "edge-manifest.json"
EDGE_FORMAT = "precache-edge-model"
EDGE_FORMAT_VERSION = 1


@dataclass
class EdgeExport:
    """An export ready to write: file bytes, the manifest fields, and the probes."""

    kind: str  # "table" | "onnx": which worker can serve it
    model_kind: str  # the Python predictor's kind (markov, ppm, attention)
    version: str
    k: int
    files: dict[str, bytes]
    params: dict[str, Any]  # the "table" or "onnx" section
    probes: list[dict[str, Any]]
    name: str = PAGE_PREDICTOR
    created: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"served": "ppm", "of": "auto"} (served.py)

    def manifest(self) -> dict[str, Any]:
        return {
            **self.extra,
            "format": EDGE_FORMAT,
            "format_version": EDGE_FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "model_kind": self.model_kind,
            "k": self.k,
            "created": self.created,
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                for name, data in sorted(self.files.items())
            },
            self.kind: self.params,
            "probes": self.probes,
            "metrics": self.metrics,
            "source": self.source,
        }

    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest(), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """Write the files, then the manifest last (atomically), removing stale edge files first.

        A Worker or service reading the directory meanwhile sees the old manifest (whose files may be
        gone: it then refuses and retries) or the new one, never a manifest naming half-written files.
        """
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        for stale in (root / EDGE_MANIFEST, *(root / n for n in KNOWN_FILES if n not in self.files)):
            stale.unlink(missing_ok=True)
        for name, data in self.files.items():
            _atomic_write(root / name, data)
        _atomic_write(root / EDGE_MANIFEST, self.manifest_bytes())
        return root


KNOWN_FILES = ("edge-table.bin", "edge-vocabulary.json", "edge-model.onnx", "edge-attention.bin")


def _atomic_write(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, prefix=f".{path.name}.") as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def probe_histories(
    contexts: Sequence[Sequence[str]], unknown: str, long_history: Sequence[str], limit: int = 24
) -> list[list[str]]:
    """Histories the Worker replays before swapping: empty, unknown, long, and known contexts."""
    chosen: list[list[str]] = [[], [unknown], list(long_history)]
    step = max(1, len(contexts) // max(1, limit - len(chosen)))
    chosen.extend(list(c) for c in contexts[::step][: limit - len(chosen)])
    return chosen


def probes_from(predict: Any, histories: Sequence[Sequence[str]], k: int) -> list[dict[str, Any]]:
    """``[{history, top: [[page, probability], ...]}]`` from the Python predictor itself."""
    return [{"history": list(h), "top": [[p, float(q)] for p, q in predict(list(h), k)]} for h in histories]


def source_metric(metrics: Mapping[str, Any], *paths: Sequence[str]) -> float | None:
    """The first numeric value found at one of ``paths`` in a nested metrics dict (None when absent)."""
    for path in paths:
        value: Any = metrics
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None
