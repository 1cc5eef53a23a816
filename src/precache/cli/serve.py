"""``precache serve``: run the HTTP service on uvicorn (``--workers N`` processes sharing the port).

Settings come from the environment (``precache config`` lists them); the options here are passed to every
worker through the environment too, because uvicorn builds the app in each worker process from
``precache.serve.app:create_app``. Without ``PRECACHE_API_TOKEN`` the command refuses to start unless
``--insecure-local`` is given; then it binds to 127.0.0.1 whatever ``--host`` says, and warns every start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
) -> None:
    """Serve /api/ml/predict, events, metrics, models and training over HTTP (FastAPI on uvicorn)."""
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
    uvicorn.run("precache.serve.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, proxy_headers=False, server_header=False)
