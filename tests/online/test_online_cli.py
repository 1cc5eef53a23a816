"""`precache evaluate --protocol prequential` on logs the readers accept (a Combined Log Format file and a
one-session-per-line sequence file, written here), its --json rows, and its one-line error."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from precache.cli import app

MAIN = "from precache.cli import main; main()"


def write_clf(path: Path, sessions: int = 300) -> Path:
    """Visitors walk /home -> /a{j} -> /b{j}; from 70% of the log on (the end of the training period) /home
    is followed by /new."""
    rng = random.Random(0)
    lines = []
    for i in range(sessions):
        t = 1_700_000_000 + i * 60
        j = rng.randrange(4)
        pages = ["/home", "/new" if i > 0.7 * sessions else f"/a{j}", f"/b{j}"]
        for n, page in enumerate(pages):
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t + 5 * n))
            lines.append(f'10.0.{i // 250}.{i % 250} - - [{stamp}] "GET {page} HTTP/1.1" 200 512 "-" "Mozilla/5.0"')
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_prequential_on_an_access_log_prints_and_writes_frozen_and_online_rows(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    code, output = run(["evaluate", "--trace", str(write_clf(tmp_path / "access.log")), "--protocol",
                        "prequential", "--models", "markov-count,ppm", "--json", str(out)])
    assert code == 0, output
    assert "prequential" in output and "online" in output
    data = json.loads(out.read_text())
    assert data["protocol"] == "prequential"
    rows = {(r["model"], r["protocol"]): r for r in data["rows"]}
    assert set(rows) == {(m, p) for m in ("markov-count", "ppm") for p in ("frozen", "online")}
    for row in rows.values():
        assert 0.0 <= row["hr5"] <= 1.0 and 0.0 <= row["ece"] <= 1.0 and row["transitions"] > 50
    # after the site change the online rows learn /home -> /new; the frozen ones keep ranking /a{j} first
    assert rows[("markov-count", "online")]["hr1"] > rows[("markov-count", "frozen")]["hr1"]


def test_prequential_on_a_sequence_file(tmp_path: Path) -> None:
    rng = random.Random(1)
    trace = tmp_path / "sequences.txt"
    trace.write_text("\n".join(" ".join(str(rng.choice((1, 2, 3, 4))) for _ in range(5)) for _ in range(400)) + "\n")
    code, output = run(["evaluate", "--trace", str(trace), "--protocol", "prequential", "--models", "markov-count"])
    assert code == 0, output
    assert "markov-count" in output and "online" in output


def test_an_unknown_protocol_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", MAIN, "evaluate", "--trace", str(write_clf(tmp_path / "a.log")),
                           "--protocol", "bogus"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--protocol must be one of split, prequential" in proc.stderr
    assert "Traceback" not in proc.stderr
