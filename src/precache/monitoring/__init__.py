"""Monitoring: Prometheus metrics, online prediction accuracy, alerts with a webhook.

Why it lives in the library and not in the service: an application that embeds the cache exports the
same metrics as the HTTP service does. The hot path pays nothing extra: counts the cache and the warmer
already keep are read at sampling or scrape time (:class:`~precache.monitoring.monitor.Monitor`), and a
served prediction costs one counter bump and one histogram bucket.

Submodules load lazily; ``import precache.monitoring`` imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Monitor": "precache.monitoring.monitor",
    "MonitorSources": "precache.monitoring.monitor",
    "Snapshot": "precache.monitoring.snapshot",
    "OnlineAccuracyTracker": "precache.monitoring.accuracy",
    "AlertRule": "precache.monitoring.alerts",
    "AlertEvaluator": "precache.monitoring.alerts",
    "default_rules": "precache.monitoring.alerts",
    "WebhookNotifier": "precache.monitoring.webhook",
    "render_prometheus": "precache.monitoring.exposition",
    "RedisSnapshotShare": "precache.monitoring.share",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'precache.monitoring' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
