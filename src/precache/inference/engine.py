"""``InferenceEngine``: serve next-page predictions from a saved model directory.

Why an engine around the predictor: the serving side needs three things a bare model does not have --
(1) a *bounded* per-session history store (:class:`~precache.history.MemoryHistories`: LRU over sessions,
histories capped), so memory stays flat under millions of sessions -- or the process's shared one;
(2) async micro-batching, so N concurrent requests cost one onnxruntime
call instead of N; (3) fallbacks that never raise on odd input (empty history, only unknown pages).

No torch and no scikit-learn are imported here (checked by a test): model directories are loaded by
the shared registry's ``load_predictor`` (attention models run in onnxruntime). A reload is accepted
only after the new model loaded, verified and answered a probe; until then the previous model serves.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from precache.history import LocalHistory, MemoryHistories
from precache.types import Prediction

if TYPE_CHECKING:
    from precache.models.base import BatchPredictor

MAX_K = 1000


def load_model(directory: str | os.PathLike[str], threads: int | None = None) -> BatchPredictor:
    """Load any saved predictor directory through the one loading path (``load_predictor``: manifest,
    every sha256, the kind's own checks, one probe prediction). ``threads``: onnxruntime intra-op
    threads for models that run it (default: as saved)."""
    from precache.models.kinds import load_predictor

    return load_predictor(directory, threads=threads)


@dataclass(slots=True)
class EngineStats:
    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    empty_history_fallbacks: int = 0
    unknown_history_fallbacks: int = 0
    sessions_evicted: int = 0


@dataclass(frozen=True, slots=True)
class _Served:
    """The served model and its memoised empty-history answers, swapped together by ``reload``."""

    model: BatchPredictor
    fallback: dict[int, Prediction]


@dataclass(slots=True)
class _Pending:
    history: list[str]
    k: int
    future: asyncio.Future[Prediction]


class InferenceEngine:
    """Top-k next pages with probabilities, from a loaded predictor.

    Sync: :meth:`predict`, :meth:`predict_batch`, :meth:`observe`, :meth:`predict_session`.
    Async, micro-batched: :meth:`submit` and :meth:`observe_and_predict` -- requests queue up and a
    collector runs them together, up to ``max_batch`` requests, waiting at most ``max_wait_us`` after
    the first one; while one batch runs (in a worker thread, onnxruntime releases the GIL) the next
    one fills, so batching adapts to load without delaying a lone request by more than ``max_wait_us``.

    Fallbacks (documented, counted in :attr:`stats`): an empty history gets the model's empty-history
    answer (popularity); a history whose pages are all unknown to the model's vocabulary is treated as
    empty. ``k <= 0`` raises ``ValueError``; ``k`` above the vocabulary is capped.
    """

    def __init__(
        self,
        model: BatchPredictor,
        *,
        max_sessions: int = 100_000,
        max_history: int = 50,
        max_batch: int = 64,
        max_wait_us: float = 100.0,
        histories: LocalHistory | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_us < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_us >= 0")
        self._served = _Served(model, {})
        self.sessions: LocalHistory = (histories if histories is not None
                                       else MemoryHistories(max_sessions, max_history))
        self.max_history = max_history
        self.max_batch = max_batch
        self.max_wait_us = max_wait_us
        self.stats = EngineStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._collector: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, threads: int | None = None, **options: Any) -> InferenceEngine:
        """Engine over a saved model directory (any kind; checksums verified, one probe prediction run)."""
        return cls(load_model(Path(directory), threads=threads), **options)

    def reload(self, directory: str | os.PathLike[str], threads: int | None = None) -> None:
        """Swap in a new model (atomic reference swap; histories are kept) -- only one that loaded,
        verified and answered a probe prediction. Any failure raises :class:`ModelFileError` and the
        engine keeps serving its previous model."""
        from precache.models.base import ModelFileError

        try:
            model = load_model(directory, threads=threads)
        except ModelFileError:
            raise
        except Exception as exc:  # e.g. an unknown kind's module failing to import
            raise ModelFileError(f"{directory}: cannot load: {type(exc).__name__}: {exc}") from exc
        self._served = _Served(model, {})  # one reference swap: a batch sees one model throughout

    # -- sync API --------------------------------------------------------------------------------------
    def predict(self, history: Sequence[str], k: int = 10) -> Prediction:
        return self.predict_batch([history], k)[0]

    @property
    def model(self) -> BatchPredictor:
        """The model being served (replaced only by a successful :meth:`reload`)."""
        return self._served.model

    def predict_batch(self, histories: Sequence[Sequence[str]], k: int = 10) -> list[Prediction]:
        k = _check_k(k)
        served = self._served
        self.stats.requests += len(histories)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(histories))
        clean = [self._usable(list(h)[-self.max_history :], served.model) for h in histories]
        out: list[Prediction] = [[] for _ in clean]
        todo = [i for i, h in enumerate(clean) if h]
        if todo:
            results = served.model.predict_batch([clean[i] for i in todo], k)
            for i, result in zip(todo, results, strict=True):
                out[i] = result
        if len(todo) < len(clean):
            fallback = self._empty_answer(k, served)
            for i, h in enumerate(clean):
                if not h:
                    out[i] = list(fallback)
        return out

    def observe(self, session_id: str, page: str) -> list[str]:
        """Record that ``session_id`` viewed ``page`` (one write to the history store); returns its history."""
        history = self.sessions.add(session_id, (page,))
        self.stats.sessions_evicted = self.sessions.evicted
        return history

    def predict_session(self, session_id: str, k: int = 10) -> Prediction:
        return self.predict(self.sessions.read(session_id), k)

    # -- async, micro-batched -----------------------------------------------------------------------
    async def submit(self, history: Sequence[str], k: int = 10) -> Prediction:
        """Queue one request; resolved when its micro-batch has run."""
        k = _check_k(k)
        if self._queue is None or self._collector is None or self._collector.done():
            self._start()
        assert self._queue is not None
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(list(history), k, future))
        return await future

    async def observe_and_predict(self, session_id: str, page: str, k: int = 10) -> Prediction:
        return await self.submit(self.observe(session_id, page), k)

    async def aclose(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            try:
                await self._collector
            except asyncio.CancelledError:
                pass
        self._collector = None
        self._queue = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _start(self) -> None:
        self._queue = asyncio.Queue()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="precache-inference")
        self._collector = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        assert self._queue is not None and self._executor is not None
        queue, loop = self._queue, asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = time.perf_counter() + self.max_wait_us / 1e6
            while len(batch) < self.max_batch:
                while len(batch) < self.max_batch and not queue.empty():
                    batch.append(queue.get_nowait())
                if len(batch) >= self.max_batch or time.perf_counter() >= deadline:
                    break
                # epoll timers round up to 1 ms, so sub-millisecond waits yield instead of sleeping
                await asyncio.sleep(0)
            k = max(p.k for p in batch)
            try:
                results = await loop.run_in_executor(
                    self._executor, self.predict_batch, [p.history for p in batch], k
                )
            except Exception as exc:  # the model failed: every waiter gets the error, the loop lives on
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result[: p.k])

    # -- fallbacks -----------------------------------------------------------------------------------
    def _usable(self, history: list[str], model: BatchPredictor) -> list[str]:
        if not history:
            self.stats.empty_history_fallbacks += 1
            return history
        vocabulary = getattr(model, "vocabulary", None)
        if vocabulary is not None and not any(page in vocabulary for page in history):
            self.stats.unknown_history_fallbacks += 1
            return []
        return history

    def _empty_answer(self, k: int, served: _Served) -> Prediction:
        cached = served.fallback.get(k)
        if cached is None:
            cached = served.model.predict_batch([[]], k)[0]
            served.fallback[k] = cached
        return cached


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    return min(k, MAX_K)
