"""The shared typer application that every command module adds its commands to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="precache",
    help="precache: a predictive multi-layer cache. Replay traces, train and evaluate predictors, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """precache: a predictive multi-layer cache."""
