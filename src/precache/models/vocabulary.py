"""Page <-> integer id, the most frequent pages up to a size, everything else out-of-vocabulary.

Why: every model works on small integer ids (numpy arrays, embeddings, NPZ files), and a model can only
predict pages it has seen often enough. Id 0 is reserved for out-of-vocabulary (OOV) pages, so unknown
pages in a history are representable and are never predicted. Ids 1..n follow descending training
frequency (ties by page name), which makes the order deterministic and the file stable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from precache.models.files import ModelFileError, write_json
from precache.traces.model import Session

OOV = 0
OOV_TOKEN = "<oov>"


class Vocabulary:
    """Immutable mapping; build with :meth:`from_sessions`, store with :meth:`save` (JSON)."""

    def __init__(self, pages: Sequence[str], counts: Sequence[int] | None = None) -> None:
        if len(set(pages)) != len(pages):
            raise ValueError("vocabulary pages must be distinct")
        self.pages: list[str] = [OOV_TOKEN, *pages]
        self.counts: list[int] = [0, *(counts if counts is not None else [0] * len(pages))]
        if len(self.counts) != len(self.pages):
            raise ValueError("counts must match pages")
        self._ids = {page: i for i, page in enumerate(self.pages) if i != OOV}

    @classmethod
    def from_counts(cls, counter: Counter[str], max_size: int | None = None, min_count: int = 1) -> Vocabulary:
        items = sorted(((c, p) for p, c in counter.items() if c >= min_count), key=lambda cp: (-cp[0], cp[1]))
        if max_size is not None:
            if max_size < 1:
                raise ValueError(f"vocabulary max_size must be >= 1, got {max_size}")
            items = items[:max_size]
        return cls([p for _, p in items], [c for c, _ in items])

    @classmethod
    def from_sessions(
        cls, sessions: Iterable[Session], max_size: int | None = None, min_count: int = 1
    ) -> Vocabulary:
        counter: Counter[str] = Counter()
        for session in sessions:
            counter.update(session.pages)
        return cls.from_counts(counter, max_size, min_count)

    def __len__(self) -> int:
        """Number of real pages (OOV excluded)."""
        return len(self.pages) - 1

    def __contains__(self, page: object) -> bool:
        return page in self._ids

    @property
    def index(self) -> dict[str, int]:
        """page -> id for known pages (read-only by convention; use ``.get(page, OOV)`` in hot loops)."""
        return self._ids

    def id(self, page: str) -> int:
        return self._ids.get(page, OOV)

    def encode(self, pages: Iterable[str]) -> list[int]:
        get = self._ids.get
        return [get(p, OOV) for p in pages]

    def page(self, page_id: int) -> str:
        return self.pages[page_id]

    def to_json(self) -> dict[str, list[str] | list[int]]:
        return {"pages": self.pages[1:], "counts": self.counts[1:]}

    @classmethod
    def from_json(cls, data: object) -> Vocabulary:
        if not isinstance(data, dict) or not isinstance(data.get("pages"), list):
            raise ModelFileError("vocabulary file must hold {'pages': [...], 'counts': [...]}")
        pages = data["pages"]
        counts = data.get("counts") or [0] * len(pages)
        if not isinstance(counts, list) or not all(isinstance(p, str) for p in pages) or len(counts) != len(pages):
            raise ModelFileError("vocabulary pages must be strings with one count each")
        try:
            return cls(pages, [int(c) for c in counts])
        except (TypeError, ValueError, OverflowError) as exc:
            raise ModelFileError(f"bad vocabulary: {exc}") from exc

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())
