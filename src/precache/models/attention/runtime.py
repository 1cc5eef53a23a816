"""Serving-side attention inference: numpy page tables + onnxruntime encoder, no torch.

``AttentionPredictor`` (after ``fit`` or ``load``) and the inference engine both predict through this
class, so what is evaluated is exactly what is served. Per query: look up the page + segment vectors of
the last ``max_len`` pages (int8 page table, dequantized once at load), run the encoder graph for the
last hidden state ``h``, then ``logits = h . V^T + bias + alpha * M[last page]`` (tied output table ``V``,
sparse Markov term ``M``), divide by the calibration temperature and softmax. Network ids: 0 = PAD,
1 = OOV, ``2 + i`` for ``pages[i]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from precache.models.attention.features import OOV_ID, PAD_ID, RESERVED, MarkovTerm, PageIndex
from precache.types import Prediction

FloatArray = npt.NDArray[np.float32]


def session_options(threads: int = 1) -> ort.SessionOptions:
    """One intra-op thread by default: batch-1 latency is best single-threaded, and the serving
    process has other work; throughput comes from batching, not from threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


@dataclass(slots=True)
class Tables:
    """Everything but the encoder graph: the int8 page table, segment table, output bias, Markov term."""

    pages: list[str]
    segments: list[str]
    page_q: npt.NDArray[np.int8]  # [vocab, d], network ids
    page_scale: FloatArray  # [vocab]
    segment_table: FloatArray | None  # [segments + 1, d]; row 0 = no segment
    bias: FloatArray  # [vocab]
    markov: MarkovTerm | None
    alpha: float


class AttentionRuntime:
    """Encode histories, run the ONNX encoder, apply the output layer and temperature, return top-k pages."""

    def __init__(self, model: bytes | str | Path, tables: Tables, prior: npt.NDArray[np.float64], temperature: float,
                 max_len: int, threads: int = 1) -> None:
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, session_options(threads), providers=["CPUExecutionProvider"])
        self.tables = tables
        self.index = PageIndex(tables.pages, tables.segments)
        self.pages = self.index.pages
        self.temperature = float(temperature)
        self.max_len = int(max_len)
        table = tables.page_q.astype(np.float32) * tables.page_scale[:, None]
        table[PAD_ID] = 0.0
        self.input_table = table
        self.segment_table = tables.segment_table
        out = table + self.segment_table[self.index.segment_of] if self.segment_table is not None else table
        self.output_table_t = np.ascontiguousarray(out.T)
        self.d_model = table.shape[1]
        prior = np.asarray(prior, dtype=np.float64)
        self.prior = prior / prior.sum() if prior.sum() > 0 else np.full(len(self.pages), 1.0 / max(1, len(self.pages)))

    @property
    def vocabulary_size(self) -> int:
        return len(self.pages)

    def vectors(self, ids: npt.NDArray[np.int64], segs: npt.NDArray[np.int64]) -> FloatArray:
        out = self.input_table[ids]
        if self.segment_table is not None:
            out = out + self.segment_table[segs]
        return out

    def encode(self, histories: Sequence[Sequence[str]]) -> dict[str, Any]:
        """Encoder inputs for the last ``max_len`` pages of each history (width >= 1), and the last ids."""
        n = len(histories)
        width = max(1, max((min(len(h), self.max_len) for h in histories), default=1))
        ids = np.zeros((n, width), dtype=np.int64)
        segs = np.zeros((n, width), dtype=np.int64)
        entry_ids = np.zeros(n, dtype=np.int64)
        entry_segs = np.zeros(n, dtype=np.int64)
        for i, h in enumerate(histories):
            if not h:
                continue
            row, row_segs = self.index.encode(list(h)[-self.max_len :])
            ids[i, width - len(row) :] = row
            segs[i, width - len(row) :] = row_segs
            (entry_ids[i],), (entry_segs[i],) = self.index.encode([h[0]])
        return {"emb": self.vectors(ids, segs), "real": (ids != PAD_ID).astype(np.float32),
                "entry": self.vectors(entry_ids, entry_segs), "last": ids[:, -1]}

    def logits(self, inputs: dict[str, Any]) -> FloatArray:
        """Uncalibrated logits ``[batch, vocab]`` (network ids) for encoded histories."""
        hidden: Any = self.session.run(None, {k: inputs[k] for k in ("emb", "real", "entry")})[0]
        hidden = np.asarray(hidden, dtype=np.float32)
        # one vector-matrix product per row: a batched matmul blocks differently per batch size, and a
        # query must get the same numbers alone or inside a micro-batch
        z = np.empty((len(hidden), self.output_table_t.shape[1]), dtype=np.float32)
        for i, row in enumerate(hidden):
            np.dot(row, self.output_table_t, out=z[i])
        z += self.tables.bias
        if self.tables.markov is not None:
            z += self.tables.alpha * self.tables.markov.rows(inputs["last"])
        out: FloatArray = z
        return out

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
        chosen = probs[rows, best].tolist()  # plain floats in one call (numpy scalars one by one cost more)
        return [[(pages[j], p) for j, p in zip(ids, ps, strict=True)]
                for ids, ps in zip(best.tolist(), chosen, strict=True)]


__all__ = ["OOV_ID", "PAD_ID", "RESERVED", "AttentionRuntime", "Tables", "session_options"]
