"""Plain count-based first-order Markov: the bar every learned model must clear.

Why a second Markov model: the smoothed :class:`~precache.models.markov.MarkovPredictor` mixes
Witten-Bell mass toward popularity into every row, which on small logs lets a popular page outrank a
successor actually seen after the last page (NASA 1 Aug HR@5 0.450 vs 0.468 for plain counts). This
model is the textbook one: ``P(x | last) = N(last, x) / N(last)`` over the successors seen in
training, ranked by count; the rest of the list is filled in training popularity order with
probability 0 (the model gives them no mass). A last page never seen with a successor (or an empty
history) backs off to the popularity distribution. Page filter: every page of the sessions counts (no
minimum count); for logs, "pages" are what the sessionizer keeps (:func:`precache.traces.is_page`:
no images/css/js, successful GETs), the same input every other predictor gets.

Counting, memo and files are the n-gram model's (order 1), so it loads without torch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from precache.models.ppm import FloatArray, NgramPredictor


class CountMarkovPredictor(NgramPredictor):
    """First-order transition counts, no smoothing; popularity only when the last page has no successor."""

    kind: ClassVar[str] = "markov-count"
    complexity: ClassVar[int] = 1
    fixed_order: ClassVar[int | None] = 1

    def _distribution(self, context: tuple[int, ...]) -> FloatArray:
        successors = self._contexts[0].get(context[-1:]) if context and self._contexts else None
        if successors is None or successors.total == 0:
            return self._p0.copy()
        p = np.zeros_like(self._p0)
        p[successors.ids] = successors.counts / successors.total
        return p
