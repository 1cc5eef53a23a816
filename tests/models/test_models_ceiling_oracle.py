"""The ceiling benchmark's context oracle is a true upper bound (bench/bench_predictor_ceiling.py).

It takes, per context of the last ``order`` pages, the five next pages most frequent in the scored pairs
themselves; no model that answers from that context alone can hit more. Checked on a real trace against
models that answer from the last page only (order 1) and from up to three pages (PPM, order 3), and the
bound grows with the order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import shared_file
from precache.evaluation import time_split
from precache.models.kinds import build_predictor
from precache.traces import read_sessions

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_predictor_ceiling import context_oracle, history, scored_pairs


@pytest.mark.realdata
def test_context_oracle_bounds_the_models_that_answer_from_that_context() -> None:
    split = time_split(read_sessions(shared_file("nasa-http/nasa_19950801.tsv.gz")))
    fit = split.train_and_validation
    pairs = [(history(split.test[si], i), split.test[si].pages[i]) for si, i in scored_pairs(split.test, 50_000)]
    oracle = {order: context_oracle(pairs, order)[0] for order in (1, 2, 3)}
    assert oracle[1] <= oracle[2] <= oracle[3]
    for kind, order in (("markov-count", 1), ("markov", 1), ("ppm", 3)):
        model = build_predictor(kind)
        model.fit(fit)
        hr5 = sum(t in [p for p, _ in model.predict(h, 5)] for h, t in pairs) / len(pairs)
        assert 0.3 < hr5 <= oracle[order], (kind, hr5, oracle[order])
