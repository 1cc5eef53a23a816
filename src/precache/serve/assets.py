"""Which assets go with a page, learned from the events back ends report: the ``assets`` of a warming list.

Why from events: model directories hold page predictors only (no asset model is trained or persisted), but
``POST /api/ml/events`` already receives what a session fetched, in order: a page view (``page``) and then
the cache keys it pulled (``key`` without ``page``: images, scripts, API calls). Each key-only event belongs
to the view before it in its session (the batch's earlier page event, else the last page of the session's
stored history, so a log shipper may split a view's accesses across batches). Like
:class:`precache.warming.assets.AssetModel`, a key counts once per view, and ``P(asset | page)`` = views
that fetched it / reported views of the page; unlike it, views after the session already had the asset are
not left out of the denominator (that would take per-session asset sets), so shared assets are
under-estimated: a conservative error (fewer preloads, never more).

Storage: one Redis hash per page (``{prefix}assets:{<sha256 of page>}``, hash-tagged, one key per Lua call,
so it works on Redis Cluster): field ``""`` counts the page's reported views (asset keys are never empty),
every other field an asset's co-occurrences; at most ``MAX_TRACKED`` assets per page. The lists keep learning
(issue 28: the first 256 keys of a page kept their places for ever, so a page with cache-busting keys never
learned a new asset): a new asset on a full page evicts the one seen least recently (a sorted set of last
sightings), and an asset's probability counts only the views since it was first seen (a hash of first
sightings). Everything expires ``PRECACHE_EVENT_RETENTION_SECONDS`` after the page's last report. Without
Redis the warming lists carry no assets (nothing is learned per replica).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from precache.history import redis_tag

log = logging.getLogger("precache.serve")

RETRY_AFTER_SECONDS = 5.0
MAX_TRACKED = 256  # assets remembered per page
MIN_PROBABILITY = 0.05  # P(asset | page) below this is not listed (AssetModel's default)
MAX_LISTED = 20  # assets listed per page, most likely first (AssetModel's default)
VIEWS = ""

# KEYS: the page's counts, its assets' last sighting (a sorted set, scored by the page's view count then) and
# their first sighting (a hash: the page's view count before it), one hash tag. ARGV: views to add, expiry
# ms, cap, then (asset, count) pairs. A new asset on a full page evicts the one seen least recently.
_COUNT = """
local h, seen, first = KEYS[1], KEYS[2], KEYS[3]
local added = tonumber(ARGV[1])
local views = redis.call('HINCRBY', h, '', added)
local cap = tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local asset = ARGV[i]
  if redis.call('HEXISTS', h, asset) == 0 then
    if redis.call('HLEN', h) - 1 >= cap then
      local stale = redis.call('ZRANGE', seen, 0, 0)
      if stale[1] then
        redis.call('HDEL', h, stale[1])
        redis.call('HDEL', first, stale[1])
        redis.call('ZREM', seen, stale[1])
      end
    end
    redis.call('HSET', first, asset, views - added)
  end
  redis.call('HINCRBY', h, asset, ARGV[i + 1])
  redis.call('ZADD', seen, views, asset)
end
redis.call('PEXPIRE', h, ARGV[2])
redis.call('PEXPIRE', seen, ARGV[2])
redis.call('PEXPIRE', first, ARGV[2])
return redis.call('HLEN', h) - 1
"""

Event = tuple[str | None, str | None]  # (page, key) of one reported access, in order


def views_and_assets(before: Sequence[str], events: Iterable[Event]) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """One session's page views and (page, asset) co-occurrences, a key counted once per view. ``before``: the
    session's history before these events (its last page owns key-only events that come first)."""
    views: Counter[str] = Counter()
    together: Counter[tuple[str, str]] = Counter()
    current = before[-1] if before else None
    fetched: set[str] = set()
    for page, key in events:
        if page is not None:
            current, fetched = page, set()
            views[page] += 1
        elif key is not None and current is not None and key not in fetched:
            fetched.add(key)
            together[(current, key)] += 1
    return views, together


