"""The page predictor this replica serves, swapped atomically when a new version becomes active.

Why snapshots: a request takes the current :class:`ServedModel` once and uses it to the end, so a request
in flight finishes on the model it started with while new requests already see the new one; the old
engine is closed a little later (``retire_after`` seconds), when nothing can still be using it. Fast models
(a few µs per prediction) answer on the event loop; slower ones go through the engine's micro-batching
thread (see :func:`_fast`). Loading
goes through :meth:`precache.inference.InferenceEngine.load` (manifest and sha256 verified); a directory
that fails verification is refused and the current model keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from precache.inference import InferenceEngine
from precache.serve.heap import freeze_model
from precache.types import Prediction

log = logging.getLogger("precache.serve")


def model_version(directory: Path) -> str:
    """The manifest's ``version`` when it has one, else the model kind and a hash of its manifest."""
    import json

    raw = (directory / "manifest.json").read_bytes()
    manifest = json.loads(raw)
    version = manifest.get("version")
    if isinstance(version, str | int) and str(version):
        return str(version)
    return f"{manifest.get('kind', 'model')}-{hashlib.sha256(raw).hexdigest()[:12]}"


@dataclass
class ServedModel:
    engine: InferenceEngine
    version: str
    directory: Path
    kind: str
    inline: bool = False  # answer on the event loop: the model is faster than a hop to the batching thread
    cache: OrderedDict[tuple[int, tuple[str, ...]], Prediction] = field(default_factory=OrderedDict)


INLINE_BELOW_SECONDS = 100e-6


def _fast(engine: InferenceEngine) -> bool:
    """Whether one prediction costs less than handing it to the micro-batching thread (~100+ µs, and far more
    at the tail on a busy machine): lookup-table models (Markov, PPM) answer in a few µs on the event loop;
    neural ones keep the batching thread, where concurrent requests share one onnxruntime call."""
    import time

    history = [page for page, _ in engine.predict([], 3)] or ["/"]  # popular pages: a history it knows
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        engine.predict(history, 5)
        timings.append(time.perf_counter() - start)
    timings.sort()
    return timings[len(timings) // 2] < INLINE_BELOW_SECONDS


class ModelHolder:
    """Holds at most one served page predictor; ``load`` swaps it, ``current`` is what requests use."""

    def __init__(self, *, max_history: int, cache_size: int, retire_after: float = 30.0, freeze: bool = True) -> None:
        self.max_history, self.cache_size, self.retire_after = max_history, cache_size, retire_after
        self.freeze = freeze
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self.loads = 0
        self.listeners: list[Callable[[ServedModel], None]] = []  # told of each model installed (must not block)
        self._retiring: set[asyncio.Task[None]] = set()

    def prepare(self, directory: Path, version: str | None = None, *, record_error: bool = True) -> ServedModel:
        """Load and verify ``directory`` without serving it yet (safe in a worker thread). Raises on a bad one
        (and, with ``record_error``, keeps the reason as :attr:`last_error`, which ``/readyz`` shows)."""
        try:
            engine = InferenceEngine.load(directory, max_history=self.max_history, max_sessions=1)
            return ServedModel(engine, version or model_version(directory), directory,
                               str(getattr(engine.model, "kind", getattr(engine.model, "name", "model"))),
                               inline=_fast(engine))
        except Exception as exc:
            if record_error:
                self.last_error = f"{directory}: {type(exc).__name__}: {exc}"[:300]
            raise

    def load(self, directory: Path, version: str | None = None) -> ServedModel:
        """Load, verify and serve ``directory``. Raises on a bad directory (the current model stays)."""
        return self.install(self.prepare(directory, version))

    def install(self, served: ServedModel) -> ServedModel:
        """Serve ``served`` from now on; the previous engine is closed once requests in flight are done."""
        old, self.current = self.current, served
        self.last_error = None
        self.loads += 1
        if old is not None:
            self._retire(old)
        if self.freeze:
            freeze_model()
        log.info("serving model %s from %s", served.version, served.directory)
        for listener in self.listeners:
            try:
                listener(served)
            except Exception:  # a listener's failure must not undo the swap
                log.exception("a model listener failed for %s", served.version)
        return served

    def _retire(self, old: ServedModel) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def later() -> None:
            await asyncio.sleep(self.retire_after)
            await old.engine.aclose()

        task = loop.create_task(later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def predict(self, served: ServedModel, history: list[str], k: int) -> tuple[Prediction, bool]:
        """Top-``k`` next pages for ``history`` on ``served``; second value: answered from the cache."""
        history_key = (k, tuple(history[-self.max_history:]))
        hit = served.cache.get(history_key)
        if hit is not None:
            served.cache.move_to_end(history_key)
            return hit, True
        if served.inline:
            result = served.engine.predict(history, k)
        else:
            result = await served.engine.submit(history, k)
        if self.cache_size:
            served.cache[history_key] = result
            if len(served.cache) > self.cache_size:
                served.cache.popitem(last=False)
        return result, False

    def describe(self) -> dict[str, Any]:
        served = self.current
        if served is None:
            return {"loaded": False, "error": self.last_error}
        return {"loaded": True, "version": served.version, "kind": served.kind, "directory": str(served.directory),
                "error": self.last_error}

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        if self.current is not None:
            await self.current.engine.aclose()
