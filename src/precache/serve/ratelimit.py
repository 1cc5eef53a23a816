"""Per-token event rate limits shared by every replica, through Redis.

Why shared: a per-replica bucket lets N replicas accept N times ``PRECACHE_EVENTS_PER_SECOND`` from one
token, so the documented limit would depend on how many replicas run. Here each token has one Redis key
(``{prefix}rl:{<token hash>}``, hash-tagged for Cluster) holding its *theoretical arrival time* (GCRA, the
token bucket's exact equivalent with one number of state): a batch of ``n`` events is allowed when, after
adding ``n`` emission intervals, the TAT is at most ``burst`` intervals ahead of now. One Lua script does the
read, the decision and the write atomically in one round trip, on Redis' own clock, so replicas with skewed
clocks agree. When Redis cannot answer, the replica's own bucket (:class:`~precache.serve.limits.RateLimiter`)
decides instead (fail-safe rather than fail-open: the limit then holds per replica, as before), and the
failure is counted.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from precache.serve.limits import RateLimiter

log = logging.getLogger("precache.serve")

# KEYS[1]: the token's TAT (ms on Redis' clock). ARGV: events in the batch, ms per event, burst (events).
# Returns 0 when allowed (and stores the new TAT), else the ms to wait before this batch would be allowed.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + n * interval
local wait = new_tat - burst * interval - now
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""


class SharedRateLimiter:
    """``await allow(caller, n)`` -> ``(allowed, retry_after_seconds)``, one limit per token across replicas."""

    def __init__(self, redis: Any | None, prefix: str, rate: float, burst: int) -> None:
        self.redis, self.prefix, self.rate, self.burst = redis, prefix, rate, burst
        self.local = RateLimiter(rate, burst)
        self._script = redis.register_script(GCRA) if redis is not None else None
        self.refused = 0
        self.redis_failures = 0

    def key(self, caller: str) -> str:
        return f"{self.prefix}rl:{{{caller}}}"

    async def allow(self, caller: str, n: int) -> tuple[bool, int]:
        if self._script is not None:
            try:
                wait_ms = int(await self._script(keys=[self.key(caller)], args=[n, 1000.0 / self.rate, self.burst]))
            except Exception as exc:
                self.redis_failures += 1
                log.warning("rate limit: Redis failed (%s: %s); this replica's own bucket decides",
                            type(exc).__name__, exc)
            else:
                if wait_ms > 0:
                    self.refused += 1
                    return False, max(1, math.ceil(wait_ms / 1000))
                return True, 0
        if self.local.allow(caller, n):
            return True, 0
        self.refused += 1
        return False, self.local.retry_after(n)
