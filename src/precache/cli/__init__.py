"""The ``precache`` command line. Each area registers its commands from its own module."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

# Command modules register themselves on import.
from precache.cli import config_cmd as _config_cmd  # noqa: F401
from precache.cli import demo as _demo  # noqa: F401
from precache.cli import predictor as _predictor  # noqa: F401
from precache.cli import traces as _traces  # noqa: F401
from precache.cli.app import app
from precache.config import ConfigError


def main() -> None:
    """Entry point: run the app, turning errors into one clear line and a non-zero exit.

    Bad input (a missing file, a bad option or setting) exits 2 with its message; anything unexpected
    exits 1 with a one-line summary. ``PRECACHE_DEBUG=1`` shows the traceback instead.
    """
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except (ConfigError, ValueError, OSError, LookupError) as exc:
        _fail(exc, f"error: {exc}", 2)
    except Exception as exc:
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):  # click/typer usage errors print themselves
            show()
            sys.exit(code)
        _fail(exc, f"error: unexpected {type(exc).__name__}: {exc} (PRECACHE_DEBUG=1 shows the traceback)", 1)


def _fail(exc: BaseException, message: str, code: int) -> NoReturn:
    if os.environ.get("PRECACHE_DEBUG"):
        raise exc
    print(message, file=sys.stderr)
    sys.exit(code)


__all__ = ["app", "main"]
