"""Defaults shared by several areas, defined once (stdlib only; importing this is free).

The settings (:mod:`precache.config`), the trace readers, the warmer, the replay and the CLI take their
defaults from here, so a change is one edit.
"""

from __future__ import annotations

PAGE_PREDICTOR = "page-predictor"
CACHE_OPTIMIZER = "cache-optimizer"
MODEL_NAMES = (PAGE_PREDICTOR, CACHE_OPTIMIZER)
"""The model registry's names (``precache models``, ``/api/ml/models/{name}``, ``modelType``), spelled here only."""

SESSION_GAP_SECONDS = 1800.0
"""A session is a client's requests with idle gaps under this many seconds (30 minutes)."""

WARMING_THRESHOLD = 0.7
"""The warmer preloads a predicted page when its probability is at least this."""

WARMING_TARGET_EFFICIENCY = 0.85
"""The share of origin preloads that should get used: the warmer moves its threshold (starting at
``WARMING_THRESHOLD``) online towards it (the specified 82% plus a margin)."""
