"""CLI commands for predictor (filled in by that area)."""

from __future__ import annotations

from precache.cli.app import app  # noqa: F401
