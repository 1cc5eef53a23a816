"""precache.processes.end_process_group: a child and its group end, whatever the grace, without raising."""

from __future__ import annotations

import signal
import subprocess
import sys

from precache.processes import end_process_group

STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True);"
            " time.sleep(60)")


def test_no_grace_kills_and_reaps_a_child_that_ignores_sigterm() -> None:
    """grace=0 (the training pipeline's timeout path): SIGTERM is ignored, SIGKILL ends it, and the reaping
    wait must not inherit the zero grace (it raised TimeoutExpired when the kernel had not reaped the child
    at once, as on a loaded machine)."""
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        end_process_group(proc, grace=0.0)
        assert proc.returncode == -signal.SIGKILL
        proc.stdout.close()
