"""``precache trace-stats`` on a real trace, a session file, the synthetic site and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import shared_file
from precache.cli import app, main


def test_trace_stats_nasa_json(tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    result = CliRunner().invoke(
        app, ["trace-stats", str(shared_file("nasa-http/NASA_access_log_small.gz")), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "malformed lines" in result.output and "/shuttle/countdown/" in result.output
    data = json.loads(out.read_text())
    assert data["requests"] == 10_000 and data["clients"] == 936 and data["malformed"] == 0
    assert data["page_views"] + data["assets"] + data["ignored"] == 10_000
    assert data["span_seconds"] == 13_187
    assert data["top_pages"][0]["page"] == "/shuttle/countdown/"


def test_trace_stats_session_file(tmp_path: Path) -> None:
    out = tmp_path / "bms.json"
    result = CliRunner().invoke(
        app, ["trace-stats", str(shared_file("bms-webview/BMSVIEW1.txt.gz")), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["sessions"] == 59_601 and data["distinct_pages"] == 497 and data["requests"] is None


def test_trace_stats_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "syn.json"
    result = CliRunner().invoke(app, ["trace-stats", "synthetic:5k", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["requests"] == 5_000 and data["sessions"] > 50


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace-stats", "/definitely/not/here.log"], "no such trace file"),
        (["trace-stats", "synthetic:zero"], "synthetic:N"),
        (["trace-stats", "__TMP__", "--format", "xml"], "unknown format"),
    ],
)
def test_trace_stats_errors_are_one_line(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "x.log"
    path.write_text("hello\n")
    monkeypatch.setattr(sys, "argv", ["precache", *[str(path) if a == "__TMP__" else a for a in argv]])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
