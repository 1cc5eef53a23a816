"""Serving side of the attention model: onnxruntime + numpy only (no torch, no scikit-learn).

Both :class:`~precache.models.attention.predictor.AttentionPredictor` (after fit or load) and the
:class:`~precache.inference.engine.InferenceEngine` run predictions through this class, so what is
evaluated is exactly what is served. Network ids: 0 = PAD, 1 = OOV, ``vocabulary id + 1`` for pages
(the shared :class:`~precache.models.vocabulary.Vocabulary` has OOV = 0 and pages from 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from precache.types import Prediction

PAD_ID = 0
OOV_ID = 1
RESERVED = 2



def session_options(threads: int = 1) -> ort.SessionOptions:
    """One intra-op thread by default: batch-1 latency is best single-threaded, and the serving
    process has other work; throughput comes from batching, not from threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


class AttentionRuntime:
    """Encode histories, run the ONNX graph, apply the temperature, return top-k pages."""

    def __init__(
        self,
        model: bytes | str | Path,
        pages: Sequence[str],
        prior: npt.NDArray[np.float64],
        temperature: float,
        max_len: int,
        threads: int = 1,
    ) -> None:
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, session_options(threads), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.pages = list(pages)  # index i -> network id i + RESERVED
        self.index = {p: i + RESERVED for i, p in enumerate(self.pages)}
        self.temperature = float(temperature)
        self.max_len = int(max_len)
        prior = np.asarray(prior, dtype=np.float64)
        self.prior = prior / prior.sum() if prior.sum() > 0 else np.full(len(self.pages), 1.0 / max(1, len(self.pages)))
        self._prior_order = np.argsort(-self.prior, kind="stable")

    @property
    def vocabulary_size(self) -> int:
        return len(self.pages)

    def encode(self, histories: Sequence[Sequence[str]]) -> npt.NDArray[np.int64]:
        """Left-padded id matrix of the last ``max_len`` pages of each history (width >= 1)."""
        get = self.index.get
        rows = [[get(p, OOV_ID) for p in list(h)[-self.max_len :]] for h in histories]
        width = max(1, max((len(r) for r in rows), default=1))
        ids = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            if row:
                ids[i, width - len(row) :] = row
        return ids

    def logits(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        out: Any = self.session.run(None, {self.input_name: ids})[0]
        return np.asarray(out, dtype=np.float32)

    def probabilities(self, histories: Sequence[Sequence[str]]) -> npt.NDArray[np.float64]:
        """Calibrated next-page probabilities over the *pages* (PAD/OOV columns dropped; rows sum to
        at most 1, the rest is the OOV mass). Empty histories get the training popularity prior."""
        if not histories:
            return np.zeros((0, len(self.pages)))
        z = self.logits(self.encode(histories)).astype(np.float64) / self.temperature
        z[:, PAD_ID] = -np.inf  # PAD is never a next page
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs: npt.NDArray[np.float64] = (e / e.sum(axis=1, keepdims=True))[:, RESERVED:]
        for i, h in enumerate(histories):
            if len(h) == 0:
                probs[i] = self.prior
        return probs

    def top_k(self, histories: Sequence[Sequence[str]], k: int) -> list[Prediction]:
        """``k`` best pages per history, probabilities descending; ``k`` is capped at the vocabulary."""
        probs = self.probabilities(histories)
        n = probs.shape[1]
        k = max(0, min(int(k), n))
        if k == 0 or len(probs) == 0:
            return [[] for _ in histories]
        # argpartition needs kth < n; k == n means "all pages, sorted"
        part = np.argpartition(-probs, k - 1, axis=1)[:, :k] if k < n else np.broadcast_to(np.arange(n), probs.shape)
        rows = np.arange(len(probs))[:, None]
        order = np.argsort(-probs[rows, part], axis=1, kind="stable")
        best = part[rows, order]
        pages = self.pages
        return [[(pages[j], float(probs[i, j])) for j in best[i]] for i in range(len(probs))]
