"""Every real trace in ../shared/data reads with the counts its SOURCE.md publishes."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from conftest import shared_file
from precache.traces import detect_format, read_requests, read_sessions

pytestmark = pytest.mark.realdata


def test_nasa_july_extract_clf() -> None:
    path = shared_file("nasa-http/NASA_access_log_small.gz")
    assert detect_format(path) == "clf"
    reader = read_requests(path)
    requests = list(reader)
    assert len(requests) == 10_000
    assert reader.report.lines == 10_000 and reader.report.malformed == 0
    assert len({r.client for r in requests}) == 936
    assert requests[0].client == "199.72.81.55" and requests[0].path == "/history/apollo/"
    # 01/Jul/1995:00:00:01 -0400 .. 01/Jul/1995:03:39:48 -0400
    assert requests[0].time == 804571201.0
    assert requests[-1].time == 804571201.0 + 3 * 3600 + 39 * 60 + 47
    statuses = Counter(r.status for r in requests)
    assert statuses == {200: 9013, 304: 531, 302: 408, 404: 48}
    # 22 requests of this extract have no protocol ("GET /ksc.html"): they are read, not dropped.
    assert any(r.path == "/ksc.html" and r.client == "columbia.acc.brad.ac.uk" for r in requests)
    assert sum(1 for r in requests if r.size == 0) >= 101  # "-" sizes read as 0


def test_nasa_august_tsv() -> None:
    path = shared_file("nasa-http/nasa_19950801.tsv.gz")
    assert detect_format(path) == "tsv"
    reader = read_requests(path)
    requests = list(reader)
    assert len(requests) == 30_969 and reader.report.malformed == 0
    assert len({r.client for r in requests}) == 2_365
    assert len({r.path for r in requests}) == 2_088
    assert Counter(r.method for r in requests) == {"GET": 30_873, "HEAD": 95, "POST": 1}
    assert requests[0].time == 807256800 and requests[-1].time == 807303121
    assert all(a.time <= b.time for a, b in itertools.pairwise(requests))


def test_nasa_sessions_have_pages_only() -> None:
    sessions = read_sessions(shared_file("nasa-http/NASA_access_log_small.gz"))
    assert 900 < len(sessions) < 1_000
    pages = [page for session in sessions for page in session.pages]
    assert not any(page.endswith((".gif", ".jpg", ".mpg", ".xbm")) for page in pages)
    assert all("?" not in page for page in pages)
    assert all(s.start <= t.start for s, t in itertools.pairwise(sessions))
    assert all(len(s.times) == len(s.pages) for s in sessions)


def test_msnbc_full() -> None:
    path = shared_file("msnbc-anonymous-web/msnbc990928.zip")
    assert detect_format(path) == "seq"
    sessions = read_sessions(path)  # its speed is bench/bench_traces.py's job, not a test's
    assert len(sessions) == 989_818
    assert sum(len(s) for s in sessions) == 4_698_794
    assert max(len(s) for s in sessions) == 14_795
    assert sessions[0].pages == ["frontpage", "frontpage"]
    assert sessions[1].pages == ["news"]
    assert len({p for s in sessions for p in s.pages}) == 17


def test_bms_webview_1() -> None:
    path = shared_file("bms-webview/BMSVIEW1.txt.gz")
    assert detect_format(path) == "spmf"
    sessions = read_sessions(path)
    assert len(sessions) == 59_601
    assert len({p for s in sessions for p in s.pages}) == 497
    assert round(sum(len(s) for s in sessions) / len(sessions), 2) == 2.51
    assert sessions[0].pages == ["10307", "10311", "12487"]


def test_diginetica_sample() -> None:
    path = shared_file("diginetica-sample/sample_train-item-views.csv.gz")
    assert detect_format(path) == "itemviews"
    sessions = read_sessions(path)
    assert sum(len(s) for s in sessions) == 12_391
    assert len(sessions) == 2_986
    assert len({p for s in sessions for p in s.pages}) == 7_139
    assert all(s.times == sorted(s.times) and len(s.times) == len(s.pages) for s in sessions)
    assert all(a.start <= b.start for a, b in itertools.pairwise(sessions))
    session_1 = next(s for s in sessions if s.session_id == "1")
    # the 10 rows of session 1 are not in timeframe order in the file; read back they are
    assert session_1.pages == ["9654", "33043", "32118", "12352", "35077", "36118", "81766", "129055", "31331",
                               "32627"]
    assert session_1.times[1] - session_1.times[0] == pytest.approx((173912 - 75848) / 1000)


def test_cloudphysics_csv_reads_as_requests() -> None:
    path = shared_file("libcachesim-cloudphysics/cloudPhysicsIO.csv.gz")
    requests = list(read_requests(path))
    assert len(requests) == 113_872
    assert len({r.path for r in requests}) == 48_974
    # its "op" column holds SCSI opcodes (2a write, 28 read), not HTTP methods: every request is a GET
    assert Counter(r.method for r in requests) == {"GET": 113_872}
    assert requests[0].time == 5633898 and requests[-1].time == 5641098
