"""How ``auto`` combines its components' ranked lists: fixed-weight blends and learned per-query gates.

Why a module of its own: this is the per-query serving path of every blend or gate ``auto`` ships (it runs
on each ``InferenceEngine`` query, so it is written for batch-1 cost: plain floats and dicts, one padded
array for the gate's features), and it is the part of ``auto`` a reader of the gate's maths needs, apart
from the choice, the budgets, calibration and the files (:mod:`precache.models.auto`).

- :func:`blend` / :func:`blend_many`: ``sum_c w_c * P_c`` over the union of the lists.
- :class:`Gate`: mixing weights ``softmax(x @ theta)`` as a function of cheap per-query features
  (:func:`gate_features`), fitted by maximising the validation log-likelihood; :func:`cross_fitted` scores a
  gate honestly on the slice it is chosen on (a gate fit on one half ranks the other half).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from precache.models.base import Prediction

FloatArray = npt.NDArray[np.float64]
GATE_DEPTH_MASS = 5  # the head mass feature sums each component's top-5 probabilities


def blend(a: Prediction, b: Prediction, weight: float, k: int) -> Prediction:
    """``weight * P_a + (1 - weight) * P_b`` over the union of both lists (a page missing from a list
    gets 0 from it, a lower bound since the lists are the heads of the distributions)."""
    return blend_many((a, b), (weight, 1.0 - weight), k)


def combined(heads: Sequence[Sequence[Prediction]], histories: Sequence[Sequence[str]], gate: Gate | None,
             weight: float, k: int) -> list[Prediction]:
    """Combine the components' lists: the single list, the gate's mixture, or the fixed-weight blend."""
    if len(heads) == 1:
        return [list(r[:k]) for r in heads[0]]
    if gate is not None:
        return gated(heads, histories, gate, k)
    return [blend(x, y, weight, k) for x, y in zip(heads[0], heads[1], strict=True)]



def blend_many(heads: Sequence[Prediction], weights: Sequence[float], k: int) -> Prediction:
    """``sum_c w_c * P_c`` over the union of the components' lists (missing pages get 0 from a list),
    best first, ties by page. Per query on the serving path, so plain floats and dicts (a page's sum
    adds its components in order, as numpy would) and a full sort only of what can reach the top k."""
    if len(heads) != len(weights):
        raise ValueError(f"{len(heads)} lists but {len(weights)} weights")
    if not heads:
        return []
    w0 = float(weights[0])
    scores = {page: w0 * p for page, p in heads[0]}  # a list's pages are distinct: 0.0 + w * p = w * p
    get = scores.get
    for ranked, w in zip(heads[1:], weights[1:], strict=True):
        w = float(w)
        for page, p in ranked:
            scores[page] = get(page, 0.0) + w * p
    return top_scored(scores, k)


def top_scored(scores: Mapping[str, float], k: int) -> Prediction:
    """The ``k`` highest ``(page, score)`` pairs, ties by page: what ``sorted(..., key=(-score, page))[:k]``
    returns, but sorting only the pages that score at least the k-th highest score."""
    if len(scores) > k:
        threshold = heapq.nlargest(k, scores.values())[-1]
        items = [(page, p) for page, p in scores.items() if p >= threshold]
    else:
        items = list(scores.items())
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    return items[:k]


def gate_features(heads: Sequence[Sequence[Prediction]], histories: Sequence[Sequence[str]]) -> FloatArray:
    """Cheap per-query features: log history length, and per component its top-1 probability, top-5
    mass and the entropy of its (renormalised) head. Rows = queries; column 0 is the bias.

    Computed on one zero-padded ``[component, query, rank]`` array (a handful of numpy calls per batch,
    not per list: this runs on every served query)."""
    n = len(histories)
    lists = [ranked for component in heads for ranked in component]
    width = max(map(len, lists), default=0)
    if width and all(len(ranked) == width for ranked in lists):  # the usual case: every head is full
        probs = np.array([[q for _, q in ranked] for ranked in lists]).reshape(len(heads), n, width)
    else:
        probs = np.zeros((len(heads), n, max(width, 1)))
        for j, ranked in enumerate(lists):
            if ranked:
                probs[j // n, j % n, : len(ranked)] = [q for _, q in ranked]
    total = probs.sum(axis=2)
    r = probs / np.where(total > 0, total, 1.0)[:, :, None]
    positive = r > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = r * np.log(r)
    terms[~positive] = 0.0  # 0 log 0 = 0 (and an empty head has entropy 0)
    entropy = -terms.sum(axis=2)
    # A head with zeros (count Markov's popularity fill, padding): sum only its positive terms, so the
    # float additions group exactly as over the head's positive probabilities alone (same bits as before)
    for c, i in np.argwhere(~positive.all(axis=2) & positive.any(axis=2)):
        entropy[c, i] = -terms[c, i][positive[c, i]].sum()
    out = np.empty((n, 2 + 3 * len(heads)))
    out[:, 0] = 1.0
    out[:, 1] = np.log1p(np.array([min(len(h), 50) for h in histories], dtype=np.float64))
    out[:, 2::3] = probs[:, :, 0].T
    out[:, 3::3] = probs[:, :, :GATE_DEPTH_MASS].sum(axis=2).T
    out[:, 4::3] = entropy.T
    return out


def target_probabilities(heads: Sequence[Sequence[Prediction]], targets: Sequence[str]) -> FloatArray:
    """P_c(target) from each component's head (0 when the target is not in it); shape (queries, components)."""
    out = np.zeros((len(targets), len(heads)))
    for c, component in enumerate(heads):
        for i, (ranked, target) in enumerate(zip(component, targets, strict=True)):
            for page, p in ranked:
                if page == target:
                    out[i, c] = p
                    break
    return out


