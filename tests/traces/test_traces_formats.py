"""Log-format variants, path normalisation and format sniffing on small hand-written files."""

from __future__ import annotations

from pathlib import Path

import pytest

from precache.traces import Request, detect_format, is_page, normalize_path, read_requests, read_sessions
from precache.traces.clf import make_clf_parser, split_request
from precache.traces.timeparse import ClfTimeParser

T0 = 804571201.0  # 01/Jul/1995:00:00:01 -0400


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('h - - [01/Jul/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200 10', Request(T0, "h", "/a", "GET", 200, 10)),
        ('h - - [01/Jul/1995:00:00:01 -0400] "GET /a" 200 10', Request(T0, "h", "/a", "GET", 200, 10)),
        ('h - - [01/Jul/1995:00:00:01 -0400] "GET /a HTTP/1.0" 304 -', Request(T0, "h", "/a", "GET", 304, 0)),
        ('h - - [01/Jul/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200', Request(T0, "h", "/a", "GET", 200, 0)),
        ('h - u [01/Jul/1995:04:00:01 +0000] "POST /f?q=1 HTTP/1.1" 201 5 "http://r/" "Mozilla/5.0 (X)"',
         Request(T0, "h", "/f?q=1", "POST", 201, 5)),
        ('h [01/Jul/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200 10', Request(T0, "h", "/a", "GET", 200, 10)),
        ('h  -  -  [01/Jul/1995:00:00:01 -0400]  "GET /a HTTP/1.0"  200  10', Request(T0, "h", "/a", "GET", 200, 10)),
        ('h - - [01/Jul/1995:04:00:01] "GET /a HTTP/1.0" 200 1', Request(T0, "h", "/a", "GET", 200, 1)),
        ('h - - [1/jul/1995:04:00:01.5 +00:00] "GET /a HTTP/1.0" 200 1', Request(T0 + 0.5, "h", "/a", "GET", 200, 1)),
        ('h - - [01/Jul/1995:00:00:01 -0400] "GET /my file.html HTTP/1.0" 200 3',
         Request(T0, "h", "/my file.html", "GET", 200, 3)),
        ('h - - [01/Jul/1995:00:00:01 -0400] "/bare" 200 3', Request(T0, "h", "/bare", "GET", 200, 3)),
    ],
)
def test_clf_variants(line: str, expected: Request) -> None:
    assert make_clf_parser()(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "garbage",
        'h - - [01/Jul/1995:00:00:01 -0400] "\x16\x03\x01\x02" 400 0',  # TLS bytes on the HTTP port
        'h - - [01/Jul/1995:00:00:01 -0400] "" 400 0',
        'h - - [99/Foo/1995:00:00:01 -0400] "GET /a HTTP/1.0" 200 1',
        'h - - [01/Jul/1995:00:00:01 -0400] "GET /a HTTP/1.0" abc 1',
    ],
)
def test_clf_garbage_is_rejected(line: str) -> None:
    assert make_clf_parser()(line) is None


def test_split_request() -> None:
    assert split_request("GET /a HTTP/1.0") == ("GET", "/a")
    assert split_request("get /a HTTP/1.0") == ("GET", "/a")  # lower-case methods are read, upper-cased
    assert split_request("GET") is None


def test_time_cache_is_consistent_across_days_and_zones() -> None:
    parse = ClfTimeParser()
    assert parse("01/Jul/1995:00:00:01 -0400") == T0
    assert parse("01/Jul/1995:04:00:01 +0000") == T0
    assert parse("02/Jul/1995:00:00:01 -0400") == T0 + 86400
    assert parse("01/Jul/1995:00:00:01 -0400") == T0
    assert parse("31/Dec/1999:23:59:59 +0000") == 946684799.0


def test_normalize_path() -> None:
    assert normalize_path("/a.html?x=1#top") == "/a.html"
    assert normalize_path("/a.html?x=1#top", keep_query=True) == "/a.html?x=1"
    assert normalize_path("http://www.nasa.gov/shuttle/") == "/shuttle/"
    assert normalize_path("http://www.nasa.gov") == "/"
    assert normalize_path("") == "/"


def test_is_page() -> None:
    assert is_page(Request(0, "c", "/a.html"))
    assert is_page(Request(0, "c", "/dir/", status=304))
    assert not is_page(Request(0, "c", "/a.html", status=404))
    assert not is_page(Request(0, "c", "/img/logo.GIF?v=2"))
    assert not is_page(Request(0, "c", "/x.css"))
    assert is_page(Request(0, "c", "/x.css"), asset_extensions={"gif"})


def test_csv_with_iso_times_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        'timestamp,ip,path,status,size\n2024-01-01T00:00:00Z,1.1.1.1,"/a,b.html",200,10\n'
        "2024-01-01T00:00:05,1.1.1.1,/c.html,304,-\n",
        encoding="utf-8",
    )
    assert detect_format(path) == "csv"
    requests = list(read_requests(path))
    assert requests == [
        Request(1704067200.0, "1.1.1.1", "/a,b.html", "GET", 200, 10),
        Request(1704067205.0, "1.1.1.1", "/c.html", "GET", 304, 0),
    ]


def test_msnbc_style_seq_without_names(tmp_path: Path) -> None:
    path = tmp_path / "x.seq"
    path.write_bytes(b"% Sequences:\r\n\r\n1 1 \r\n2 \r\n3 2 2 \r\n")
    assert detect_format(path) == "seq"
    assert [s.pages for s in read_sessions(path)] == [["1", "1"], ["2"], ["3", "2", "2"]]


def test_log_sessions_split_on_gap(tmp_path: Path) -> None:
    path = tmp_path / "g.log"
    rows = [
        (0, "/a.html", 200), (10, "/logo.gif", 200), (20, "/b.html", 304), (4000, "/c.html", 200),
        (4001, "/missing.html", 404),
    ]
    lines = []
    for t, p, s in rows:
        stamp = f"01/Jul/1995:{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d} -0400"
        lines.append(f'c - - [{stamp}] "GET {p} HTTP/1.0" {s} 1\n')
    path.write_text("".join(lines), encoding="utf-8")
    sessions = read_sessions(path)
    assert [s.pages for s in sessions] == [["/a.html", "/b.html"], ["/c.html"]]
    assert [a.path for a in sessions[0].assets] == ["/logo.gif"]
    assert [s.pages for s in read_sessions(path, gap_seconds=10_000)] == [["/a.html", "/b.html", "/c.html"]]
