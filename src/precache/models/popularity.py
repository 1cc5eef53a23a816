"""Most-popular-next-page prediction: the floor every other predictor must beat.

Why it is an n-gram model of order 0: it shares counting, storage and the exact same smoothing
(``P(x) = (N(x) + b / V) / (N + b)``, Witten-Bell ``b`` = distinct pages seen as targets), so its
probabilities are comparable with Markov/PPM. Counts are of pages that *follow* another page -- the
prediction targets -- not of session entry pages.
"""

from __future__ import annotations

from typing import ClassVar

from precache.models.ppm import NgramPredictor


class PopularityPredictor(NgramPredictor):
    """Ignores the history; ranks pages by how often they were the next page in training."""

    kind: ClassVar[str] = "popularity"
    complexity: ClassVar[int] = 0
    fixed_order: ClassVar[int | None] = 0
