"""The attention (SASRec-style) page predictor.

Importing this package does *not* import torch: ``AttentionPredictor`` imports the training code
inside ``fit`` only, so loading and serving a saved model needs onnxruntime and numpy alone. The
kind "attention" is registered with the shared predictor registry on import.
"""

from __future__ import annotations

from precache.models.attention.predictor import AttentionPredictor
from precache.models.kinds import register_predictor

__all__ = ["AttentionPredictor"]


register_predictor("attention", AttentionPredictor)
