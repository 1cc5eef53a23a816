"""The process status is what the command meant: ``typer.Exit(n)`` exits n, Ctrl-C exits 130 with "aborted"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_EXIT_3 = """
import sys, typer
from precache.cli import app, main

@app.command("exit-three")
def _exit_three() -> None:
    raise typer.Exit(3)

sys.argv = ["precache", "exit-three"]
main()
"""


def test_typer_exit_code_becomes_the_process_status() -> None:
    proc = subprocess.run([sys.executable, "-c", _EXIT_3], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_prints_aborted_exits_130_and_leaves_no_report(tmp_path: Path) -> None:
    """A real process gets a real SIGINT in the middle of ``precache demo``; nothing half-written remains."""
    out = tmp_path / "report"
    started = tmp_path / "started"
    # The marker says the imports are done and main() is about to run (imports are slow on a busy machine).
    # SIGINT gets Python's default handler back: a test run started in the background by a script inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler (a terminal's Ctrl-C is unaffected).
    code = ("import signal, sys, pathlib; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from precache.cli import main; pathlib.Path(sys.argv[1]).touch(); "
            "sys.argv = ['precache', *sys.argv[2:]]; main()")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(started), "demo", "--requests", "400000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # inside the run: generating or replaying the workload
        assert proc.poll() is None, "the demo ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "aborted" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()
