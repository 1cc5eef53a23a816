"""A lease in Redis: one holder at a time among every worker of every replica, renewed while it lives.

Why: with ``--workers 2`` every alert went out twice (each worker evaluated and sent it); with two replicas,
four times. The alert loop runs everywhere, but only the lease holder evaluates and notifies; the others read
the shared alert states. A holder that dies stops renewing, and another process takes over within one
lease lifetime. Renewal is a compare-and-extend script, so a holder that lost the lease (a long pause) can
never extend someone else's.
"""

from __future__ import annotations

from typing import Any

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLease:
    def __init__(self, redis: Any, key: str, owner: str, ttl_seconds: float) -> None:
        self.redis, self.key, self.owner = redis, key, owner
        self.ttl_ms = max(1, int(ttl_seconds * 1000))

    async def hold(self) -> bool:
        """Take the lease if free, renew it if ours; False when another process holds it."""
        if await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            return True
        return bool(await self.redis.eval(_RENEW, 1, self.key, self.owner, self.ttl_ms))

    async def release(self) -> None:
        """Give the lease up now (at shutdown), if ours."""
        await self.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
                              "end return 0", 1, self.key, self.owner)


class AlertLeadership:
    """The alert loop's one-sender rule: ``await step(tick)`` runs ``tick()`` (evaluate and notify) only while
    holding the lease, publishing the evaluator's states after it; a process without the lease loads those
    states instead, so every worker's ``active()`` (the JSON summary, the dashboard) shows the same alerts and a
    new leader does not announce already-firing alerts again."""

    def __init__(self, redis: Any, evaluator: Any, prefix: str, owner: str, interval: float) -> None:
        self.redis, self.evaluator = redis, evaluator
        self.lease = RedisLease(redis, f"{prefix}:lease", owner, ttl_seconds=max(3 * interval, 1.0))
        self.state_key = f"{prefix}:state"
        self.leading = False

    async def step(self, tick: Any) -> bool:
        import json

        if await self.lease.hold():
            if not self.leading:
                await self._load()
                self.leading = True
            tick()
            await self.redis.set(self.state_key, json.dumps(self.evaluator.state_dict()))
            return True
        self.leading = False
        await self._load()
        return False

    async def _load(self) -> None:
        import json

        raw = await self.redis.get(self.state_key)
        if raw is not None:
            try:
                self.evaluator.load_state(json.loads(raw))
            except ValueError:
                pass  # a malformed state is ignored: evaluation starts from scratch
