"""Round-trips: generate records, write them with a random Apache LogFormat, read them back."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from precache.traces.logformat import make_log_format_parser

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-~", min_size=1, max_size=12)
_PATH = st.lists(_TOKEN, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
_FREE = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789 ;:/()+.,[]-", min_size=1, max_size=40)

# directives that carry no field of ours, mixed in to check that they are read past
_EXTRAS = ["%l", "%u", "%D", "%T", "%v", "%k", "%X", "%{X-Forwarded-For}i"]


@st.composite
def records(draw: st.DrawFn) -> dict[str, object]:
    return {
        "client": ".".join(str(draw(st.integers(0, 255))) for _ in range(4)),
        "time": draw(st.integers(0, 4_000_000_000)),
        "method": draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "get"])),
        "path": draw(_PATH),
        "status": draw(st.integers(100, 599)),
        "size": draw(st.integers(0, 10**9)),
        "referrer": draw(st.none() | _PATH.map(lambda p: "https://example.org" + p)),
        "agent": draw(st.none() | _FREE.filter(lambda s: s.strip() == s and s != "-")),
    }


@st.composite
def log_formats(draw: st.DrawFn) -> list[str]:
    """A LogFormat as a list of directives (joined by spaces); time and request always present."""
    fields = ["%h", "%t", '"%r"', "%>s", "%b", '"%{Referer}i"', '"%{User-agent}i"']
    chosen = [f for f in fields if f in ("%t", '"%r"') or draw(st.booleans())]
    chosen += draw(st.lists(st.sampled_from(_EXTRAS), max_size=3))
    return draw(st.permutations(chosen))


def _write(directive: str, record: dict[str, object]) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(int(record["time"])))  # type: ignore[call-overload]
    values = {
        "%h": str(record["client"]), "%t": f"[{stamp}]", '"%r"': f'"{record["method"]} {record["path"]} HTTP/1.1"',
        "%>s": str(record["status"]), "%b": str(record["size"]) if record["size"] else "-",
        '"%{Referer}i"': f'"{record["referrer"] or "-"}"', '"%{User-agent}i"': f'"{record["agent"] or "-"}"',
        "%l": "-", "%u": "frank", "%D": "1234", "%T": "0", "%v": "www.example.org", "%k": "3", "%X": "+",
        "%{X-Forwarded-For}i": "10.0.0.1",  # unquoted text with spaces next to %h would be ambiguous
    }
    return values[directive]


@settings(max_examples=150, deadline=None)
@given(fmt=log_formats(), batch=st.lists(records(), min_size=1, max_size=5))
def test_random_logformat_round_trip(fmt: list[str], batch: list[dict[str, object]]) -> None:
    parse = make_log_format_parser(" ".join(fmt))
    for record in batch:
        line = " ".join(_write(directive, record) for directive in fmt)
        request = parse(line)
        assert request is not None, (fmt, line)
        assert request.time == record["time"]
        assert request.path == record["path"]
        assert request.method == str(record["method"]).upper()
        if "%h" in fmt:
            assert request.client == record["client"]
        if "%>s" in fmt:
            assert request.status == record["status"]
        if "%b" in fmt:
            assert request.size == record["size"]
        if '"%{Referer}i"' in fmt:
            assert request.referrer == record["referrer"]
        if '"%{User-agent}i"' in fmt:
            assert request.agent == record["agent"]
