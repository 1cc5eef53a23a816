"""Where the benchmarks find the real traces: ``../shared/data`` beside the checkout (read in place, never
copied), or ``PRECACHE_SHARED_DATA``. One catalogue, so every benchmark names the same files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRECACHE_SHARED_DATA", ROOT.parent / "shared" / "data"))

NASA_JUL = SHARED_DATA / "nasa-http/NASA_access_log_small.gz"
NASA_AUG = SHARED_DATA / "nasa-http/nasa_19950801.tsv.gz"
CLOUDPHYSICS_ORACLE = SHARED_DATA / "libcachesim-cloudphysics/cloudPhysicsIO.oracleGeneral.bin.gz"
MSNBC = SHARED_DATA / "msnbc-anonymous-web/msnbc990928.zip"

# The traces with page sequences, for the predictor benchmarks.
SESSION_TRACES = {
    "nasa-jul": NASA_JUL,
    "nasa-aug": NASA_AUG,
    "bms": SHARED_DATA / "bms-webview/BMSVIEW1.txt.gz",
    "msnbc": MSNBC,
    "diginetica": SHARED_DATA / "diginetica-sample/sample_train-item-views.csv.gz",
}


def trace_names(ap: argparse.ArgumentParser, value: str, allowed: tuple[str, ...]) -> list[str]:
    """The comma-separated trace names of a ``--traces`` option; an unknown one is a usage error (exit 2)."""
    names = [t for t in value.split(",") if t]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        ap.error(f"unknown trace(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return names