class AssetCounts:
    def __init__(self, redis: Any | None, prefix: str, retention: float, max_tracked: int = MAX_TRACKED) -> None:
        self.redis, self.prefix, self.max_tracked = redis, prefix, max_tracked
        self.retention_ms = max(1, int(retention * 1000))
        self.failures = 0
        self._skip_until = 0.0  # after a Redis failure, warming lists skip assets a while (no timeout per request)

    def _failed(self, what: str, exc: Exception) -> None:
        self.failures += 1
        self._skip_until = time.monotonic() + RETRY_AFTER_SECONDS
        log.warning("%s: Redis failed (%s: %s)", what, type(exc).__name__, exc)

    def key(self, page: str) -> str:
        return f"{self.prefix}assets:{{{redis_tag(page)}}}"

    async def add(self, views: Counter[str], together: Counter[tuple[str, str]]) -> None:
        """Count a batch's views and co-occurrences (one pipelined round trip; a Redis failure is logged)."""
        if self.redis is None or not (views or together):
            return
        by_page: dict[str, list[Any]] = {page: [] for page in views}
        for (page, asset), count in together.items():
            by_page.setdefault(page, []).extend((asset, count))
        try:
            pipe = self.redis.pipeline(transaction=False)  # type: ignore[union-attr]
            for page, pairs in by_page.items():  # EVAL, not EVALSHA: a Cluster pipeline cannot reload a script
                key = self.key(page)
                pipe.eval(_COUNT, 3, key, f"{key}:seen", f"{key}:first", views.get(page, 0), self.retention_ms,
                          self.max_tracked, *pairs)
            await pipe.execute()
        except Exception as exc:
            self._failed("asset counts not recorded", exc)

    async def of_pages(self, pages: Sequence[tuple[str, float]], threshold: float) -> list[list[tuple[str, float]]]:
        """For each ``(page, P(page))``: ``[(asset, P(page) * P(asset | page))]`` at or above ``threshold`` (and
        ``P(asset | page) >= MIN_PROBABILITY``), most likely first; empty lists when Redis cannot answer."""
        empty: list[list[tuple[str, float]]] = [[] for _ in pages]
        if self.redis is None or not pages or time.monotonic() < self._skip_until:
            return empty
        try:
            pipe = self.redis.pipeline(transaction=False)
            for page, _ in pages:
                pipe.hgetall(self.key(page))
                pipe.hgetall(f"{self.key(page)}:first")
            tables = await pipe.execute()
        except Exception as exc:
            self._failed("warming without assets", exc)
            return empty
        return [_ranked(_decoded(counts), _decoded(first), p, threshold)
                for (_, p), counts, first in zip(pages, tables[0::2], tables[1::2], strict=True)]


def _decoded(table: dict[Any, Any]) -> dict[str, int]:
    out = {}
    for field, value in table.items():
        try:
            out[field.decode() if isinstance(field, bytes) else str(field)] = int(value)
        except (ValueError, UnicodeDecodeError):
            continue  # a malformed entry (not written by us) is skipped, never trusted
    return out


def _ranked(counts: dict[str, int], first: dict[str, int], p_page: float, threshold: float
            ) -> list[tuple[str, float]]:
    """``P(asset | page)`` = views that fetched it / views of the page since it was first seen (an asset that
    appeared late -- a new version of a script -- is not diluted by the views before it existed)."""
    views = counts.pop(VIEWS, 0)
    if views <= 0:
        return []
    ranked = []
    for asset, n in counts.items():
        p_asset = min(1.0, n / max(1, views - first.get(asset, 0)))
        if p_asset >= MIN_PROBABILITY and p_page * p_asset >= threshold:
            ranked.append((asset, p_page * p_asset))
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked[:MAX_LISTED]
