"""``precache models list | show | activate | rollback | prune | verify``: manage the model registry.

The registry is the one under ``MODEL_STORAGE_PATH`` (backups in ``MODEL_BACKUP_PATH``). ``verify`` exits 1
when any file of any version does not match its manifest; bad names exit 2 like every other bad input.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from precache.cli.app import app

if TYPE_CHECKING:
    from precache.registry import ModelRegistry

models_app = typer.Typer(help="The model registry: versions, activation, rollback, pruning, verification.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

NAME = typer.Argument(..., help="page-predictor or cache-optimizer")


def _registry() -> ModelRegistry:
    """The configured registry; a MODEL_STORAGE_PATH that is missing or unreadable fails loudly (exit 2):
    an empty table would read as "no models yet" when the path is simply wrong."""
    import os

    from precache.registry import open_registry

    registry = open_registry()
    root = registry.root
    if not root.is_dir():
        raise ValueError(f"MODEL_STORAGE_PATH {root} " + ("is not a directory" if root.exists() else "does not exist")
                         + "; set MODEL_STORAGE_PATH to the registry (`precache train` creates one)")
    if not os.access(root, os.R_OK | os.X_OK):
        raise ValueError(f"MODEL_STORAGE_PATH {root} is not readable")
    return registry


def _headline(metrics: dict[str, object], gate: dict[str, object]) -> str:
    if gate.get("metric") is not None and gate.get("candidate") is not None:
        return f"{gate['metric']} {float(gate['candidate']):.3f}"  # type: ignore[arg-type]
    hr5 = metrics.get("test_hr5")
    return f"HR@5 {float(hr5):.3f}" if isinstance(hr5, int | float) else "-"


@models_app.command("list")
def list_command(name: str | None = typer.Argument(None, help="one name, or both when omitted"),
                 json_out: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Every version with its status, score and whether it is active or previous."""
    from precache.registry import MODEL_NAMES

    registry = _registry()
    names = [name] if name else list(MODEL_NAMES)
    rows = []
    for n in names:
        pointer = registry.pointer(n)
        for info in registry.versions(n):
            role = ("active" if info.version == pointer.get("version")
                    else "previous" if info.version == pointer.get("previous") else "")
            rows.append((n, info, role))
    if json_out:
        print(json.dumps([{**info.as_dict(), "role": role} for _, info, role in rows], indent=1))
        return
    table = Table(title=f"model registry {registry.root} (revision {registry.revision()})")
    for column in ("name", "version", "created", "kind", "status", "score", "role", "reason"):
        table.add_column(column)
    for n, info, role in rows:
        table.add_row(n, info.version, info.created, info.kind, info.status, _headline(info.metrics, info.gate),
                      role, info.reason[:60])
    (Console() if Console().is_terminal else Console(width=160)).print(table)


@models_app.command("show")
def show_command(name: str = NAME, version: str | None = typer.Argument(None, help="default: the active one")) -> None:
    """One version's full record (metrics, data span, training config, gate decision, files) as JSON."""
    registry = _registry()
    info = registry.get(name, version) if version else registry.active(name)
    if info is None:
        raise ValueError(f"{name} has no active version; name one (see `precache models list`)")
    print(json.dumps(info.as_dict(), indent=1, default=str))


@models_app.command("activate")
def activate_command(name: str = NAME, version: str = typer.Argument(...),
                     force: bool = typer.Option(False, "--force", help="activate even a rejected version")) -> None:
    """Verify, back up and activate a version."""
    info = _registry().activate(name, version, force=force)
    print(f"{name}: {info.version} is active")


@models_app.command("rollback")
def rollback_command(name: str = NAME, version: str | None = typer.Argument(None, help="default: the previous one")
                     ) -> None:
    """Activate the previous version (or a named one)."""
    info = _registry().rollback(name, version)
    print(f"{name}: rolled back to {info.version}")


@models_app.command("prune")
def prune_command(name: str = NAME,
                  keep: int | None = typer.Option(None, "--keep", min=1, help="default: MODEL_KEEP_VERSIONS")) -> None:
    """Delete all but the newest versions, never the active or the previous one."""
    removed = _registry().prune(name, keep)
    print(f"{name}: removed {', '.join(removed) if removed else 'nothing'}")


@models_app.command("verify")
def verify_command(name: str = NAME) -> None:
    """Re-check every file of every version against its manifest; exit 1 on any mismatch."""
    results = _registry().verify(name)
    bad = 0
    for version, error in results:
        print(f"{name} {version}: {'ok' if error is None else 'FAILED: ' + error}")
        bad += error is not None
    if not results:
        print(f"{name}: no versions")
    if bad:
        raise SystemExit(1)  # not typer.Exit: under standalone_mode=False click turns that into a return value
