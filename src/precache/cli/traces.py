"""CLI commands for traces (filled in by that area)."""

from __future__ import annotations

from precache.cli.app import app  # noqa: F401
