"""The online layer behind the service's prediction seam and the library's history store.

- :class:`OnlineHook` is a ``PredictionHook`` (:mod:`precache.serve.predictions`): every page view of
  ``/api/ml/predict`` and ``POST /api/ml/events`` is learned (``observe``), every local model answer is
  merged with the live counts (``rerank``).
- :class:`LearningHistory` wraps a process's ``LocalHistory`` (:mod:`precache.history`): each page view
  written to it (by the middleware or the warmer, once per view) is learned too, and
  :class:`OnlineRanker` gives the warmer the merged answers (local counts, no I/O: the warmer's predict is
  synchronous).

The transitions learned are the consecutive pages at the end of the history, ``len(pages) + 1`` of them:
what the visitor did, after it happened. In the service the seam carries the visitor's
:class:`~precache.types.RequestContext`: the guard's per-client cap keys on its address (the session id when
it is unknown) and the bot filter screens its user agent. The middleware's path keys on the session (its bot
filter runs before a view is recorded).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

from precache.history import LocalHistory
from precache.online.layer import OnlineLayer
from precache.online.merge import FROZEN_DEPTH, LIVE_DEPTH
from precache.types import Prediction, RequestContext

PATH_KEY_PAGES = 8


def learn(layer: OnlineLayer, session_id: str, pages: Sequence[str], history: Sequence[str],
          context: RequestContext | None = None) -> int:
    """Teach ``layer`` the transitions that end at ``pages`` (the tail of ``history``); how many it learned.
    The guard sees ``context``'s client (else the session) and user agent."""
    if not pages or len(history) < 2:
        return 0
    client = (context.client if context is not None else None) or session_id
    agent = context.agent if context is not None else None
    learned = 0
    for previous, page in itertools.pairwise(history[-(len(pages) + 1) :]):
        learned += layer.observe(previous, page, session=session_id, client=client, agent=agent)
    return learned


class OnlineHook:
    """The service's ``PredictionHook``: learn every page view, merge every local answer."""

    depth = FROZEN_DEPTH  # the frozen list the merge draws on, as the prequential benchmark scores it

    def __init__(self, layer: OnlineLayer) -> None:
        self.layer = layer

    async def observe(self, session_id: str, pages: Sequence[str], history: Sequence[str],
                      context: RequestContext) -> None:
        guard = self.layer.guard
        bots = guard.refused["bot"] if guard is not None else 0
        learn(self.layer, session_id, pages, history, context)
        if pages and self.layer.calibrator is not None:  # the outcome of the answer served to this session,
            if guard is not None and guard.refused["bot"] > bots:  # unless a crawler's (the guard just said so)
                self.layer.calibrator.forget(session_id)
            else:
                self.layer.calibrator.outcome(session_id, pages[0])

    async def rerank(self, session_id: str, history: Sequence[str], ranked: Prediction, k: int) -> Prediction:
        return (await self.layer.rerank([history], [ranked], k, [session_id]))[0]


def path_key(history: Sequence[str]) -> str:
    """Where the library's online calibrator keeps an answer until its outcome: the warmer predicts from a
    history without its session, so the answer waits under the last pages of the path (two sessions on the
    same recent path get the same answer; the first to move on answers it)."""
    return "path:" + "\x1f".join(history[-PATH_KEY_PAGES:])


class LearningHistory:
    """A ``LocalHistory`` that teaches the online layer each page view written to it."""

    def __init__(self, inner: LocalHistory, layer: OnlineLayer) -> None:
        self.inner = inner
        self.layer = layer

    def add(self, session_id: str, pages: Sequence[str]) -> list[str]:
        history = self.inner.add(session_id, pages)
        if pages and self.layer.calibrator is not None and len(history) > len(pages):
            self.layer.calibrator.outcome(path_key(history[: -len(pages)]), pages[0])
        learn(self.layer, session_id, pages, history)
        return history

    def read(self, session_id: str) -> list[str]:
        return self.inner.read(session_id)

    def forget(self, session_id: str) -> None:
        self.inner.forget(session_id)

    @property
    def evicted(self) -> int:
        """The wrapped store's count of sessions dropped to stay within bounds."""
        return self.inner.evicted

    @evicted.setter
    def evicted(self, value: int) -> None:
        self.inner.evicted = value


class Predictor(Protocol):
    def predict(self, history: Sequence[str], k: int) -> Prediction: ...


class OnlineRanker:
    """A frozen predictor's answers merged with the layer's local counts (synchronous, no I/O)."""

    def __init__(self, frozen: Predictor, layer: OnlineLayer) -> None:
        self.frozen = frozen
        self.layer = layer
        self.name = f"online({getattr(frozen, 'name', 'model')})"

    def predict(self, history: Sequence[str], k: int) -> Prediction:
        ranked = self.frozen.predict(history, max(k, FROZEN_DEPTH))
        if not history:
            return ranked[:k]
        now = self.layer.clock()
        row, n = self.layer.local.head(history[-1], LIVE_DEPTH, now)
        return self.layer.calibrated(self.layer.params.answer(ranked, row, n, k), path_key(history))
