"""Tell services and edge workers that the registry changed, so they reload without polling the disk.

The revision counter in the store is the truth; this pub/sub message is the fast path. A subscriber that
missed a message (it was down) still sees the higher revision on its next look at ``revision.json``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "precache:models"


class RedisNotifier:
    """Publishes each registry change as JSON on ``channel``; a Redis that is down costs one short timeout."""

    def __init__(self, url: str, channel: str = CHANNEL, timeout: float = 0.5) -> None:
        self.url = url
        self.channel = channel
        self.timeout = timeout

    def __call__(self, change: dict[str, Any]) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        try:
            client.publish(self.channel, json.dumps(change, sort_keys=True))
        except redis.RedisError as exc:
            log.info("registry change not published (%s): %s", self.url, exc)
        finally:
            client.close()
