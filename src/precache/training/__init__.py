"""The training pipeline: collect → features → train → evaluate → gate → register → activate.

``run_pipeline(TrainRequest(...), registry)`` runs it once (training in a worker process with a timeout);
:mod:`precache.training.collector` drains the access-event Redis Stream into dated event files;
:mod:`precache.training.scheduler` runs pipelines on a schedule (APScheduler 3, one scheduler at a time).
"""

from precache.training.gate import GateDecision, decide
from precache.training.pipeline import ModelOutcome, PipelineResult, TrainingError, run_pipeline
from precache.training.request import MODEL_TYPES, TraceSource, TrainingConfig, TrainRequest

__all__ = [
    "MODEL_TYPES",
    "GateDecision",
    "ModelOutcome",
    "PipelineResult",
    "TraceSource",
    "TrainRequest",
    "TrainingConfig",
    "TrainingError",
    "decide",
    "run_pipeline",
]
