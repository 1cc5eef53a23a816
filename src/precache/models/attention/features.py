"""The attention model's inputs besides page ids, in numpy (shared by training and serving).

Why one module: what the network was trained on must be exactly what it is served, so the page-id
layout, the path-segment rule and the Markov term are computed by the same functions at both ends.

Model inputs (documented in docs/contracts.md; the service and the edge send only the page history):

* **page history** -- the session's pages so far (last ``max_len`` used), as given to ``predict``;
* **entry page** -- the history's first page (the session's landing page);
* **path segments** -- the first directory of each page path (``/shuttle/missions/x.html`` -> ``shuttle``),
  used when the trace's pages are paths that share directories (not on BMS or MSNBC, whose pages are
  opaque ids). A page never seen in training still contributes its segment.
* **Markov term** -- first-order transition counts of the training sessions, added to the logits.

Network ids: 0 = PAD, 1 = OOV, ``2 + i`` for ``pages[i]`` (the shared Vocabulary's id + 1).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

PAD_ID = 0
OOV_ID = 1
RESERVED = 2
NO_SEGMENT = 0

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def segment_key(page: str) -> str:
    """The first directory of a path-like page id, or "" (no segment) for top-level pages and opaque ids."""
    if not page.startswith("/"):
        return ""
    parts = page.split("?", 1)[0].strip("/").split("/")
    return parts[0] if len(parts) >= 2 and parts[0] else ""


def build_segments(pages: Sequence[str], max_segments: int = 512) -> list[str]:
    """Segments shared by at least two vocabulary pages, most pages first (a segment of a single page
    says nothing its page vector does not); at most ``max_segments``. Empty when pages are opaque ids."""
    counts = Counter(segment_key(p) for p in pages)
    counts.pop("", None)
    ranked = sorted(((n, s) for s, n in counts.items() if n >= 2), key=lambda ns: (-ns[0], ns[1]))
    return [s for _, s in ranked[:max_segments]]


class PageIndex:
    """Page string -> (network id, segment id), and the segment of every network id."""

    def __init__(self, pages: Sequence[str], segments: Sequence[str]) -> None:
        self.pages = list(pages)
        self.ids = {p: i + RESERVED for i, p in enumerate(self.pages)}
        self.segment_ids = {s: i + 1 for i, s in enumerate(segments)}
        seg = np.zeros(len(self.pages) + RESERVED, dtype=np.int64)
        for page, i in self.ids.items():
            seg[i] = self.segment_ids.get(segment_key(page), NO_SEGMENT)
        self.segment_of = seg

    @property
    def size(self) -> int:
        """Network vocabulary size (PAD and OOV included)."""
        return len(self.pages) + RESERVED

    def encode(self, pages: Iterable[str]) -> tuple[list[int], list[int]]:
        ids: list[int] = []
        segs: list[int] = []
        get, seg_get = self.ids.get, self.segment_ids.get
        for p in pages:
            i = get(p, OOV_ID)
            ids.append(i)
            segs.append(int(self.segment_of[i]) if i != OOV_ID else seg_get(segment_key(p), NO_SEGMENT))
        return ids, segs


class MarkovTerm:
    """Sparse first-order log-odds ``M[c, x] = log(1 + N(c, x) / (b_c * P_pop(x)))`` in CSR form.

    With the Witten-Bell smoothed Markov estimate ``P(x|c) = (N(c,x) + b_c P_pop(x)) / (N_c + b_c)``,
    ``log P(x|c) = log P_pop(x) + M[c, x] + const(c)``: adding ``M`` to logits that already carry log
    popularity (the output bias starts there) gives exactly smoothed Markov, up to a per-row constant
    that softmax ignores. ``b_c`` is the number of distinct successors of ``c``.
    """

    def __init__(self, indptr: IntArray, indices: IntArray, counts: IntArray, size: int, targets: IntArray) -> None:
        self.indptr = indptr.astype(np.int64)
        self.indices = indices.astype(np.int64)
        self.counts = counts.astype(np.int64)
        self.size = int(size)
        self.targets = targets.astype(np.int64)
        self.popularity = smoothed_popularity(self.targets.astype(np.float64))
        distinct = np.diff(self.indptr)
        rows = np.repeat(np.arange(self.size), distinct)
        self._rows = rows
        beta = np.maximum(distinct[rows], 1).astype(np.float64)
        self._scale = beta * np.maximum(self.popularity[self.indices], 1e-12)
        self.values = np.log1p(self.counts / self._scale).astype(np.float32)
        self._keys = rows * self.size + self.indices  # sorted: CSR rows ascending, columns ascending

    @classmethod
    def from_sequences(cls, sequences: Iterable[Sequence[int]], size: int,
                       max_entries: int | None = None) -> MarkovTerm:
        """Count transitions between network ids; keep the ``max_entries`` most frequent pairs (pairs
        seen once go first when the table must shrink to fit the size budget)."""
        pairs: Counter[tuple[int, int]] = Counter()
        targets = np.zeros(size, dtype=np.int64)
        for seq in sequences:
            for a, b in itertools.pairwise(seq):
                if a != PAD_ID and b != PAD_ID:
                    pairs[(a, b)] += 1
                    targets[b] += 1
        items = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if max_entries is not None:
            items = items[:max_entries]
        items.sort()
        rows = np.array([a for (a, _), _ in items], dtype=np.int64)
        cols = np.array([b for (_, b), _ in items], dtype=np.int64)
        counts = np.array([n for _, n in items], dtype=np.int64)
        indptr = np.zeros(size + 1, dtype=np.int64)
        np.add.at(indptr, rows + 1, 1)
        return cls(np.cumsum(indptr), cols, counts, size, targets)

    def rows(self, last: IntArray) -> FloatArray:
        """Dense ``[len(last), size]`` rows of ``M`` for the given current pages (PAD/OOV rows: zero)."""
        last = np.asarray(last, dtype=np.int64).reshape(-1)
        out = np.zeros((len(last), self.size), dtype=np.float32)
        if len(last) == 1:  # one query (the served batch-1 path): one slice instead of the general gather
            start, end = self.indptr[last[0]], self.indptr[last[0] + 1]
            out[0, self.indices[start:end]] = self.values[start:end]
            return out
        starts, ends = self.indptr[last], self.indptr[last + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total:
            owner = np.repeat(np.arange(len(last)), lengths)
            offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            entries = np.repeat(starts, lengths) + offsets
            out[owner, self.indices[entries]] = self.values[entries]
        return out

    def leave_one_out(self, last: IntArray, target: IntArray) -> FloatArray:
        """``M[c, x]`` minus its value had this one (c -> x) transition not been counted: subtracting it
        from a training target's logit keeps the network from learning to trust counts that include
        the very transition it is predicting (a pair seen once would otherwise look certain)."""
        last = np.asarray(last, dtype=np.int64).reshape(-1)
        target = np.asarray(target, dtype=np.int64).reshape(-1)
        keys = last * self.size + target
        pos = np.searchsorted(self._keys, keys)
        pos = np.minimum(pos, max(len(self._keys) - 1, 0))
        found = (len(self._keys) > 0) & (self._keys[pos] == keys) if len(self._keys) else np.zeros(len(keys), bool)
        out = np.zeros(len(keys), dtype=np.float32)
        if found.any():
            p = pos[found]
            full = self.values[p]
            loo = np.log1p(np.maximum(self.counts[p] - 1, 0) / self._scale[p])
            out[found] = full - loo
        return out

    @property
    def entries(self) -> int:
        return len(self.indices)

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """Compact storage: per-row successor counts and columns in the narrowest integer type that
        holds them (uint16 below 65,536), the pair counts and the target counts."""
        return {"markov_lengths": _narrow(np.diff(self.indptr)), "markov_indices": _narrow(self.indices),
                "markov_counts": _narrow(self.counts), "markov_targets": _narrow(self.targets)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[np.generic]], size: int) -> MarkovTerm:
        lengths = np.asarray(arrays["markov_lengths"], dtype=np.int64)
        indices = np.asarray(arrays["markov_indices"], dtype=np.int64)
        counts = np.asarray(arrays["markov_counts"], dtype=np.int64)
        targets = np.asarray(arrays["markov_targets"], dtype=np.int64)
        if (len(lengths) != size or len(targets) != size or int(lengths.sum()) != len(indices)
                or len(counts) != len(indices)):
            raise ValueError("Markov table does not match the vocabulary")
        if len(indices) and (indices.min() < 0 or indices.max() >= size):
            raise ValueError("Markov table indices out of range")
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return cls(indptr, indices, counts, size, targets)


def _narrow(values: npt.NDArray[np.int64]) -> npt.NDArray[np.generic]:
    """Non-negative integers as uint16 when they fit, else uint32 (int64 beyond that)."""
    top = int(values.max()) if len(values) else 0
    if top < 2**16:
        return values.astype(np.uint16)
    return values.astype(np.uint32) if top < 2**32 else values.astype(np.int64)


def smoothed_popularity(targets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Witten-Bell smoothed target popularity over the network ids (PAD gets 0)."""
    counts = targets.astype(np.float64).copy()
    counts[PAD_ID] = 0.0
    n = len(counts) - 1  # every id but PAD
    total, distinct = counts.sum(), float(np.count_nonzero(counts))
    beta = max(distinct, 1.0)
    p = (counts + beta / max(n, 1)) / (total + beta)
    p[PAD_ID] = 0.0
    out: npt.NDArray[np.float64] = p
    return out


def quantize_rows(table: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Symmetric int8 per row: ``table ~= q * scale[:, None]`` (a zero row keeps scale 1; the scales are
    float16-exact, so what is stored is what was used)."""
    scale = (np.abs(table).max(axis=1) / 127.0).astype(np.float16).astype(np.float32)  # stored as float16
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)