class Gate:
    """Mixing weights ``softmax(x @ theta)`` over components, as a function of the query's features.

    Fitted by maximising the validation log-likelihood of the true next page under the mixture (plain
    full-batch gradient ascent with Adam, L2 on theta). Rows where no component lists the target carry
    no information about the weights and are dropped.
    """

    def __init__(self, theta: FloatArray, mean: FloatArray, std: FloatArray) -> None:
        self.theta, self.mean, self.std = theta, mean, std

    @staticmethod
    def fit(features: FloatArray, probs: FloatArray, l2: float = 1e-3, steps: int = 400,
            lr: float = 0.05) -> Gate:
        mean = features.mean(axis=0)
        std = features.std(axis=0)
        mean[0], std[0] = 0.0, 1.0
        std[std < 1e-9] = 1.0
        keep = probs.sum(axis=1) > 0
        x = (features[keep] - mean) / std
        p = probs[keep]
        n, f = x.shape
        c = p.shape[1]
        theta = np.zeros((f, c))
        m1 = np.zeros_like(theta)
        m2 = np.zeros_like(theta)
        for step in range(1, steps + 1):
            z = x @ theta
            z -= z.max(axis=1, keepdims=True)
            w = np.exp(z)
            w /= w.sum(axis=1, keepdims=True)
            mix = (w * p).sum(axis=1, keepdims=True)
            grad_z = w * (p / np.maximum(mix, 1e-12) - 1.0)  # d log(mix) / d z
            grad = x.T @ grad_z / max(n, 1) - l2 * theta
            grad[:, 0] = 0.0  # component 0's logit is the reference
            m1 = 0.9 * m1 + 0.1 * grad
            m2 = 0.999 * m2 + 0.001 * grad * grad
            theta += lr * (m1 / (1 - 0.9**step)) / (np.sqrt(m2 / (1 - 0.999**step)) + 1e-8)
        return Gate(theta, mean, std)

    def weights(self, features: FloatArray) -> FloatArray:
        z = ((features - self.mean) / self.std) @ self.theta
        z -= z.max(axis=1, keepdims=True)
        w = np.exp(z)
        out: FloatArray = w / w.sum(axis=1, keepdims=True)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"theta": self.theta.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Gate:
        return Gate(np.asarray(data["theta"], dtype=np.float64), np.asarray(data["mean"], dtype=np.float64),
                    np.asarray(data["std"], dtype=np.float64))


def gated(heads: Sequence[Sequence[Prediction]], histories: Sequence[Sequence[str]], gate: Gate,
          k: int) -> list[Prediction]:
    weights = gate.weights(gate_features(heads, histories)).tolist()
    return [blend_many([component[i] for component in heads], weights[i], k) for i in range(len(histories))]


def cross_fitted(heads: Sequence[Sequence[Prediction]], histories: Sequence[Sequence[str]],
                 targets: Sequence[str], k: int = 10) -> list[Prediction]:
    """Validation lists of a gate scored honestly: a gate fit on each half ranks the other half."""
    n = len(targets)
    half = n // 2
    features = gate_features(heads, histories)
    probs = target_probabilities(heads, targets)
    out: list[Prediction] = []
    for fit_rows, score_rows in ((slice(half, n), slice(0, half)), (slice(0, half), slice(half, n))):
        gate = Gate.fit(features[fit_rows], probs[fit_rows])
        weights = gate.weights(features[score_rows])
        rows = range(n)[score_rows]
        out.extend(blend_many([component[i] for component in heads], weights[j], k) for j, i in enumerate(rows))
    return out
