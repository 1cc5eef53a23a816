"""Export a Markov or PPM predictor as top-k tables the table Worker serves (``table.bin``).

Why this is exact: :class:`~precache.models.ppm.NgramPredictor` computes a history's distribution from
the longest suffix of its last ``max_order`` pages that was seen in training (it backs off at the first
unseen suffix). So every history maps to one of the training contexts (or the empty one), and the top-k
of each context, computed here by the Python predictor's own ``predict``, is its answer. The Worker
repeats the suffix walk with a binary search per order. Layout in ``edge/src/table.js`` and
docs/contracts.md ("Edge").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from precache.edge.manifest import EdgeExport, probe_histories, probes_from
from precache.models.vocabulary import Vocabulary
from precache.types import Prediction

DEFAULT_K = 10


class TablePredictor(Protocol):
    """What the exporter reads of a predictor: an :class:`NgramPredictor`, or one derived from it whose answer
    is still a function of the longest listed context (:mod:`precache.edge.online_table`)."""

    @property
    def kind(self) -> str: ...
    @property
    def fitted(self) -> bool: ...
    @property
    def vocabulary(self) -> Vocabulary: ...
    @property
    def max_order(self) -> int: ...
    def contexts(self, order: int) -> list[tuple[int, ...]]: ...
    def predict(self, history: Sequence[str], k: int) -> Prediction: ...
    def clear_cache(self) -> None: ...


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def unknown_page(predictor: TablePredictor) -> str:
    """A page name the vocabulary does not hold (stands for the out-of-vocabulary id 0)."""
    name = "\0unknown"
    while name in predictor.vocabulary:
        name += "_"
    return name


def export_table(predictor: TablePredictor, version: str, k: int = DEFAULT_K) -> EdgeExport:
    """Tables of the top-``k`` predictions of every context the predictor distinguishes."""
    if not predictor.fitted:
        raise ValueError("the predictor is not fitted")
    vocabulary = predictor.vocabulary
    if len(vocabulary) == 0:
        raise ValueError("the predictor knows no pages: nothing to export")
    k = min(k, len(vocabulary))
    oov = unknown_page(predictor)
    pages = vocabulary.pages

    def history(context: tuple[int, ...]) -> list[str]:
        return [pages[i] if i else oov for i in context]

    sections: list[bytes] = []
    counts: list[int] = []
    example_contexts: list[list[str]] = []
    for order in range(predictor.max_order + 1):
        contexts = [()] if order == 0 else predictor.contexts(order)
        probs = np.zeros((len(contexts), k), dtype="<f8")
        ids = np.zeros((len(contexts), k), dtype="<u4")
        index = vocabulary.index
        for row, context in enumerate(contexts):
            top = predictor.predict(history(context), k)
            if len(top) != k:
                raise ValueError(f"context {context}: {len(top)} predictions, expected {k}")
            probs[row] = [p for _, p in top]
            ids[row] = [index[page] for page, _ in top]
        ctx = np.asarray(contexts, dtype="<u4").reshape(len(contexts), order)
        sections += [_pad8(probs.tobytes()), _pad8(ids.tobytes()), _pad8(ctx.tobytes())]
        counts.append(len(contexts))
        example_contexts += [history(c) for c in contexts[:: max(1, len(contexts) // 8)][:8]]
    predictor.clear_cache()
    longest = max(example_contexts, key=len, default=[])
    long_history = [pages[1 + (i % len(vocabulary))] for i in range(60)] + longest
    histories = probe_histories(example_contexts, oov, long_history)
    return EdgeExport(
        kind="table",
        model_kind=predictor.kind,
        version=version,
        k=k,
        files={"edge-table.bin": b"".join(sections), "edge-vocabulary.json": vocabulary_json(vocabulary)},
        params={"max_order": predictor.max_order, "contexts": counts},
        probes=probes_from(predictor.predict, histories, k),
    )


def vocabulary_json(vocabulary: Vocabulary) -> bytes:
    """The shared vocabulary file format, compact (pages for ids 1..n, and their training counts)."""
    return json.dumps(vocabulary.to_json(), separators=(",", ":"), ensure_ascii=False).encode()
