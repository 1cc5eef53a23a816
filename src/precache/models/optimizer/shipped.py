"""The policy that ships: chosen on a validation slice among the learned configurations and the heuristics.

Why: a learned policy that loses to S3-FIFO on the application's own traffic should not run. After the
optimizer is trained, :func:`choose_policy` replays a slice the model did not train on (the training
pipeline's held-out slice) at two cache sizes (1% and 10% of the slice's bytes) under each candidate;
the switcher (S3-FIFO, the cache's default, stepping aside online: :mod:`.switcher`) ships unless a
candidate beats it in mean byte miss ratio by more than the tie band and two block standard errors of
the slice (the noise-band rule of :mod:`precache.models.optimizer.selection`, shared with the policy
benchmark). :func:`record_choice`
writes the choice into the model's manifest; :func:`load_policy` (what ``build_stack`` calls) builds it.

The replay is the one the policy benchmark uses (byte capacity, evict then insert, admission only
through ``admit``), kept minimal here so the runtime package needs no benchmark code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from precache.cache.clock import Clock, ManualClock
from precache.cache.policy import EntryInfo, EvictionPolicy, LRUPolicy, S3FIFOPolicy
from precache.models.optimizer.labels import CacheTrace
from precache.models.optimizer.model import OptimizerModel
from precache.models.optimizer.policy import LearnedPolicy
from precache.models.optimizer.selection import TIE, BlockScore, block_bounds, choose
from precache.models.optimizer.switcher import SwitchingPolicy

LEARNED: dict[str, dict[str, Any]] = {"learned": {}, "learned+model-admission": {"admission": "model"},
                                      "learned+seen-admission": {"admission": "seen"}}
HEURISTICS = ("switch", "s3fifo", "lru")
"""``switch`` (the default) is the online switcher (:mod:`.switcher`): S3-FIFO that steps aside online."""


def build(name: str, model: OptimizerModel | None, clock: Clock, adaptive_ttl: bool = False) -> EvictionPolicy:
    """The policy called ``name`` (a heuristic, or a learned configuration of ``model``)."""
    if name == "switch":
        return SwitchingPolicy()
    if name == "s3fifo":
        return S3FIFOPolicy()
    if name == "lru":
        return LRUPolicy()
    if name not in LEARNED or model is None:
        raise ValueError(f"unknown shipped policy {name!r} (or no model for it)")
    return LearnedPolicy(model, clock, adaptive_ttl=adaptive_ttl, **LEARNED[name])


def block_misses(policy: EvictionPolicy, trace: CacheTrace, begin: int, bounds: list[int], capacity: int,
                 clock: ManualClock) -> tuple[list[float], list[float]]:
    """``(missed bytes, requested bytes)`` per block ``[bounds[i], bounds[i+1])`` of a byte-capacity
    cache replaying ``[begin, bounds[-1])``; ``[begin, bounds[0])`` warms it uncounted."""
    resident: dict[str, EntryInfo] = {}
    used = 0
    missed = [0.0] * (len(bounds) - 1)
    requested = [0.0] * (len(bounds) - 1)
    sizes, times = trace.sizes.tolist(), trace.times.tolist()
    block = -1
    for i in range(begin, bounds[-1]):
        while block + 1 < len(bounds) - 1 and i >= bounds[block + 1]:
            block += 1
        k, s = trace.keys[i], sizes[i]
        clock.set(times[i])
        if block >= 0:
            requested[block] += s
        e = resident.get(k)
        if e is not None:
            policy.on_hit(e)
            continue
        if block >= 0:
            missed[block] += s
        info = EntryInfo(key=k, size=s, inserted_at=times[i])
        if s > capacity or not policy.admit(info):
            continue
        while used + s > capacity:
            v = policy.victim()
            if v is None:
                break
            gone = resident.pop(v, None)
            used -= gone.size if gone is not None else 0
        resident[k] = info
        used += s
        policy.on_insert(info)
    return missed, requested


def byte_miss_ratio(policy: EvictionPolicy, trace: CacheTrace, begin: int, start: int, capacity: int,
                    clock: ManualClock) -> float:
    """Replay ``[begin, len)`` with a byte-capacity cache; ``[begin, start)`` warms it uncounted."""
    missed, requested = block_misses(policy, trace, begin, [start, len(trace)], capacity, clock)
    return missed[0] / max(requested[0], 1)


def choose_policy(model: OptimizerModel, trace: CacheTrace, start: int, fractions: tuple[float, ...] = (0.01, 0.1),
                  margin: float = TIE, default: str = "switch") -> dict[str, Any]:
    """Score every candidate on ``trace[start:]`` (warmed on as many requests before it) and pick one by
    the noise-band rule of :mod:`precache.models.optimizer.selection`: the default (the online switcher,
    which starts as S3-FIFO, the cache's own default) ships unless a candidate beats it, in mean byte miss
    ratio over the ``fractions``, by more than the tie band ``margin`` and ``K`` block standard errors."""
    begin = max(0, start - (len(trace) - start))
    working_set = sum(dict(zip(trace.keys[start:], trace.sizes[start:].tolist(), strict=True)).values())
    bounds = block_bounds(start, len(trace))
    blocks = len(bounds) - 1
    scores: dict[str, BlockScore] = {}
    requested: list[float] = [0.0] * blocks
    for name in (*HEURISTICS, *LEARNED):
        per_block = [0.0] * blocks
        for frac in fractions:
            clock = ManualClock(float(trace.times[begin]))
            missed, requested = block_misses(build(name, model, clock), trace, begin, bounds,
                                             max(1, int(working_set * frac)), clock)
            per_block = [a + b / len(fractions) for a, b in zip(per_block, missed, strict=True)]
        scores[name] = BlockScore(tuple(per_block))
    sel = choose(scores, requested, default, tie=margin)
    return {"chosen": sel["chosen"], "byte_miss_ratio": sel["byte_miss_ratio"], "fractions": list(fractions),
            "margin": margin, "validation_requests": len(trace) - start, "selection": sel}


def record_choice(directory: str | Path, choice: dict[str, Any]) -> None:
    """Write the choice into the model's manifest (``shipped``), where :func:`load_policy` reads it."""
    path = Path(directory) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["shipped"] = choice
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def load_policy(directory: str | Path, clock: Clock,
                adaptive_ttl: bool = False) -> tuple[EvictionPolicy, str, str]:
    """``(policy, its name, the model's version)``: the shipped policy of a trained optimizer directory
    (the learned default when the manifest records no choice, as models trained before the choice)."""
    model = OptimizerModel.load(directory)
    shipped = model.manifest.get("shipped")
    name = str(shipped.get("chosen", "learned")) if isinstance(shipped, dict) else "learned"
    return build(name, model, clock, adaptive_ttl), name, model.version or "unversioned"
