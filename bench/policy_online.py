"""bench_policies' online side (issue 26): the page predictor's hints, the online-trained candidates,
the validation slice and the shipped choice.

- ``predictor_hints``: the page predictor (``ppm``, trained on the sessions of the training part only)
  run causally over the whole trace: after each page request of a client's session, its top-5 next pages
  and their probabilities, as arrays (key id, probability) per request. The replay hands them to a
  policy with a ``hint`` method *after* the request is served (a prediction about what comes next).
- ``ONLINE_CANDIDATES``: :class:`OnlineLearnedPolicy` configurations (no model from the training part:
  each learns from the stream it serves, warm-up included, like every cache here).
- ``validation_slice``: the second half of the training part (at most 100,000 requests) measured after as
  many requests before it as warm-up
  (the offline-trained candidates use a model trained before the slice; the online ones stream the whole
  training part, as they stream it before the evaluation half): where the learned configuration and the
  shipped policy are chosen, never on the evaluation half.
- the shipped choice (``Validation.run`` in bench_policies): among the learned candidates *and* every
  baseline, by the noise-band rule of ``precache.models.optimizer.selection``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from precache.cache.clock import ManualClock
from precache.models.optimizer.labels import CacheTrace
from precache.models.optimizer.online import OnlineConfig, OnlineLearnedPolicy
from precache.traces.model import Request
from precache.traces.paths import is_page, normalize_path
from precache.traces.sessionize import Sessionizer

TOP_K = 5
SESSION_GAP = 1800.0


@dataclass(slots=True)
class Hints:
    """Per request, up to ``TOP_K`` (key id, probability) predicted to come next; -1 ids are empty."""

    ids: npt.NDArray[np.int32]
    probs: npt.NDArray[np.float32]
    keys: list[str]

    def slice(self, begin: int, end: int) -> Hints:
        return Hints(self.ids[begin:end], self.probs[begin:end], self.keys)


def predictor_hints(trace: CacheTrace, start: int, predictor: str = "ppm") -> Hints | None:
    """Train the page predictor on the sessions of requests ``[0, start)``; replay it over the trace."""
    from precache.models import build_predictor

    if not any(trace.clients[:start]):
        return None  # no clients (a block trace): no sessions, no page predictor
    reqs = (Request(float(trace.times[i]), trace.clients[i], trace.keys[i]) for i in range(start))
    sessions = [s for s in Sessionizer(gap_seconds=SESSION_GAP).sessionize(reqs) if len(s) >= 1]
    if len(sessions) < 20:
        return None
    model = build_predictor(predictor)
    model.fit(sessions[: len(sessions) * 9 // 10], sessions[len(sessions) * 9 // 10:])
    key_of: dict[str, int] = {}
    keys: list[str] = []
    for k in trace.keys:  # a normalised page -> the first raw key that maps to it
        page = normalize_path(k)
        if page not in key_of:
            key_of[page] = len(keys)
            keys.append(k)
    n = len(trace)
    ids = np.full((n, TOP_K), -1, dtype=np.int32)
    probs = np.zeros((n, TOP_K), dtype=np.float32)
    history: dict[str, tuple[float, list[str]]] = {}
    times = trace.times.tolist()
    for i, (k, c) in enumerate(zip(trace.keys, trace.clients, strict=True)):
        if not c or not is_page(Request(times[i], c, k)):
            continue
        last = history.get(c)
        pages = [] if last is None or times[i] - last[0] > SESSION_GAP else last[1]
        pages.append(normalize_path(k))
        del pages[:-8]
        history[c] = (times[i], pages)
        for j, (page, p) in enumerate(model.predict(pages, TOP_K)[:TOP_K]):
            kid = key_of.get(page)
            if kid is not None:
                ids[i, j] = kid
                probs[i, j] = p
    return Hints(ids, probs, keys)


def online_config(n_train: int, **options: Any) -> OnlineConfig:
    """The memory window scales with the trace (LRB tunes it per trace): a sixth of the training part,
    2,000 to 100,000 requests; a retrain every half window of labelled rows."""
    window = int(min(100_000, max(2_000, n_train // 6)))
    batch = int(min(16_384, max(1_024, window // 2)))
    return OnlineConfig(window=window, batch=batch, max_rows=max(65_536, batch), **options)


ONLINE_CANDIDATES: dict[str, dict[str, Any]] = {
    "online": {},  # LRB-style: sampled eviction, no admission, objective in bytes
    "online+model-admission": {"admission": "model"},
    "online+seen-admission": {"admission": "seen"},
}


def slice_trace(trace: CacheTrace, begin: int, end: int) -> CacheTrace:
    return CacheTrace(times=trace.times[begin:end], keys=trace.keys[begin:end], sizes=trace.sizes[begin:end],
                      clients=trace.clients[begin:end], versions=trace.versions[begin:end],
                      change_signal=trace.change_signal)


VALIDATION_MAX_REQUESTS = 100_000


def validation_slice(start: int) -> tuple[int, int]:
    """``(begin, measured_from)``: warm-up ``[begin, measured_from)``, measured ``[measured_from, start)``:
    the second half of the training part, at most ``VALIDATION_MAX_REQUESTS`` (100,000 requests keep the
    block noise small; the cap bounds the 1M trace's cost), warmed on as many requests before it."""
    measured = min(start // 2, VALIDATION_MAX_REQUESTS)
    measured_from = start - measured
    return max(0, measured_from - measured), measured_from


def run_online(trace: CacheTrace, start: int, cap: int, config: OnlineConfig, hints: Hints | None,
               replay: Any, bounds: list[int] | None = None) -> dict[str, Any]:
    """Replay ``trace`` through a fresh :class:`OnlineLearnedPolicy` (``[0, start)`` warms it uncounted)."""
    clock = ManualClock(float(trace.times[0]))
    pol = OnlineLearnedPolicy(clock, config)
    r: dict[str, Any] = dict(replay(pol, trace, start, cap, clock, hints=hints, bounds=bounds))
    m = max(len(trace), 1)
    r["us_per_request"] = 1e6 / r["requests_per_s"] if r["requests_per_s"] > 0 else float("inf")
    r["rows_scored_per_request"] = pol.rows_scored / m
    r["inference_calls_per_request"] = pol.inference_calls / m
    r["retrains"] = pol.retrains
    r["config"] = {"window": config.window, "batch": config.batch, "admission": config.admission,
                   "objective": config.objective, "use_predictor": config.use_predictor,
                   "hints": hints is not None}
    return r
