"""Serving-side inference: load exported models, keep session histories, micro-batch, top-k.

Imports numpy and onnxruntime only (never torch or scikit-learn), so edge workers stay small.
"""

from __future__ import annotations

from precache.inference.engine import EngineStats, InferenceEngine, load_model

__all__ = ["EngineStats", "InferenceEngine", "load_model"]
