"""Session-based k-nearest-neighbours (SKNN / V-SKNN, Ludewig & Jannach 2018/2021).

Why: in published comparisons of session-based recommenders this simple method is hard to beat, and it
shines exactly where Markov models starve -- sparse catalogues where most page pairs were never seen
(e.g. DIGINETICA). It needs no training beyond indexing past sessions.

How: the current session is compared with past sessions that share at least one page. Only the most
recent ``sessions_per_page`` sessions per page are indexed (recent-session sampling, which also bounds the
model file), and of the candidates only the ``sample_size`` most recent are scored. Similarity is cosine
over the sets of pages (``similarity="cosine"``) or the V-SKNN variant where pages later in the current
session weigh more (``"position"``, linear decay). The ``neighbors`` most similar sessions vote for their
pages with their similarity. Scores are normalised to sum 1 and blended with popularity
(``popularity_weight``) so every page gets some probability and the result is a real distribution.
Neighbours always contain the pages of the current session, so raw votes would rank "stay on a page
you have seen" first; instead the mass of already-seen pages is set to the training repeat rate (how
often the next page is one already in the session: rare on BMS, common on MSNBC).
An empty history or one with only unknown pages falls back to popularity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from precache.models.base import (
    ModelFileError,
    ModelFiles,
    PagePredictorBase,
    Prediction,
    top_k_pages,
    write_npz,
)
from precache.models.vocabulary import OOV, Vocabulary
from precache.traces.model import Session

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_MEMO_LIMIT = 100_000
_SIMILARITIES = ("cosine", "position")


class SessionKNNPredictor(PagePredictorBase):
    """Session-kNN with an inverted index page -> recent sessions."""

    kind: ClassVar[str] = "sknn"

    def __init__(
        self,
        neighbors: int = 100,
        sample_size: int = 500,
        similarity: str = "position",
        sessions_per_page: int = 1000,
        popularity_weight: float = 0.05,
        max_vocabulary: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if neighbors < 1 or sample_size < 1 or sessions_per_page < 1:
            raise ValueError("neighbors, sample_size and sessions_per_page must be >= 1")
        if similarity not in _SIMILARITIES:
            raise ValueError(f"similarity must be one of {', '.join(_SIMILARITIES)}, got {similarity!r}")
        if not 0.0 < popularity_weight < 1.0:
            raise ValueError(f"popularity_weight must be in (0, 1), got {popularity_weight}")
        self.neighbors = neighbors
        self.sample_size = sample_size
        self.similarity = similarity
        self.sessions_per_page = sessions_per_page
        self.popularity_weight = popularity_weight
        self.max_vocabulary = max_vocabulary
        self.vocabulary = Vocabulary([])
        self._items: IntArray = np.zeros(0, dtype=np.int64)  # distinct page ids of kept sessions (CSR)
        self._offsets: IntArray = np.zeros(1, dtype=np.int64)
        self._norms: FloatArray = np.zeros(0)
        self._unigram: IntArray = np.zeros(1, dtype=np.int64)
        self._p0: FloatArray = np.zeros(1)
        self._index: list[IntArray] = []
        self.repeat_rate = 0.0
        self._memo: dict[tuple[tuple[int, ...], int], Prediction] = {}

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    # -- fitting ------------------------------------------------------------------------------------
    def fit(self, train: Sequence[Session], validation: Sequence[Session] | None = None) -> None:
        """Index train + validation (the most recent sessions matter most, and validation is the latest)."""
        sessions = sorted(list(train) + list(validation or []), key=lambda s: s.start)
        counter: Counter[str] = Counter()
        targets: Counter[str] = Counter()
        repeats = transitions = 0
        for session in sessions:
            counter.update(session.pages)
            targets.update(session.pages[1:])
            seen: set[str] = set()
            for i, page in enumerate(session.pages):
                if i:
                    transitions += 1
                    repeats += page in seen
                seen.add(page)
        repeat_rate = repeats / transitions if transitions else 0.0
        self.vocabulary = Vocabulary.from_counts(counter, self.max_vocabulary)
        get = self.vocabulary.index.get
        unigram = np.zeros(len(self.vocabulary) + 1, dtype=np.int64)
        for page, count in targets.items():
            unigram[get(page, OOV)] += count
        unigram[OOV] = 0
        # Walk sessions newest first, keeping each for the pages whose quota is not yet full.
        quota = np.full(len(self.vocabulary) + 1, self.sessions_per_page, dtype=np.int64)
        kept: list[list[int]] = []
        for session in reversed(sessions):
            ids = sorted({get(page, OOV) for page in session.pages} - {OOV})
            if ids and any(quota[i] > 0 for i in ids):
                for i in ids:
                    quota[i] -= 1
                kept.append(ids)
        kept.reverse()  # oldest first: a higher session index means more recent
        lengths = np.asarray([len(ids) for ids in kept], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.asarray([i for ids in kept for i in ids], dtype=np.int64)
        self._set_state(items, offsets, unigram, repeat_rate)
        self.fitted = True

    def _set_state(self, items: IntArray, offsets: IntArray, unigram: IntArray, repeat_rate: float) -> None:
        self._items, self._offsets, self._unigram = items, offsets, unigram
        self.repeat_rate = min(1.0, max(0.0, repeat_rate))
        lengths = np.diff(offsets)
        self._norms = np.sqrt(np.maximum(lengths, 1).astype(np.float64))
        owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        order = np.lexsort((owner, items))  # by page, then session (ascending = oldest first)
        by_page, sessions_of = items[order], owner[order]
        bounds = np.searchsorted(by_page, np.arange(len(unigram) + 1))
        self._index = [
            sessions_of[bounds[p] : bounds[p + 1]][-self.sessions_per_page :] for p in range(len(unigram))
        ]
        total = int(unigram.sum())
        pages = len(unigram) - 1
        p0 = np.zeros(len(unigram))
        if pages:
            p0[1:] = (unigram[1:] + 1.0 / pages) / (total + 1.0)
        self._p0 = p0
        self._memo = {}

    # -- prediction ---------------------------------------------------------------------------------
    def clear_cache(self) -> None:
        self._memo = {}

    def scores(self, history: Sequence[str]) -> FloatArray:
        """The next-page distribution (index = vocabulary id; OOV gets 0)."""
        return self._scores(tuple(self.vocabulary.encode(history)))

    def _scores(self, encoded: tuple[int, ...]) -> FloatArray:
        weights: dict[int, float] = {}
        length = len(encoded)
        for position, page in enumerate(encoded, start=1):
            if page != OOV:
                weights[page] = (position / length) if self.similarity == "position" else 1.0
        if not weights or len(self._offsets) <= 1:
            return self._p0.copy()
        found, numerator = self._candidates(weights)
        if len(found) == 0:
            return self._p0.copy()
        similarity = numerator / (self._norms[found] * np.sqrt(len(weights)))
        if len(found) > self.neighbors:
            best = np.argpartition(-similarity, self.neighbors - 1)[: self.neighbors]
            found, similarity = found[best], similarity[best]
        starts = self._offsets[found]
        lengths = self._offsets[found + 1] - starts
        total = int(lengths.sum())
        positions = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
        scores = np.bincount(
            self._items[positions], weights=np.repeat(similarity, lengths), minlength=len(self._p0)
        )
        scores[OOV] = 0.0
        seen = np.fromiter(weights, dtype=np.int64, count=len(weights))
        seen_mass = scores[seen].sum()
        mass = scores.sum()
        if mass <= 0:
            return self._p0.copy()
        if 0 < seen_mass < mass:
            seen_scores = scores[seen] * (self.repeat_rate / seen_mass)
            scores *= (1.0 - self.repeat_rate) / (mass - seen_mass)
            scores[seen] = seen_scores
            mass = scores.sum()
            if mass <= 0:
                return self._p0.copy()
        result: FloatArray = (1.0 - self.popularity_weight) * scores / mass + self.popularity_weight * self._p0
        return result

    def _candidates(self, weights: dict[int, float]) -> tuple[IntArray, FloatArray]:
        """The ``sample_size`` most recent sessions sharing a page with the history (ascending), and the
        sum of the history pages' weights each shares (cosine numerator).

        Why not one count over all sessions: that costs O(indexed sessions) per query (42k on BMS). Each
        index list is sorted oldest first, and a session among the ``sample_size`` most recent of the
        union is among the most recent of every list holding it, so each list's tail suffices; and the
        ``sample_size``-th newest session of a full list bounds the union's from below, so only sessions
        after it are counted. Votes add per session in the same order as a count over all sessions would,
        so the result is the same to the last bit.
        """
        size = self.sample_size
        lists = [self._index[p][-size:] for p in weights]
        if len(lists) == 1:  # one page: its list is already the sorted, distinct candidate sessions
            return lists[0], np.full(len(lists[0]), next(iter(weights.values())))
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        votes = np.repeat(np.fromiter(weights.values(), dtype=np.float64, count=len(weights)), lengths)
        candidates = np.concatenate(lists)
        floor = max((int(lst[0]) for lst in lists if len(lst) == size), default=0)
        if floor:
            keep = candidates >= floor
            candidates, votes = candidates[keep], votes[keep]
        window = len(self._norms) - floor
        if window <= 8 * len(candidates):  # a dense count over the window is cheaper than sorting
            counted = np.bincount(candidates - floor, weights=votes, minlength=window)
            offsets = np.flatnonzero(counted)  # votes are > 0: nonzero = shares a page
            found, numerator = offsets + floor, counted[offsets]
        else:
            found, inverse = np.unique(candidates, return_inverse=True)
            numerator = np.bincount(inverse, weights=votes, minlength=len(found))
        return np.asarray(found[-size:], dtype=np.int64), np.asarray(numerator[-size:], dtype=np.float64)

    def _predict(self, history: Sequence[str], k: int) -> Prediction:
        encoded = tuple(self.vocabulary.encode(history))
        key = (encoded, k)
        cached = self._memo.get(key)
        if cached is not None:
            return list(cached)
        scores = self._scores(encoded)[1:]
        result = top_k_pages(scores, k, self.vocabulary.pages)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = result
        return list(result)

    # -- files --------------------------------------------------------------------------------------
    def _save_files(self, directory: Path) -> list[str]:
        self.vocabulary.save(directory / "vocabulary.json")
        write_npz(
            directory / "sessions.npz",
            {
                "items": self._items.astype(np.int32),
                "offsets": self._offsets.astype(np.int64),
                "unigram": self._unigram.astype(np.int64),
                "repeat_rate": np.asarray([self.repeat_rate], dtype=np.float64),
            },
        )
        return ["vocabulary.json", "sessions.npz"]

    def _load_files(self, files: ModelFiles) -> None:
        self.vocabulary = Vocabulary.from_json(files.read_json("vocabulary.json"))
        arrays = files.read_npz("sessions.npz", ("items", "offsets", "unigram", "repeat_rate"))
        items = arrays["items"].astype(np.int64)
        offsets = arrays["offsets"].astype(np.int64)
        unigram = arrays["unigram"].astype(np.int64)
        if arrays["repeat_rate"].shape != (1,) or not np.isfinite(arrays["repeat_rate"][0]):
            raise ModelFileError(f"{files.root}: sessions.npz has a bad repeat_rate")
        repeat_rate = float(arrays["repeat_rate"][0])
        size = len(self.vocabulary) + 1
        if (
            unigram.shape != (size,)
            or np.any(unigram < 0)
            or items.ndim != 1
            or offsets.ndim != 1
            or len(offsets) == 0
            or offsets[0] != 0
            or offsets[-1] != len(items)
            or np.any(np.diff(offsets) < 0)
            or (len(items) and (items.min() < 1 or items.max() >= size))
        ):
            raise ModelFileError(f"{files.root}: sessions.npz is inconsistent with the vocabulary")
        self._set_state(items, offsets, unigram, repeat_rate)
