"""Predictions that learn from live traffic: decayed, capped count state merged with the frozen model.

Modules: :mod:`~precache.online.state` (the counts, decay and cap), :mod:`~precache.online.merge` (the merge
and the online predictor), :mod:`~precache.online.guards` (what traffic may teach), :mod:`~precache.online.
prequential` and :mod:`~precache.online.protocol` (test-then-learn measurement). Light: numpy-free.
"""

from precache.online.guards import ContributionGuard
from precache.online.merge import MergeParams, OnlinePredictor
from precache.online.state import OnlineCounts

__all__ = ["ContributionGuard", "MergeParams", "OnlineCounts", "OnlinePredictor"]
