"""The CLI answers bad usage and bad input with one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from precache.cli import main; sys.argv = ['precache', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("demo", "--requests", "5"), "--requests"),
        (("trace-stats",), "Missing argument"),
        (("no-such-command",), "No such command"),
        (("trace-stats", "/no/such/trace.log"), "no such trace file"),
        (("evaluate", "--trace", "/no/such/trace.log", "--models", "markov"), "/no/such/trace.log"),
    ],
)
def test_cli_errors_are_one_message_without_traceback(args: tuple[str, ...], expected: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert expected in proc.stderr
