"""collect → features → train → evaluate (in a worker process) → gate → register → activate.

The first four stages run in :mod:`precache.training.worker`, a separate process with a timeout: a crash,
a kill or a timeout there leaves the registry exactly as it was (the worker writes only into a temporary
job directory, which is deleted). Gate, register and activate run here, in the caller, through the
registry's own crash-safe operations. A rejected candidate is registered too, marked ``rejected`` with the
gate's reason, so it can be inspected (or force-activated) later.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from precache.processes import end_process_group
from precache.registry.store import ActiveChangedError, ModelRegistry
from precache.training.gate import GateDecision, decide
from precache.training.request import TrainRequest
from precache.training.worker import REQUEST, RESULT

Progress = Callable[[str], None]
WORKER_STOP_GRACE = 2.0  # seconds a worker gets to exit on SIGTERM after Ctrl-C before it is killed


class TrainingError(RuntimeError):
    """The training worker crashed, failed or timed out; nothing was registered."""


@dataclass(slots=True)
class ModelOutcome:
    """What happened to one model name: ``activated``, ``registered`` (accepted, not activated),
    ``rejected`` (kept, marked) or ``skipped`` (no data for it)."""

    name: str
    status: str
    version: str | None = None
    reason: str = ""
    decision: GateDecision | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # fit, evaluate, score_active, register, ...

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "version": self.version, "reason": self.reason,
                "gate": self.decision.as_dict() if self.decision else None, "seconds": self.seconds}


@dataclass(slots=True)
class PipelineResult:
    outcomes: list[ModelOutcome] = field(default_factory=list)
    data_span: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    worker_seconds: float = 0.0  # the worker process, start to exit (collect, features, train, evaluate)
    collect_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"outcomes": [o.as_dict() for o in self.outcomes], "data_span": self.data_span,
                "seconds": self.seconds, "worker_seconds": self.worker_seconds,
                "collect_seconds": self.collect_seconds}


def worker_command(job: Path) -> list[str]:
    """The worker's command line (a module attribute so a test can substitute a worker that crashes)."""
    return [sys.executable, "-m", "precache.training.worker", str(job)]


def _run_worker(job: Path, timeout: float, progress: Progress) -> None:
    """Run the worker in its own process group and wait for it, ending the whole group on a timeout or on
    Ctrl-C. Why: the group does not get the terminal's SIGINT (``start_new_session``), so the parent must end
    it, and must never block on the worker's pipes meanwhile (both are drained by daemon threads)."""
    proc = subprocess.Popen(worker_command(job), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: a timeout kills all of it
    errors: list[str] = []
    stderr_tail: deque[str] = deque(maxlen=50)
    readers = [threading.Thread(target=_pump_progress, args=(proc, progress, errors), daemon=True),
               threading.Thread(target=_pump_tail, args=(proc, stderr_tail), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_process_group(proc, grace=0.0)
        raise TrainingError(f"training timed out after {timeout:.0f} s; the registry is unchanged") from None
    except BaseException:  # Ctrl-C (KeyboardInterrupt) or SystemExit: end the worker's group, then go on
        end_process_group(proc, grace=WORKER_STOP_GRACE)
        raise
    for reader in readers:
        reader.join(timeout=5)
    if code == 3 and errors:
        raise ValueError(errors[-1].split(": ", 1)[-1])
    if code != 0 or not (job / RESULT).is_file():
        lines = [line for line in "".join(stderr_tail).strip().splitlines() if line.strip()]
        detail = errors[-1] if errors else (lines or [f"exit status {code}"])[-1]
        raise TrainingError(f"training worker failed ({detail}); the registry is unchanged")


def _pump_progress(proc: subprocess.Popen[str], progress: Progress, errors: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and "progress" in message:
            progress(str(message["progress"]))
        elif isinstance(message, dict) and "error" in message:
            errors.append(str(message["error"]))


def _pump_tail(proc: subprocess.Popen[str], tail: deque[str]) -> None:
    """Keep the last lines of the worker's stderr (read continuously: a full pipe would block the worker)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        tail.append(line)


def run_pipeline(request: TrainRequest, registry: ModelRegistry, *, progress: Progress | None = None,
                 activate: bool = True, workdir: str | Path | None = None) -> PipelineResult:
    """One full run. Raises :class:`TrainingError` (worker failed) or ``ValueError`` (bad data/request)."""
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    job = Path(tempfile.mkdtemp(prefix="precache-train-", dir=workdir))
    result = PipelineResult()
    try:
        actives = {name: registry.active(name) for name in request.names}
        spec = {"request": request.to_json(),
                "active": {name: str(info.path) for name, info in actives.items() if info is not None}}
        (job / REQUEST).write_text(json.dumps(spec), encoding="utf-8")
        _run_worker(job, request.config.timeout_seconds, say)
        result.worker_seconds = time.perf_counter() - started
        produced = json.loads((job / RESULT).read_text(encoding="utf-8"))
        result.data_span = produced["data_span"]
        result.collect_seconds = float(produced.get("collect_seconds", 0.0))
        for name in request.names:
            result.outcomes.append(_gate_and_register(name, job / name, produced["models"][name],
                                                      actives.get(name), request, produced["data_span"],
                                                      registry, activate, say))
    finally:
        shutil.rmtree(job, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _gate_and_register(name: str, model_dir: Path, produced: dict[str, Any], active: Any, request: TrainRequest,
                       data_span: dict[str, Any], registry: ModelRegistry, activate: bool,
                       say: Progress) -> ModelOutcome:
    if "skipped" in produced:
        return ModelOutcome(name, "skipped", reason=str(produced["skipped"]))
    cfg = request.config
    candidate = float(produced["candidate"])
    active_score = produced.get("active")
    decision = decide(str(produced["metric"]), candidate, target=cfg.target_accuracy, tolerance=cfg.tolerance,
                      active=None if active_score is None else float(active_score),
                      active_version=active.version if active is not None else None)
    say(f"{name}: gate {'accepted' if decision.accepted else 'rejected'}: {decision.reason}")
    started = time.perf_counter()
    metrics = {**produced["metrics"], "slice": produced["slice"]}
    if produced.get("note"):
        metrics["note"] = produced["note"]
    info = registry.register(
        name, model_dir,
        status="accepted" if decision.accepted else "rejected",
        reason="" if decision.accepted else decision.reason, metrics=metrics, data_span=data_span,
        training_config=request.to_json(), gate=decision.as_dict(),
    )
    outcome = ModelOutcome(name, "rejected" if not decision.accepted else "registered", info.version,
                           decision.reason, decision, dict(produced.get("seconds", {})))
    if decision.accepted and activate:
        try:  # only over the version it was compared with: another run may have activated one meanwhile
            registry.activate(name, info.version, if_active=active.version if active is not None else None)
            outcome.status = "activated"
        except ActiveChangedError as exc:
            outcome.reason = f"{decision.reason}; not activated: {exc}"
    outcome.seconds["register_activate"] = time.perf_counter() - started
    return outcome
