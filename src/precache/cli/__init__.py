"""The ``precache`` command line. Each area registers its commands from its own module."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

# Command modules register themselves on import.
from precache.cli import config_cmd as _config_cmd  # noqa: F401
from precache.cli import demo as _demo  # noqa: F401
from precache.cli import edge as _edge  # noqa: F401
from precache.cli import experiments as _experiments  # noqa: F401
from precache.cli import models as _models  # noqa: F401
from precache.cli import predictor as _predictor  # noqa: F401
from precache.cli import scheduler as _scheduler  # noqa: F401
from precache.cli import serve as _serve  # noqa: F401
from precache.cli import traces as _traces  # noqa: F401
from precache.cli import train as _train  # noqa: F401
from precache.cli.app import app
from precache.config import ConfigError

ABORTED = 130  # the shell convention for "ended by SIGINT" (128 + 2)


def main() -> None:
    """Entry point: run the app, turning errors into one clear line and a non-zero exit.

    A command's ``typer.Exit(n)`` exits ``n``; Ctrl-C prints "aborted" and exits 130. Bad input (a missing
    file, a bad option or setting) exits 2 with its message; anything unexpected exits 1 with a one-line
    summary. ``PRECACHE_DEBUG=1`` shows the traceback instead.
    """
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = ABORTED
    except (ConfigError, ValueError, OSError, LookupError) as exc:
        _fail(exc, f"error: {exc}", 2)
    except Exception as exc:
        if _redis_unreachable(exc):
            _fail(exc, f"error: Redis is not reachable at REDIS_URL ({_redacted_redis_url()}): {exc}; start it or "
                       "set REDIS_URL", 2)
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):  # click/typer usage errors print themselves
            show()
            sys.exit(exit_code)
        _fail(exc, f"error: unexpected {type(exc).__name__}: {exc} (PRECACHE_DEBUG=1 shows the traceback)", 1)
    # Without standalone mode, click *returns* the exit code of ``typer.Exit(n)``, and typer turns Ctrl-C
    # into ``Exit(130)``: both arrive here as the return value, which must become the process status.
    if not isinstance(code, int):
        code = 0
    if code == ABORTED:
        print("aborted", file=sys.stderr)
    sys.exit(code)


def _redis_unreachable(exc: BaseException) -> bool:
    """A redis-py connection or timeout error (bad environment, not a bug: exit 2 like any bad input).

    Looked up in ``sys.modules`` so that the CLI does not import redis for commands that never use it: an
    exception of a module that was never imported cannot be raised."""
    errors = sys.modules.get("redis.exceptions")
    if errors is None:
        return False
    kinds = tuple(getattr(errors, name) for name in ("ConnectionError", "TimeoutError", "BusyLoadingError")
                  if hasattr(errors, name))
    return isinstance(exc, kinds)


def _redacted_redis_url() -> str:
    from precache.config import redact_url

    return redact_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def _fail(exc: BaseException, message: str, code: int) -> NoReturn:
    if os.environ.get("PRECACHE_DEBUG"):
        raise exc
    print(message, file=sys.stderr)
    sys.exit(code)


__all__ = ["app", "main"]
