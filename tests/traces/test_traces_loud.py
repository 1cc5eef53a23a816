"""Loud failure instead of silent zeros, and the logs that used to be read wrong."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from precache.cli import app, main
from precache.traces import Sessionizer, TraceFormatError, detect_format, read_requests, read_sessions
from precache.traces.model import Request

GOOD = '1.2.3.4 - - [01/Jul/1995:00:00:{s:02d} -0400] "GET /a{s}.html HTTP/1.0" 200 100'


def _log(tmp_path: Path, lines: list[str], name: str = "a.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _good(n: int) -> list[str]:
    return [GOOD.format(s=i % 60) for i in range(n)]


def test_more_than_half_bad_in_the_first_thousand_stops(tmp_path: Path) -> None:
    path = _log(tmp_path, ["not a log line"] * 501 + _good(499))
    with pytest.raises(TraceFormatError, match=r"501 of the first 1,000 non-empty lines are not clf records "
                                               r"\(first bad line 1: 'not a log line'\).*--log-format.*--pattern"):
        list(read_requests(path, format="clf"))


def test_half_bad_is_tolerated_and_later_bad_lines_only_counted(tmp_path: Path) -> None:
    path = _log(tmp_path, ["junk"] * 500 + _good(500) + ["junk"] * 3000)
    reader = read_requests(path, format="clf")
    assert len(list(reader)) == 500
    assert reader.report.malformed == 3500 and reader.report.first_bad_line_number == 1


def test_blank_lines_do_not_count_and_nothing_leaks_before_the_check(tmp_path: Path) -> None:
    path = _log(tmp_path, [""] * 50 + _good(3) + ["junk"] * 4)
    seen: list[Request] = []
    with pytest.raises(TraceFormatError, match="4 of the first 7 non-empty lines"):
        for request in read_requests(path, format="clf"):
            seen.append(request)
    assert seen == []  # the first lines are held back until the check passes


def test_max_malformed_and_strict(tmp_path: Path) -> None:
    path = _log(tmp_path, [*_good(10), "junk"])
    assert len(list(read_requests(path, format="clf"))) == 10
    with pytest.raises(TraceFormatError, match="1 of the first 11"):
        list(read_requests(path, format="clf", max_malformed=0.0))
    with pytest.raises(TraceFormatError, match="line 11"):
        list(read_requests(path, format="clf", strict=True))
    junk = _log(tmp_path, ["junk"] * 10, "junk.log")
    assert list(read_requests(junk, format="clf", max_malformed=1.0)) == []
    with pytest.raises(TraceFormatError, match=r"ratio in 0\.\.1"):
        read_requests(junk, format="clf", max_malformed=1.5)


def test_archive_ita_lines_without_base_date_option_are_read_by_auto(tmp_path: Path) -> None:
    path = _log(tmp_path, [f'host{i} [29:23:53:{i:02d}] "GET /x{i}.html HTTP/1.0" 200 1497' for i in range(40)])
    assert len(read_sessions(path)) == 40


def test_invalid_dates_are_malformed_not_normalised(tmp_path: Path) -> None:
    lines = [
        *_good(8),
        '1.2.3.4 - - [00/Jan/2000:10:00:00 +0000] "GET /zero.html HTTP/1.0" 200 1',
        '1.2.3.4 - - [32/Jan/2000:25:61:61 +0000] "GET /bad.html HTTP/1.0" 200 1',
        '1.2.3.4 - - [29/Feb/2001:10:00:00 +0000] "GET /feb.html HTTP/1.0" 200 1',
        '1.2.3.4 - - [31/Dec/9999:23:59:59 -0100] "GET /y10k.html HTTP/1.0" 200 1',
    ]
    reader = read_requests(_log(tmp_path, lines), format="clf")
    assert len(list(reader)) == 8
    assert reader.report.malformed == 4 and reader.report.malformed_line_numbers == [9, 10, 11, 12]


def test_year_9999_names_file_and_line_in_trace_stats(tmp_path: Path) -> None:
    path = _log(tmp_path, [*_good(3), '1.2.3.4 - - [31/Dec/9999:23:59:59 -0100] "GET /y.html HTTP/1.0" 200 1'])
    result = CliRunner().invoke(app, ["trace-stats", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: skipped 1 malformed line(s) (first at line 4)" in result.output


def test_bom_is_not_part_of_the_first_client(tmp_path: Path) -> None:
    path = tmp_path / "bom.log"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(_good(3)).encode())
    assert {r.client for r in read_requests(path)} == {"1.2.3.4"}


def test_utf16_log(tmp_path: Path) -> None:
    path = tmp_path / "utf16.log"
    path.write_bytes("\n".join(_good(3)).encode("utf-16"))
    assert len(list(read_requests(path))) == 3


def test_options_and_connect_are_not_page_views(tmp_path: Path) -> None:
    lines = [
        '1.2.3.4 - - [01/Jul/1995:00:00:01 -0400] "OPTIONS * HTTP/1.1" 200 0',
        '1.2.3.4 - - [01/Jul/1995:00:00:02 -0400] "CONNECT example.com:443 HTTP/1.1" 200 0',
        '1.2.3.4 - - [01/Jul/1995:00:00:03 -0400] "get /lower.html HTTP/1.0" 200 5',
        '1.2.3.4 - - [01/Jul/1995:00:00:04 -0400] "GET /upper.html HTTP/1.0" 200 5',
    ]
    requests = list(read_requests(_log(tmp_path, lines)))
    assert [r.method for r in requests] == ["OPTIONS", "CONNECT", "GET", "GET"]
    sessionizer = Sessionizer()
    (session,) = list(sessionizer.sessionize(requests))
    assert session.pages == ["/lower.html", "/upper.html"] and sessionizer.stats.ignored == 2


def test_zip_with_several_logs_reads_them_all(tmp_path: Path) -> None:
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("access.log.1", "\n".join(_good(5)))  # no final newline: must not merge lines
        archive.writestr("access.log.2", "\n".join(_good(7)) + "\n")
    assert len(list(read_requests(path))) == 12


def test_a_5mb_single_line_is_not_called_empty(tmp_path: Path) -> None:
    path = tmp_path / "one.log"
    path.write_text("x" * 5_000_000)
    with pytest.raises(TraceFormatError, match=r"longer than 65,536 characters.*not a line-oriented log"):
        detect_format(path)
    with pytest.raises(TraceFormatError, match="longer than the line limit"):
        list(read_requests(path, format="clf"))


def test_mixed_json_then_clf_detects_clf(tmp_path: Path) -> None:
    json_line = json.dumps({"time": "2024-03-22T10:00:00Z", "remote_addr": "9.9.9.9", "request_uri": "/j"})
    path = _log(tmp_path, [json_line] * 30 + _good(970))
    assert detect_format(path) == "clf"
    reader = read_requests(path)
    assert len(list(reader)) == 970 and reader.report.malformed == 30
    assert "auto: chose clf (970 of the first 1,000 lines" in reader.report.notes[0]


def test_out_of_order_log_is_warned(tmp_path: Path) -> None:
    lines = [f'1.2.3.4 - - [01/Jul/1995:{h:02d}:00:00 -0400] "GET /p{h}.html HTTP/1.0" 200 1' for h in range(10)]
    path = _log(tmp_path, lines[::-1])
    result = CliRunner().invoke(app, ["trace-stats", str(path)])
    assert result.exit_code == 0, result.output
    assert "not in time order" in result.output


def test_session_file_given_to_demo_says_which_commands_take_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _log(tmp_path, ["1 -1 2 -1 3 -1 -2"] * 20, "bms.txt")
    monkeypatch.setattr(sys, "argv", ["precache", "demo", "--trace", str(path), "--no-sweep"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "session file" in err and "evaluate and train-predictor accept it" in err and "Traceback" not in err


def test_trace_stats_exits_non_zero_without_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _log(tmp_path, ["junk"] * 5)
    monkeypatch.setattr(sys, "argv", ["precache", "trace-stats", str(path), "--format", "clf", "--max-malformed", "1"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert "read no request" in capsys.readouterr().err


def test_every_trace_command_takes_the_shared_options() -> None:
    from precache.cli.trace_options import OPTION_NAMES

    runner = CliRunner()
    for command in ("trace-stats", "evaluate", "train-predictor", "demo"):
        result = runner.invoke(app, [command, "--help"], terminal_width=200)
        assert result.exit_code == 0
        for name in OPTION_NAMES:
            assert "--" + name.replace("_", "-") in result.output, (command, name)


def test_cli_pattern_reads_archive_lines(tmp_path: Path) -> None:
    lines = [f"{i % 3}+1: Tue Aug 22 00:00:{i:02d} 1995 (/p{i % 4}.html): Sent text: GET /p{i % 4}.html HTTP/1.0"
             for i in range(30)]
    path = _log(tmp_path, lines)
    out = tmp_path / "s.json"
    pattern = r"^(?P<session>\S+): (?P<time>.{24}) \(.*?\): Sent \w+: (?P<request>.+)$"
    result = CliRunner().invoke(app, ["trace-stats", str(path), "--pattern", pattern, "--time-format", "ctime",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["requests"] == 30 and data["clients"] == 3 and data["format"].startswith("pattern")


def test_drop_bots_uses_the_maintained_list(tmp_path: Path) -> None:
    agents = ["Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
              "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"]
    lines = [f'1.2.3.{i} - - [01/Jul/1995:00:00:{i:02d} -0400] "GET /p.html HTTP/1.0" 200 1 "-" "{agents[i % 2]}"'
             for i in range(10)]
    path = _log(tmp_path, lines)
    reader = read_requests(path, log_format="combined", drop_bots=True)
    kept = list(reader)
    assert len(kept) == 5 and reader.report.bots == 5
    assert all("Firefox" in (r.agent or "") for r in kept)
