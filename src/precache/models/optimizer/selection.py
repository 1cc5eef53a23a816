"""Choosing a cache policy on a validation slice without chasing its noise (issue 26).

Why: an argmin over ~25 candidates on a slice of a few thousand requests picks whichever candidate the
slice's noise favours (on CloudPhysics at 10% every candidate was within 0.001 on validation and the
first one lost by 0.139 on the evaluation half). The rule here lets a candidate displace a fixed
*default* only when its validation advantage is larger than the slice can produce by chance:

1. The measured part of the validation slice is cut into ``BLOCKS`` contiguous blocks of (about) equal
   request counts. Every candidate is replayed once over the whole slice; per block it records the
   bytes it missed, and the bytes requested in the block are the same for every candidate.
2. For a candidate ``c`` against the default ``d``: ``delta = (missed_c - missed_d) / requested``
   (its byte miss ratio minus the default's, over the whole slice), and its standard error from the
   blocks as clusters (the ratio estimator's linearisation: residuals ``x_b - delta * r_b`` of the
   per-block differences ``x_b``, ``se^2 = B / (B - 1) * sum(residual^2) / requested^2``). The
   comparison is paired (same requests, same size), so the noise both share cancels.
3. ``c`` clears the band when ``delta < -max(tie, k * se)``: it is better by more than the tie band
   (0.001, the goal's own) *and* by more than ``k`` standard errors. ``K = 2``: the conventional 5%
   two-sided level (a candidate no better than the default clears it with probability ~2.3% under the
   normal approximation). Candidates are strongly positively correlated (same requests), and a false
   displacement by a truly tied candidate costs nothing; the band is there to stop one that is truly
   worse from displacing the default on a lucky slice.
4. If no candidate clears the band, the default ships; else the clearing candidate with the lowest
   validation byte miss ratio.

``K`` and ``BLOCKS`` were set before the run that this rule's results come from, from the argument
above, not from any evaluation result (docs/policy.md, "What ships").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BLOCKS = 10
"""Contiguous blocks of the validation slice's measured part (the clusters of the standard error)."""
K = 2.0
"""Standard errors by which a candidate must beat the default to displace it."""
TIE = 0.001
"""The tie band of issue 26's goals (byte miss ratio): a smaller advantage never displaces the default."""


def block_bounds(begin: int, end: int, blocks: int = BLOCKS) -> list[int]:
    """``blocks + 1`` increasing request indices cutting ``[begin, end)`` into equal-count blocks
    (fewer blocks when the range is shorter than ``blocks``)."""
    if end <= begin:
        raise ValueError(f"empty validation range [{begin}, {end})")
    n = min(blocks, end - begin)
    return [begin + (end - begin) * i // n for i in range(n + 1)]


@dataclass(frozen=True, slots=True)
class BlockScore:
    """One candidate's per-block missed bytes over the blocks of a validation slice."""

    missed: tuple[float, ...]

    @property
    def total(self) -> float:
        return float(sum(self.missed))


def paired_delta(c: BlockScore, d: BlockScore, requested: Sequence[float]) -> tuple[float, float]:
    """``(delta, se)``: ``c``'s byte miss ratio minus ``d``'s over the slice and its block standard error."""
    if not (len(c.missed) == len(d.missed) == len(requested)):
        raise ValueError("block scores and requested bytes must have one entry per block")
    total = float(sum(requested))
    if total <= 0:
        raise ValueError("no requested bytes in the validation slice")
    x = [a - b for a, b in zip(c.missed, d.missed, strict=True)]
    delta = sum(x) / total
    blocks = len(x)
    if blocks < 2:
        return delta, math.inf  # one block: no estimate of the noise, nothing clears the band
    resid = sum((xb - delta * rb) ** 2 for xb, rb in zip(x, requested, strict=True))
    return delta, math.sqrt(blocks / (blocks - 1) * resid) / total


def choose(scores: Mapping[str, BlockScore], requested: Sequence[float], default: str,
           k: float = K, tie: float = TIE) -> dict[str, Any]:
    """The default unless a candidate beats it by more than ``max(tie, k * se)``; then the best of those.

    Returns ``{"chosen", "default", "k", "tie", "blocks", "byte_miss_ratio": {name: bmr},
    "vs_default": {name: {"delta", "se", "clears"}}}`` (JSON-ready; ``se`` is ``None`` when infinite)."""
    if default not in scores:
        raise ValueError(f"the default {default!r} is not among the candidates")
    total = float(sum(requested))
    bmr = {name: s.total / total for name, s in scores.items()}
    vs: dict[str, dict[str, Any]] = {}
    clearing: list[str] = []
    for name, s in scores.items():
        if name == default:
            continue
        delta, se = paired_delta(s, scores[default], requested)
        clears = delta < -max(tie, k * se)
        vs[name] = {"delta": delta, "se": se if math.isfinite(se) else None, "clears": clears}
        if clears:
            clearing.append(name)
    chosen = min(clearing, key=lambda n: (bmr[n], n)) if clearing else default
    return {"chosen": chosen, "default": default, "k": k, "tie": tie, "blocks": len(requested),
            "byte_miss_ratio": bmr, "vs_default": vs}
