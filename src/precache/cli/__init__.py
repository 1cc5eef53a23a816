"""The ``precache`` command line. Each area registers its commands from its own module."""

from __future__ import annotations

import sys

import typer

# Command modules register themselves on import.
from precache.cli import config_cmd as _config_cmd  # noqa: F401
from precache.cli import demo as _demo  # noqa: F401
from precache.cli import predictor as _predictor  # noqa: F401
from precache.cli import traces as _traces  # noqa: F401
from precache.cli.app import app
from precache.config import ConfigError


def main() -> None:
    """Entry point: run the app, turning known errors into one clear line and a non-zero exit."""
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except (ConfigError, ValueError, OSError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


__all__ = ["app", "main"]
