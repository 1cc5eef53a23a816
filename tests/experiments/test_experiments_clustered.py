"""Every per-request metric of a session-scoped experiment is tested per session (issue 28).

Latency was tested per request (Welch) while sessions are the unit of assignment: a session that is slow is
slow on every request, so the requests are not independent and the test was far too confident (one run gave
p = 7e-17). This A/A simulation has strong per-session effects and no difference between the arms: the
per-session (delta method) test keeps its false-positive rate near alpha, the per-request test does not.
"""

from __future__ import annotations

import random

from precache.experiments.arms import ArmStats
from precache.experiments.model import Arm, Experiment
from precache.experiments.readout import compare
from precache.experiments.stats import welch

EXPERIMENT = Experiment("aa", "warming", (Arm("a", 1), Arm("b", 1)))


def _arm(rng: random.Random, sessions: int = 150, per_session: int = 15) -> ArmStats:
    stats = ArmStats()
    for _ in range(sessions):
        slow = rng.lognormvariate(3.0, 0.8)  # this session's own latency level (its device, its network)
        total = 0.0
        hit5 = 0
        easy = rng.random() < 0.5  # some sessions are easy to predict, every time
        for _ in range(per_session):
            ms = slow * rng.uniform(0.8, 1.2)
            total += ms
            stats.record_request(rng.random() < 0.5, ms)
            hit = rng.random() < (0.9 if easy else 0.2)
            hit5 += hit
            stats.accuracy.add(hit)
        stats.record_session(0, 0, requests=per_session, hits=0, latency_ms=total)
        stats.session_accuracy.add(per_session, hit5)
    return stats


def test_aa_false_positives_per_session_near_alpha_per_request_far_above() -> None:
    rng = random.Random(28)
    trials, clustered, naive = 40, 0, 0
    for _ in range(trials):
        a, b = _arm(rng), _arm(rng)
        latency = compare("latency_ms", a, b, EXPERIMENT)
        accuracy = compare("accuracy", a, b, EXPERIMENT)
        assert latency["unit"] == accuracy["unit"] == "session (delta method)"
        clustered += latency["fixedHorizon"]["pValue"] < 0.05
        clustered += accuracy["fixedHorizon"]["pValue"] < 0.05
        per_request = welch(a.latency_ms.mean, a.latency_ms.variance, a.latency_ms.n,
                            b.latency_ms.mean, b.latency_ms.variance, b.latency_ms.n)
        assert per_request is not None
        naive += per_request.p_value < 0.05
    assert clustered / (2 * trials) <= 0.125, clustered  # alpha 0.05, with room for 80 draws' noise
    assert naive / trials >= 0.4, naive  # the per-request test on the same data: many false positives


def test_replica_scoped_metrics_stay_per_request() -> None:
    policy = Experiment("p", "cache_policy", (Arm("learned", 1), Arm("s3fifo", 1)))
    rng = random.Random(1)
    result = compare("latency_ms", _arm(rng), _arm(rng), policy)
    assert result["unit"] == "request"
