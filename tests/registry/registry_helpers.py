"""Small real models for the registry tests: Markov on the NASA Jul extract (fast, real data)."""

from __future__ import annotations

from pathlib import Path

from precache.evaluation import time_split
from precache.models import MarkovPredictor
from precache.traces import read_sessions


def save_markov(trace: Path, out: Path, fraction: float = 1.0) -> Path:
    """Fit Markov on (a leading fraction of) the training part of ``trace``; save it to ``out``."""
    split = time_split(read_sessions(trace))
    train = split.train[: max(1, int(len(split.train) * fraction))]
    model = MarkovPredictor()
    model.fit(train, split.validation)
    model.save(out)
    return out
