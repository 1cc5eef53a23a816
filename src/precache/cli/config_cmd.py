"""``precache config``: show the effective settings (secrets masked), or fail on a bad one."""

from __future__ import annotations

import json

import typer

from precache.cli.app import app
from precache.config import load_settings

_SECRETS = {"api_token", "ml_training_api_key"}


@app.command("config")
def show_config() -> None:
    """Print the settings precache would run with, read from the environment."""
    settings = load_settings()
    shown = settings.model_dump(mode="json")
    for name in _SECRETS:
        if shown.get(name):
            shown[name] = "***"
    typer.echo(json.dumps(shown, indent=2, sort_keys=True))
