"""Which assets (images, css, js ...) a page pulls in, learned from co-occurrence in sessions.

When a page is preloaded, its assets are likely to be requested right after it. The model counts, for
each page view in the training sessions, the distinct assets requested before the next page view (within
``window`` seconds) and keeps ``P(asset | page, the session has not fetched the asset yet)``: a browser
fetches a shared asset (logo, stylesheet) once per session, so counting the views where it already had it
would under-state the probability for the views that matter -- the first one -- and make the warming
threshold mean less than it says. The warmer preloads a page's assets in order of expected benefit:
``P(page) * P(asset | page)``.
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
        already: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for session in sessions:
            if not session.times or not session.pages:
                continue
            views.update(session.pages)
            seen: list[set[str]] = [set() for _ in session.pages]
            first_fetch: dict[str, int] = {}
            for asset in session.assets:
                # the page view this asset belongs to: the last one at or before its time
                i = bisect.bisect_right(session.times, asset.time) - 1
                if i < 0:
                    continue
                path = self.normalize(asset.path)
                first_fetch.setdefault(path, i)
                if asset.time - session.times[i] > self.window:
                    continue
                seen[i].add(path)
            for page, assets in zip(session.pages, seen, strict=False):
                together[page].update(assets)
            # views of a page that came after the session already had the asset: not at risk, not counted
            for path, first in first_fetch.items():
                for page in session.pages[first + 1 :]:
                    already[page][path] += 1
        self._assets = {}
        for page, counts in together.items():
            n = views[page]
            had: Counter[str] = already.get(page, Counter())
            ranked = [(a, c / max(n - had.get(a, 0), c)) for a, c in counts.items()]
            ranked = [(a, p) for a, p in ranked if p >= self.min_probability]
            ranked.sort(key=lambda item: (-item[1], item[0]))
            if ranked:
                self._assets[page] = ranked[: self.max_assets]
        return self

    def assets_of(self, page: str) -> list[tuple[str, float]]:
        """``[(asset, P(asset | page))]``, most likely first; empty for unknown pages."""
        return self._assets.get(page, [])

    def __len__(self) -> int:
        return len(self._assets)
