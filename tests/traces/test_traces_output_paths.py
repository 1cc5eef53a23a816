"""Output options are checked before any work: a bad one fails at once, naming the option (exit 2)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from precache.cli import main
from precache.cli.outputs import check_output_dir, check_output_file

LOG = '1.2.3.4 - - [01/Jul/1995:00:00:{s:02d} -0400] "GET /a{s}.html HTTP/1.0" 200 100'


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["precache", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    code = info.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


def _cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "existing.txt"
    a_file.write_text("keep me\n")
    log = tmp_path / "a.log"
    log.write_text("\n".join(LOG.format(s=i) for i in range(30)) + "\n")
    under_file = str(a_file / "x.json")
    return [
        (["demo", "--out", str(a_file), "--requests", "100000000"], "--out"),
        (["demo", "--out", str(a_file / "sub")], "--out"),
        (["trace-stats", str(log), "--json", under_file], "--json"),
        (["trace-stats", str(log), "--json", str(tmp_path)], "--json"),
        (["evaluate", "--trace", str(log), "--json", under_file], "--json"),
        (["train-predictor", "--trace", str(log), "--out", str(a_file)], "--out"),
    ]


def test_every_output_option_is_checked_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, option in _cases(tmp_path):
        started = time.perf_counter()
        code, err = _run(argv, monkeypatch, capsys)
        assert code == 2, (argv, err)
        assert err.startswith(f"error: {option} ") and err.count("\n") == 1, (argv, err)
        assert time.perf_counter() - started < 5, argv  # failed before the work, not after it
    assert (tmp_path / "existing.txt").read_text() == "keep me\n"  # nothing was overwritten


def test_checks_accept_good_paths_and_leave_no_probe(tmp_path: Path) -> None:
    check_output_file(tmp_path / "new" / "deeper" / "out.json", "--json")
    check_output_dir(tmp_path / "report", "--out")
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    check_output_file(existing, "--json")
    check_output_dir(tmp_path, "--out")
    check_output_file(None, "--json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
    assert existing.read_text() == "{}"


def test_read_only_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / "probe"
        try:
            probe.write_text("")
        except OSError:
            pass
        else:  # root ignores permission bits: nothing to test here
            probe.unlink()
            pytest.skip("running as root: permission bits do not stop writes")
        with pytest.raises(ValueError, match=r"^--json .*cannot write in"):
            check_output_file(locked / "out.json", "--json")
    finally:
        locked.chmod(0o700)
