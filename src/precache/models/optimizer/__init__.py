"""The cache optimizer: learned admission, eviction priority, adaptive TTL and staleness.

Runtime imports only numpy + onnxruntime; training (``precache.models.optimizer.train``) needs the
``train`` extra (lightgbm, onnxmltools).
"""

from precache.models.optimizer.features import FEATURE_NAMES, N_FEATURES, FeatureTracker
from precache.models.optimizer.labels import CacheTrace, Dataset, build_dataset, trace_from_requests
from precache.models.optimizer.model import ModelIntegrityError, OptimizerModel, Predictions, decision_metrics
from precache.models.optimizer.policy import LearnedPolicy

__all__ = [
    "FEATURE_NAMES",
    "N_FEATURES",
    "CacheTrace",
    "Dataset",
    "FeatureTracker",
    "LearnedPolicy",
    "ModelIntegrityError",
    "OptimizerModel",
    "Predictions",
    "build_dataset",
    "decision_metrics",
    "trace_from_requests",
]
