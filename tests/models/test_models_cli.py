"""`precache evaluate` and `precache train-predictor` end to end on the NASA July extract, and their
one-line errors (exit 2) for unknown models and missing traces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import shared_file
from precache.cli import app
from precache.models import load_predictor

pytestmark = pytest.mark.realdata
MAIN = "from precache.cli import main; main()"


def test_models_cli_evaluate_writes_json(tmp_path: Path) -> None:
    trace = shared_file("nasa-http/NASA_access_log_small.gz")
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app, ["evaluate", "--trace", str(trace), "--models", "popularity,markov", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "HR@5" in result.output and "markov" in result.output
    data = json.loads(out.read_text())
    rows = {row["model"]: row for row in data["models"]}
    assert set(rows) == {"popularity", "markov"}
    assert rows["markov"]["hr5"] > rows["popularity"]["hr5"]
    assert rows["markov"]["size_bytes"] > 0 and rows["markov"]["p99_us"] >= rows["markov"]["p50_us"] > 0
    assert data["test_transitions"] == rows["markov"]["transitions"] > 100


def test_models_cli_train_predictor_saves_loadable_model(tmp_path: Path) -> None:
    trace = shared_file("nasa-http/NASA_access_log_small.gz")
    result = CliRunner().invoke(
        app, ["train-predictor", "--trace", str(trace), "--model", "ppm", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    model = load_predictor(tmp_path / "m")
    assert model.kind == "ppm"
    assert 0.3 < model.metrics["test_hr5"] < 0.5
    assert model.predict(["/"], 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "markov,bogus"], "unknown predictor 'bogus'"),
        (["--trace-override", "/no/such/file.log"], "does not exist"),
    ],
)
def test_models_cli_errors_are_one_line(args: list[str], message: str) -> None:
    trace = str(shared_file("nasa-http/NASA_access_log_small.gz"))
    if args[0] == "--trace-override":
        trace, args = args[1], []
    proc = subprocess.run(
        [sys.executable, "-c", MAIN, "evaluate", "--trace", trace, *args],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
