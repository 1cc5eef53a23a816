"""Out-of-fold predictions over the training period: a calibration set as large as the training data.

Why: auto's calibration map used to be fit on the validation slice alone. On a small trace that slice is a
few hundred transitions (NASA 1 Aug: 621), and a map chosen there did not transfer to the test period (test
ECE 0.082 against 0.031 cross-fitted on validation). Cross-fitting uses every transition of the training
period instead: the time-ordered sessions are cut into ``folds`` contiguous blocks, the shipped
configuration is refit on the other blocks and predicts the held one, so every confidence comes from a
model that never saw that session -- as at test time -- and the blocks span the whole period, so a map fit
on them averages over its shifts instead of fitting the last few hours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from precache.evaluation import transitions
from precache.traces.model import Session
from precache.types import Prediction

Refit = Callable[[Sequence[Session]], Callable[[list[list[str]]], list[Prediction]]]


def out_of_fold(sessions: Sequence[Session], refit: Refit, folds: int = 5,
                max_transitions: int = 20_000, max_history: int = 50,
                ) -> tuple[list[Prediction], list[str], list[int]]:
    """Every block's transitions ranked by ``refit(other blocks)``, their targets and block numbers; at
    most ``max_transitions`` in all (the first ones of each block). Raises ValueError when there are too
    few sessions for the folds."""
    if folds < 2 or len(sessions) < 2 * folds:
        raise ValueError(f"{len(sessions)} sessions are too few for {folds}-fold cross-fitting")
    bounds = [round(len(sessions) * i / folds) for i in range(folds + 1)]
    per_block = math.ceil(max_transitions / folds)
    predictions: list[Prediction] = []
    targets: list[str] = []
    blocks: list[int] = []
    for b in range(folds):
        held = sessions[bounds[b] : bounds[b + 1]]
        pairs = list(transitions(held, max_history=max_history))[:per_block]
        if not pairs:
            continue
        rank = refit([*sessions[: bounds[b]], *sessions[bounds[b + 1] :]])
        predictions.extend(rank([h for h, _ in pairs]))
        targets.extend(t for _, t in pairs)
        blocks.extend([b] * len(pairs))
    if not targets:
        raise ValueError("no transitions to cross-fit on")
    return predictions, targets, blocks
