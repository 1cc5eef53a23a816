"""One session-history store for the whole process: each session's pages, oldest first, capped and expiring.

Why one module: the middleware (hints and warming), the warmer, the service's ``/api/ml/predict`` and
``/api/ml/events``, the inference engine and the online-learning layer all need "the pages this session
viewed". They share one store and write each page view to it once. Two faces:

- :class:`HistoryStore` (async ``append`` / ``get``): what can be shared between processes -- Redis
  (:class:`RedisHistories`), Redis with an in-process fallback (:class:`FailoverHistories`), or memory.
- :class:`LocalHistory` (sync ``add`` / ``read`` / ``forget``): what the request path and the warmer read
  without awaiting; :class:`MemoryHistories` is both.

It imports nothing from precache (it sits just below ``config`` in the layering), so every package above
can use it.
"""

from precache.history.base import HistoryStore, LocalHistory
from precache.history.failover import FailoverHistories
from precache.history.memory import MemoryHistories
from precache.history.redis import RedisHistories, redis_tag

__all__ = ["FailoverHistories", "HistoryStore", "LocalHistory", "MemoryHistories", "RedisHistories", "redis_tag"]
