"""Trace replay against a simulated origin through the real cache, and the before/after report."""

from precache.sim.experiment import Experiment, ExperimentConfig, run_experiment
from precache.sim.metrics import ReplayResult
from precache.sim.origin import LatencyModel, SimOrigin
from precache.sim.replay import Mode, ReplayConfig, replay
from precache.sim.report import write_report
from precache.sim.workload import PreparedTrace, prepare

__all__ = [
    "Experiment",
    "ExperimentConfig",
    "LatencyModel",
    "Mode",
    "PreparedTrace",
    "ReplayConfig",
    "ReplayResult",
    "SimOrigin",
    "prepare",
    "replay",
    "run_experiment",
    "write_report",
]
