"""The training worker: ``python -m precache.training.worker JOB_DIR``, run by the pipeline in its own process.

Why a separate process: training is CPU-heavy and may crash (a native library, memory); it must never run
on a service's event loop, and a crash or a timeout must leave the registry untouched. The worker only
writes inside ``JOB_DIR``: ``JOB_DIR/request.json`` in (with the active model directories to compare
against), ``JOB_DIR/<name>/`` model directories and ``JOB_DIR/result.json`` out. Progress lines go to
stdout as JSON. The parent registers nothing unless ``result.json`` appears and the worker exits 0.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from precache.defaults import CACHE_OPTIMIZER
from precache.registry.atomic import write_json_atomic
from precache.training.collect import collect
from precache.training.request import TrainRequest
from precache.training.stages import TRAINERS

REQUEST = "request.json"
RESULT = "result.json"


def _progress(message: str) -> None:
    print(json.dumps({"progress": message}), flush=True)


def run_job(job: Path) -> dict[str, Any]:
    spec = json.loads((job / REQUEST).read_text(encoding="utf-8"))
    request = TrainRequest.from_json(spec["request"])
    active_dirs: dict[str, str | None] = spec.get("active", {})
    sources = [t.path for t in request.traces] + ([request.events_dir] if request.events_dir else [])
    _progress("collect: reading " + ", ".join(sources))
    started = time.perf_counter()
    data = collect(request)
    collect_seconds = time.perf_counter() - started
    _progress(f"collect: {len(data.sessions):,} sessions, {len(data.requests):,} requests")
    for note in data.notes:
        _progress(f"collect: {note}")
    results: dict[str, Any] = {"data_span": data.span(), "notes": data.notes, "models": {},
                               "collect_seconds": collect_seconds}
    for name in request.names:
        if name == CACHE_OPTIMIZER and not data.requests:
            results["models"][name] = {"skipped": "; ".join(data.notes) or "no requests to learn from"}
            continue
        active = active_dirs.get(name)
        results["models"][name] = TRAINERS[name](data, request.config, job / name,
                                                 Path(active) if active else None, _progress)
    write_json_atomic(job / RESULT, results)
    return results


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m precache.training.worker JOB_DIR", file=sys.stderr)
        return 2
    try:
        run_job(Path(argv[0]))
    except (ValueError, OSError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 3
    except Exception as exc:
        traceback.print_exc()
        print(json.dumps({"error": f"unexpected {type(exc).__name__}: {exc}"}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
