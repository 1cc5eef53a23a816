"""``precache config``: show the effective settings (tokens, the Redis password and the webhook path masked), or
fail on a bad one."""

from __future__ import annotations

import json

import typer

from precache.cli.app import app
from precache.config import load_settings, redact_url

_SECRETS = {"api_token", "ml_training_api_key"}
_URLS_WITH_SECRETS = {"redis_url": False, "ml_alert_webhook": True}  # field -> hide the path too


@app.command("config")
def show_config() -> None:
    """Print the settings precache would run with, read from the environment."""
    settings = load_settings()
    shown = settings.model_dump(mode="json")
    for name in _SECRETS:
        if shown.get(name):
            shown[name] = "***"
    for name, hide_path in _URLS_WITH_SECRETS.items():
        if shown.get(name):
            shown[name] = redact_url(str(shown[name]), hide_path=hide_path)
    typer.echo(json.dumps(shown, indent=2, sort_keys=True))
