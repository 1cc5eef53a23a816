"""Crawler filtering by user agent, with the maintained ``crawler-user-agents`` list (not a home-made one).

Crawlers walk links in site order, not as people do, so they distort the page transitions a predictor
learns; ``--drop-bots`` removes them. Logs repeat the same few hundred agents, so verdicts are cached.
"""

from __future__ import annotations

from precache.traces.errors import TraceFormatError

_CACHE_LIMIT = 100_000


class BotFilter:
    """``filter(agent) -> bool``: True when ``agent`` matches a known crawler pattern."""

    def __init__(self) -> None:
        try:
            from crawleruseragents import is_crawler
        except ImportError:  # pragma: no cover - it is a declared dependency
            raise TraceFormatError("--drop-bots needs the crawler-user-agents package (pip install "
                                   "crawler-user-agents)") from None
        self._is_crawler = is_crawler
        self._verdicts: dict[str, bool] = {}

    def __call__(self, agent: str) -> bool:
        verdict = self._verdicts.get(agent)
        if verdict is None:
            if len(self._verdicts) >= _CACHE_LIMIT:
                self._verdicts.clear()
            verdict = self._verdicts[agent] = bool(self._is_crawler(agent))
        return verdict
