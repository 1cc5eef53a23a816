"""``precache train`` and ``precache models …`` as a user runs them (a real process, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_file

NASA_JUL = "nasa-http/NASA_access_log_small.gz"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODEL_STORAGE_PATH": str(tmp_path / "models"), "MODEL_BACKUP_PATH": str(tmp_path / "bk"),
           "REDIS_URL": "redis://127.0.0.1:1/0"}
    env.pop("PRECACHE_DEBUG", None)
    return subprocess.run([sys.executable, "-c", "from precache.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_train_list_show_verify_and_errors(tmp_path: Path) -> None:
    trace = str(shared_file(NASA_JUL))
    out = run(tmp_path, "train", "--trace", trace, "--predictor", "markov", "--json", str(tmp_path / "run.json"))
    assert out.returncode == 0, out.stderr
    assert "activated" in out.stdout
    result = json.loads((tmp_path / "run.json").read_text())
    assert result["outcomes"][0]["status"] == "activated" and result["outcomes"][0]["version"] == "v1"
    out = run(tmp_path, "train", "--trace", trace, "--predictor", "markov", "--target-accuracy", "0.95")
    assert out.returncode == 3 and "rejected" in out.stdout  # a refused candidate exits 3 (issue 28)
    listed = json.loads(run(tmp_path, "models", "list", "page-predictor", "--json").stdout)
    assert [(v["version"], v["status"], v["role"]) for v in listed] == [("v1", "accepted", "active"),
                                                                         ("v2", "rejected", "")]
    shown = json.loads(run(tmp_path, "models", "show", "page-predictor").stdout)
    assert shown["version"] == "v1" and shown["gate"]["accepted"]
    assert run(tmp_path, "models", "verify", "page-predictor").returncode == 0
    # tamper with one file of v2: verify names it and exits 1
    victim = next(p for p in (tmp_path / "models/page-predictor/v2").iterdir()
                  if p.name not in ("manifest.json", "registry.json"))
    victim.write_bytes(b"tampered")
    out = run(tmp_path, "models", "verify", "page-predictor")
    assert out.returncode == 1 and "v1: ok" in out.stdout and "v2: FAILED" in out.stdout
    # bad input: one line, exit 2, no traceback
    for args in (("models", "activate", "page-predictor", "v7"), ("models", "rollback", "page-predictor"),
                 ("models", "list", "nonsense"), ("train", "--trace", str(tmp_path / "nope.log")),
                 ("models", "activate", "page-predictor", "v2")):
        out = run(tmp_path, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr and out.stderr.count("\n") == 1
