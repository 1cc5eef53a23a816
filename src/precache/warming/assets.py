"""Which assets (images, css, js ...) a page pulls in, learned from co-occurrence in sessions.

When a page is preloaded, its assets are likely to be requested right after it. The model counts, for
each page view in the training sessions, the distinct assets requested before the next page view (within
``window`` seconds) and keeps ``P(asset | page)``. The warmer preloads a page's assets in order of
expected benefit: ``P(page) * P(asset | page)``.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

from precache.traces.model import Session


def _strip_query(path: str) -> str:
    return path.split("?", 1)[0] or "/"


class AssetModel:
    """``P(asset | page)`` from sessions; ``assets_of(page)`` lists the likely ones, best first."""

    def __init__(
        self,
        window: float = 60.0,
        min_probability: float = 0.05,
        max_assets: int = 20,
        normalize: Callable[[str], str] = _strip_query,
    ) -> None:
        self.window = window
        self.min_probability = min_probability
        self.max_assets = max_assets
        self.normalize = normalize
        self._assets: dict[str, list[tuple[str, float]]] = {}

    def fit(self, sessions: Iterable[Session]) -> AssetModel:
        views: Counter[str] = Counter()
        together: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for session in sessions:
            if not session.times or not session.pages:
                continue
            views.update(session.pages)
            seen: list[set[str]] = [set() for _ in session.pages]
            for asset in session.assets:
                # the page view this asset belongs to: the last one at or before its time
                i = bisect.bisect_right(session.times, asset.time) - 1
                if i < 0 or asset.time - session.times[i] > self.window:
                    continue
                seen[i].add(self.normalize(asset.path))
            for page, assets in zip(session.pages, seen, strict=False):
                together[page].update(assets)
        self._assets = {}
        for page, counts in together.items():
            n = views[page]
            ranked = [(a, c / n) for a, c in counts.items() if c / n >= self.min_probability]
            ranked.sort(key=lambda item: (-item[1], item[0]))
            if ranked:
                self._assets[page] = ranked[: self.max_assets]
        return self

    def assets_of(self, page: str) -> list[tuple[str, float]]:
        """``[(asset, P(asset | page))]``, most likely first; empty for unknown pages."""
        return self._assets.get(page, [])

    def __len__(self) -> int:
        return len(self._assets)
