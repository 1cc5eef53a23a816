"""First-order Markov next-page prediction with popularity back-off.

Why: the classic baseline the issue quotes (HR@5 ~0.40 NASA Jul extract ... 0.87 MSNBC). It is the PPM
estimator restricted to order 1: ``P(x | last) = (N(last, x) + b * P_pop(x)) / (N(last) + b)`` with the
Witten-Bell escape ``b`` = number of distinct successors of ``last``. A last page never seen in
training (or an empty history) backs off to popularity entirely.
"""

from __future__ import annotations

from typing import ClassVar

from precache.models.ppm import NgramPredictor


class MarkovPredictor(NgramPredictor):
    """First-order Markov chain, smoothed towards (and backing off to) popularity."""

    kind: ClassVar[str] = "markov"
    complexity: ClassVar[int] = 2
    fixed_order: ClassVar[int | None] = 1
