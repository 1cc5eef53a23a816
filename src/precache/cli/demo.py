"""``precache demo``: generate a workload, train, replay, print the before/after table."""

from __future__ import annotations

import typer

from precache.cli.app import app


@app.command()
def demo() -> None:
    """Run the end-to-end demo (placeholder until the replay work lands)."""
    typer.echo("precache demo: the replay benchmark is coming; see README.")
