"""``precache edge build``: model assets for the Cloudflare Worker in ``edge/`` (see edge/README.md).

Errors (a model that cannot be a table, a missing trace or model, no registry model) raise ``ValueError``
subclasses, which the entry point prints as one line with exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from precache.cli.app import app
from precache.defaults import PAGE_PREDICTOR

if TYPE_CHECKING:
    from precache.edge.build import ModelSummary

edge_app = typer.Typer(help="The Cloudflare Worker's model assets (edge/).", no_args_is_help=True)
app.add_typer(edge_app, name="edge")


def _line(summary: Any) -> str:
    hr5 = "n/a" if summary.hr5 is None else f"{summary.hr5:.3f}"
    return f"{summary.kind:<10} {summary.version:<28} {summary.slice + ' HR@5':<19} {hr5}"


@edge_app.command("build")
def build_command(
    model: Path | None = typer.Option(None, "--model", help="A saved predictor directory to export."),
    trace: Path | None = typer.Option(None, "--trace", help="Train a predictor for the edge on this trace instead."),
    kind: str = typer.Option("ppm", "--kind", help="With --trace: markov or ppm."),
    fmt: str = typer.Option("auto", "--format", help="With --trace: the trace format (see precache trace-stats)."),
    worker: str = typer.Option(
        "table", "--worker", help="table (Markov/PPM, default) or ort (attention, Paid plan): the serving Worker."
    ),
    k: int = typer.Option(10, "--k", help="Predictions exported per context (requests may ask topK <= k)."),
    out: Path | None = typer.Option(Path("edge/model"), "--out", help="Directory for wrangler to bundle."),
    publish: bool = typer.Option(
        False, "--publish", help="Also write the edge files next to the registry's active version."
    ),
    name: str = typer.Option(PAGE_PREDICTOR, "--name", help="Registry model name."),
) -> None:
    """Export a Markov/PPM predictor as tables (or the attention model for the ORT worker; an auto model as
    its best component that worker can run) and print its validation HR@5 next to the registry's active
    model's."""
    from precache.edge.build import (
        EdgeBuildError,
        ModelSummary,
        export_model,
        gzip_size,
        load_model_dir,
        model_hr5,
        train_for_edge,
    )

    active = _active_model(name)
    source: dict[str, Any]
    manifest: dict[str, Any] | None = None
    if model is not None and trace is not None:
        raise EdgeBuildError("give --model or --trace, not both")
    if model is not None:
        predictor, manifest = load_model_dir(model)
        hr5, slice_name = model_hr5(manifest.get("metrics") or {})
        source, label = {"model_dir": str(model)}, None
    elif trace is not None:
        predictor, hr5 = train_for_edge(trace, kind, fmt)
        slice_name, source, label = "validation", {"trace": str(trace), "trained_for_edge": kind}, None
    else:
        if active is None:
            raise EdgeBuildError(f"no --model or --trace given and the registry has no active {name!r} model")
        path, summary = active
        predictor, manifest = load_model_dir(path)
        hr5, slice_name = summary.hr5, summary.slice
        source, label = {"registry": summary.version}, summary.version.split()[-1]
    export, served = export_model(predictor, worker=worker, k=k, name=name, version=label, manifest=manifest,
                                  hr5=hr5, slice_name=slice_name, source=source)
    written = []
    if out is not None and str(out):
        written.append(str(export.write(out)))
    if publish:
        if active is None:
            raise EdgeBuildError(f"--publish needs an active {name!r} model in the registry")
        written.append(str(export.write(active[0])))
    raw, packed = gzip_size(export)
    if served.of is None:
        exported = ModelSummary(export.model_kind, export.version, hr5, ", ".join(written) or "-", slice_name)
    else:  # a component of auto: its own validation HR@5, auto's on the next line
        exported = ModelSummary(export.model_kind, export.version, served.validation_hr5,
                                ", ".join(written) or "-")
    typer.echo(f"exported  {_line(exported)}   {export.kind} worker, k={export.k}, "
               f"{raw / 1e6:.2f} MB ({packed / 1e6:.2f} MB gzip) -> {exported.where}")
    if served.of is not None:
        typer.echo(f"of        {_line(ModelSummary(served.of, served.of_choice or '?', served.of_validation_hr5, ''))}"
                   f"   {served.reason}")
    if active is not None:
        typer.echo(f"active    {_line(active[1])}   (the service's model)")
    else:
        typer.echo(f"active    none: no active {name!r} model in the registry to compare with")


def _active_model(name: str) -> tuple[Path, ModelSummary] | None:
    """The registry's active version of ``name`` (None when no registry or nothing active)."""
    from precache.edge.build import ModelSummary, model_hr5
    from precache.registry import open_registry

    info = open_registry().active(name)
    if info is None:
        return None
    hr5, where = model_hr5(info.metrics or {})
    return Path(info.path), ModelSummary(info.kind, f"{name} {info.version}", hr5, str(info.path), where)
