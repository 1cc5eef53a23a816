"""Bad input gives a clear error or a counted skip; never a hang, a crash or unbounded memory."""

from __future__ import annotations

import gzip
import os
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from precache.traces import (
    TraceFormatError,
    detect_format,
    open_text,
    read_requests,
    read_sessions,
)

GOOD = '1.2.3.4 - - [01/Jul/1995:00:00:01 -0400] "GET /a.html HTTP/1.0" 200 100'


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.log", b"")
    with pytest.raises(TraceFormatError, match="empty"):
        detect_format(path)
    with pytest.raises(TraceFormatError, match="empty"):
        read_sessions(path)
    assert list(open_text(path)) == []
    assert list(read_requests(path, format="clf")) == []


def test_blank_lines_only_is_empty(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="empty"):
        detect_format(_write(tmp_path, "blank.log", b"\n\r\n   \n"))


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "garbage.bin", os.urandom(200_000))
    with pytest.raises(TraceFormatError, match=r"binary|unknown"):
        detect_format(path)
    # forced through the CLF reader it is a loud failure naming the format, not a crash or a silent 0
    with pytest.raises(TraceFormatError, match=r"of the first 1,000 non-empty lines are not clf records"):
        list(read_requests(path, format="clf"))
    reader = read_requests(path, format="clf", max_malformed=1.0)  # told to read anyway: a counted skip
    assert list(reader) == []
    assert reader.report.malformed > 0


def test_truncated_gzip_names_lines_read(tmp_path: Path) -> None:
    body = ("\n".join([GOOD] * 20_000) + "\n").encode()
    packed = gzip.compress(body)
    path = _write(tmp_path, "cut.log.gz", packed[: len(packed) // 2])
    reader = read_requests(path)
    seen = 0
    with pytest.raises(TraceFormatError, match=r"truncated or corrupt after \d+ lines") as info:
        for _ in reader:
            seen += 1
    assert seen > 1000  # what was readable before the cut was delivered
    assert info.value.line_number is not None and info.value.line_number > seen


def test_corrupt_gzip_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.gz", b"\x1f\x8b\x08\x00" + os.urandom(500))
    with pytest.raises(TraceFormatError):
        list(open_text(path))


def test_one_megabyte_line_is_counted_not_loaded(tmp_path: Path) -> None:
    huge = "x" * (1 << 20)
    path = _write(tmp_path, "long.log", f"{GOOD}\n{huge}\n{GOOD}\n".encode())
    tracemalloc.start()
    try:
        reader = read_requests(path, format="clf")
        requests = list(reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(requests) == 2
    assert reader.report.malformed == 1 and reader.report.overlong == 1
    assert reader.report.malformed_line_numbers == [2]
    assert peak < 600_000  # the 1 MB line was never held whole
    with pytest.raises(TraceFormatError, match="line 2"):
        list(read_requests(path, format="clf", strict=True))


def test_overlong_line_without_newline_at_end(tmp_path: Path) -> None:
    lines = open_text(_write(tmp_path, "tail.log", f"{GOOD}\n".encode() + b"y" * 200_000))
    assert list(lines) == [GOOD]
    assert lines.overlong == 1
    assert next(open_text(lines.path)) == GOOD


def test_unknown_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "prose.txt", b"Call me Ishmael.\nSome years ago - never mind how long.\n")
    with pytest.raises(TraceFormatError, match="unknown trace format"):
        detect_format(path)
    with pytest.raises(TraceFormatError, match="unknown format 'xml'"):
        read_requests(path, format="xml")


def test_session_format_refused_by_read_requests(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.txt", b"1 -1 2 -1 3\n4 -1 5\n")
    assert detect_format(path) == "spmf"
    with pytest.raises(TraceFormatError, match=r"session file .* evaluate and train-predictor accept it"):
        read_requests(path)


def test_non_utf8_bytes_are_replaced(tmp_path: Path) -> None:
    raw = b'h\xe9te - - [01/Jul/1995:00:00:01 -0400] "GET /caf\xe9\xff.html HTTP/1.0" 200 5\r\n'
    path = _write(tmp_path, "latin.log", raw + GOOD.encode() + b"\r\n")
    requests = list(read_requests(path))
    assert len(requests) == 2
    assert requests[0].path == "/caf\ufffd\ufffd.html"
    assert requests[0].client == "h\ufffdte"
    assert requests[1].path == "/a.html"  # CRLF stripped


def test_strict_raises_with_line_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "mixed.log", f"{GOOD}\n{GOOD}\nthis is not a log line\n{GOOD}\n".encode())
    reader = read_requests(path, format="clf")
    assert len(list(reader)) == 3
    assert reader.report.malformed == 1 and reader.report.malformed_line_numbers == [3]
    with pytest.raises(TraceFormatError, match="line 3"):
        list(read_requests(path, format="clf", strict=True))


def test_zip_with_only_macos_junk(tmp_path: Path) -> None:
    path = tmp_path / "junk.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__MACOSX/._data.seq", b"junk")
    with pytest.raises(TraceFormatError, match="no data member"):
        list(open_text(path))


def test_zip_skips_macos_junk_member(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__MACOSX/._data.log", b"\x00\x05\x16\x07junk")
        archive.writestr("data.log", (GOOD + "\n") * 3)
    assert len(list(read_requests(path))) == 3


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such trace file"):
        read_requests(tmp_path / "nope.log")
    with pytest.raises(OSError):
        list(open_text(tmp_path))


def test_tsv_header_without_required_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.tsv", b"a\tb\tc\n1\t2\t3\n")
    with pytest.raises(TraceFormatError, match="no column for"):
        list(read_requests(path, format="tsv"))


def test_malformed_session_lines_are_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.txt", b"1 -1 2\nnot numbers -1 here\n3 -1 4\n")
    sessions = read_sessions(path, format="spmf")
    assert [s.pages for s in sessions] == [["1", "2"], ["3", "4"]]
    with pytest.raises(TraceFormatError, match="line 2"):
        read_sessions(path, format="spmf", strict=True)
