"""``precache serve``: run the HTTP service on uvicorn (``--workers N`` processes sharing the port).

Settings come from the environment (``precache config`` lists them); the options here are passed to every
worker through the environment too, because uvicorn builds the app in each worker process from
``precache.serve.app:create_app``. Without ``PRECACHE_API_TOKEN`` the command refuses to start unless
``--insecure-local`` is given; then it binds to 127.0.0.1 whatever ``--host`` says, and warns every start.

On SIGTERM in-flight requests get ``PRECACHE_SHUTDOWN_SECONDS / 2`` (uvicorn's graceful timeout), background
loops the rest; the process exits 0 for any number of workers (docs/operations.md). The workers share their
metrics through ``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory per run), so ``/metrics`` reports this replica.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from precache.cli.app import app

LOOPBACK = "127.0.0.1"


@app.command()
def serve(
    host: str = typer.Option(LOOPBACK, help="address to bind (0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port"),
    workers: int = typer.Option(1, min=1, max=64, help="uvicorn worker processes"),
    insecure_local: bool = typer.Option(False, "--insecure-local",
                                        help="no API token: serve on loopback only, without authentication"),
    model_dir: Path | None = typer.Option(None, help="page-predictor directory (default: the active model in "
                                                     "MODEL_STORAGE_PATH)"),
    log_level: str = typer.Option("warning", help="uvicorn log level"),
    metrics_port: int | None = typer.Option(None, min=1, max=65535,
                                            help="also serve /metrics WITHOUT authentication on this port"),
    metrics_host: str = typer.Option(LOOPBACK, help="address of --metrics-port (keep it internal)"),
) -> None:
    """Serve /api/ml/predict, events, metrics, models and training over HTTP (FastAPI on uvicorn)."""
    if metrics_port is not None and metrics_port == port:
        raise ValueError(f"--metrics-port {metrics_port} is the service's own --port")
    replica = _replica_metrics_dir()  # before anything imports prometheus_client (it reads the variable once)
    import uvicorn

    from precache.config import load_settings
    from precache.serve.app import check_startable
    from precache.serve.settings import load_serve_settings

    if insecure_local:
        os.environ["PRECACHE_INSECURE_LOCAL"] = "true"
    if model_dir is not None:
        if not (model_dir / "manifest.json").is_file():
            raise ValueError(f"--model-dir {model_dir}: no manifest.json there")
        os.environ["PRECACHE_MODEL_DIR"] = str(model_dir.resolve())
    settings, serve_settings = load_settings(), load_serve_settings()
    check_startable(settings, serve_settings)
    if serve_settings.insecure_local and not settings.api_token:
        if host != LOOPBACK:
            print(f"warning: --insecure-local binds to {LOOPBACK}, not {host}", file=sys.stderr)
        host = LOOPBACK
        print("warning: serving WITHOUT authentication (--insecure-local, no PRECACHE_API_TOKEN): "
              "loopback only", file=sys.stderr)
    if metrics_port is not None:
        from precache.serve.scrape import serve_metrics_port

        serve_metrics_port(replica, metrics_host, metrics_port)
    _exit_0_on_sigterm()
    options: dict[str, Any] = {"factory": True, "host": host, "port": port, "workers": workers,
                               "log_level": log_level, "access_log": False, "proxy_headers": False,
                               "server_header": False,
                               "timeout_graceful_shutdown": max(1, int(settings.shutdown_seconds / 2)),
                               "http": _http_protocol()}
    from precache.cli.supervisor import CleanSupervisor, DrainingServer

    config = uvicorn.Config("precache.serve.app:create_app", **options)
    if workers == 1:
        server = DrainingServer(config)
        server.run()
        if not server.started:
            raise SystemExit(3)  # uvicorn's STARTUP_FAILURE: the app or the socket could not start
        return
    CleanSupervisor(config, [config.bind_socket()], stop_seconds=settings.shutdown_seconds).run()


def _replica_metrics_dir() -> str:
    """The directory this replica's workers share their metrics through (``PROMETHEUS_MULTIPROC_DIR``).

    Given by the operator: emptied of a previous run's files. Else a fresh temporary directory, removed at
    exit. Workers inherit it through the environment (uvicorn starts them after this)."""
    import atexit
    import shutil
    import tempfile

    from precache.monitoring.replica import ENV, prepare_dir

    given = os.environ.get(ENV)
    if given:
        prepare_dir(given)
        return given
    made = tempfile.mkdtemp(prefix="precache-metrics-")
    os.environ[ENV] = made
    atexit.register(shutil.rmtree, made, True)
    return made


def _http_protocol() -> str:
    """uvicorn's httptools protocol with a header-read timeout (precache.cli.protocol); h11 without httptools."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "precache.cli.protocol:HeaderTimeoutProtocol"


def _exit_0_on_sigterm() -> None:
    """A SIGTERM'd service that shut down cleanly exits 0, whatever ``--workers`` says.

    Why: uvicorn's single-process server re-raises a captured SIGTERM after its graceful shutdown (status 143)
    while its multi-worker supervisor returns normally (0). uvicorn restores the handler it found before it
    re-raises, so the handler installed here turns that re-raise into a normal exit 0 (SIGINT is unchanged:
    Ctrl-C still exits 130). A SIGTERM before the server takes its signals (still importing the app) ends the
    process at once, as the default action does: a SystemExit raised at an arbitrary point of start-up could
    leave it waiting on a thread for ever."""
    def handler(_signum: int, _frame: object) -> None:
        from precache.cli.supervisor import signals_taken_over

        if not signals_taken_over():  # before the server took its signals: nothing to drain, end at once
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)
