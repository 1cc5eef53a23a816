"""``precache experiments create | list | stop | show``: A/B experiments shared through Redis (``REDIS_URL``).

``create`` takes arms as ``NAME:WEIGHT`` or ``NAME:WEIGHT:JSON-PARAMS`` (the first arm is the control);
definitions are immutable once created. ``show`` prints the readout from every replica's recorded stats.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from precache.cli.app import app

experiments_app = typer.Typer(help="A/B experiments: create, list, stop, read out.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
T = TypeVar("T")


def _run(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(redis_client)`` against REDIS_URL; Redis errors become one clear line (exit 2)."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from precache.config import get_settings

    async def go() -> T:
        client = aioredis.from_url(get_settings().redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            return await work(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except RedisError as exc:
        raise ValueError(f"Redis at REDIS_URL is not usable: {exc}") from exc


def _prefix() -> str:
    """The service's key prefix for experiments (``PRECACHE_REDIS_PREFIX``), so the CLI and the service
    (``/api/ml/experiments``) read and write the same definitions."""
    from precache.serve.settings import get_serve_settings

    return "{" + get_serve_settings().redis_prefix + "experiments}"


def _parse_arm(spec: str) -> Any:
    from precache.experiments.model import Arm

    name, _, rest = spec.partition(":")
    weight, _, params = rest.partition(":")
    try:
        return Arm(name, float(weight or "1"), json.loads(params) if params else {})
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"--arm {spec!r}: expected NAME:WEIGHT or NAME:WEIGHT:JSON ({exc})") from exc


@experiments_app.command("create")
def create_command(
    experiment_id: str = typer.Argument(..., help="a new id (definitions are immutable)"),
    kind: str = typer.Option(..., "--kind", help="warming | threshold | model_version | cache_policy | ttl_mode"),
    arm: list[str] = typer.Option(..., "--arm", help="NAME:WEIGHT[:JSON params]; the first arm is the control"),
    holdout: float = typer.Option(0.0, "--holdout", help="share of traffic held out of every arm"),
    mde: float = typer.Option(0.01, "--mde", help="minimum detectable effect on the hit ratio (absolute)"),
    alpha: float = typer.Option(0.05, "--alpha"),
    power: float = typer.Option(0.8, "--power"),
) -> None:
    """Create and start an experiment."""
    from precache.defaults import PAGE_PREDICTOR
    from precache.experiments.model import Experiment
    from precache.experiments.store import RedisExperimentStore
    from precache.registry import open_registry
    from precache.registry.pinned import version_problem

    registry = open_registry()
    experiment = Experiment(experiment_id, kind, tuple(_parse_arm(a) for a in arm), holdout=holdout,  # type: ignore[arg-type]
                            mde=mde, alpha=alpha, power=power).validate_new(
        lambda version: version_problem(registry, PAGE_PREDICTOR, version))
    created = _run(lambda r: RedisExperimentStore(r, _prefix()).create(experiment))
    Console().print(f"created {created.id} ({created.kind}, {created.scope}-scoped): "
                    + ", ".join(f"{a.name} {a.weight:g}" for a in created.arms))


@experiments_app.command("list")
def list_command() -> None:
    """Every experiment with its status."""
    from precache.experiments.store import RedisExperimentStore

    for e in _run(lambda r: RedisExperimentStore(r, _prefix()).list()):
        print(f"{e.id}\t{e.kind}\t{e.scope}\t{e.status}\t" + ",".join(f"{a.name}:{a.weight:g}" for a in e.arms))


@experiments_app.command("stop")
def stop_command(experiment_id: str = typer.Argument(...)) -> None:
    """Stop an experiment (its readout stays available)."""
    from precache.experiments.store import RedisExperimentStore

    stopped = _run(lambda r: RedisExperimentStore(r, _prefix()).stop(experiment_id))
    Console().print(f"stopped {stopped.id}")


@experiments_app.command("show")
def show_command(experiment_id: str = typer.Argument(...)) -> None:
    """The readout (JSON): per arm and metric, fixed-horizon and always-valid results, SRM, sample size."""
    from precache.experiments.hub import experiment_readout
    from precache.experiments.recorder import ExperimentRecorder
    from precache.experiments.store import RedisExperimentStore

    async def work(r: Any) -> dict[str, Any]:
        prefix = _prefix()
        return await experiment_readout(RedisExperimentStore(r, prefix),
                                        ExperimentRecorder(r, replica_id="cli", prefix=prefix), experiment_id)

    print(json.dumps(_run(work), indent=1))
