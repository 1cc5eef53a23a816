"""Session files that are already sessions: MSNBC ``.seq``, SPMF/BMS `` -1 `` sequences, DIGINETICA item views.

These carry order (and for item views, coarse times) but no client log, so they are read as given rather than
sessionized. Sequence files have no timestamps: ``Session.start`` is the data line's ordinal, which keeps the
file order for the time split, and ``times`` is empty.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator

from precache.traces.errors import TraceFormatError
from precache.traces.model import Session
from precache.traces.report import ReadReport
from precache.traces.textio import TextLines


def read_seq(lines: TextLines, report: ReadReport, strict: bool = False) -> Iterator[Session]:
    """MSNBC style: ``%`` comment lines, an optional line of category names, then space-separated numbers.

    Category numbers are 1-based indexes into the names line; pages are the names when it is present
    (``frontpage``, ``news`` ...), else the numbers as given.
    """
    names: dict[str, str] = {}
    seen_data = False
    index = 0
    for line in lines:
        report.lines += 1
        compact = line.replace(" ", "").replace("\t", "")
        if not compact:
            report.blank += 1
            continue
        if compact.isdigit():
            seen_data = True
            tokens = line.split()
            get = names.get
            pages = [get(token, token) for token in tokens] if names else tokens
            yield Session(str(index), str(index), float(index), pages)
            index += 1
            report.records += 1
            continue
        if line.startswith("%"):
            continue
        if not seen_data and not names:
            names = {str(i): name for i, name in enumerate(line.split(), start=1)}
            continue
        report.add_malformed(lines.line_number, line, strict)


def read_spmf(lines: TextLines, report: ReadReport, strict: bool = False) -> Iterator[Session]:
    """SPMF sequence database: items separated by spaces, itemsets closed by ``-1``, optional ``-2`` end.

    Items of one itemset are flattened in their written order. ``@``/``#`` lines are SPMF metadata.
    """
    index = 0
    for line in lines:
        report.lines += 1
        tokens = line.split()
        if not tokens:
            report.blank += 1
            continue
        if line[0] in "@#%":
            continue
        pages = [token for token in tokens if token != "-1" and token != "-2"]
        if not pages or not all(token.isdigit() for token in pages):
            report.add_malformed(lines.line_number, line, strict)
            continue
        yield Session(str(index), str(index), float(index), pages)
        index += 1
        report.records += 1


ITEMVIEW_COLUMNS = ("session_id", "item_id", "timeframe", "eventdate")


def read_itemviews(lines: TextLines, report: ReadReport, strict: bool = False) -> list[Session]:
    """DIGINETICA ``session_id;user_id;item_id;timeframe;eventdate`` rows grouped into sessions.

    ``timeframe`` is taken as milliseconds since the session's first event (DIGINETICA's meaning; the
    sample does not document it), added to the session's earliest ``eventdate`` (UTC midnight). Sessions are
    ordered by that start (event date, then time frame); pages within a session by time frame, ties in file
    order. Grouping needs the whole file, so memory is proportional to the rows (fine for item-view CSVs).
    """
    iterator = iter(lines)
    header = ""
    for header in iterator:
        report.lines += 1
        if header.strip():
            break
        report.blank += 1
    delimiter = ";" if header.count(";") >= header.count(",") else ","
    names = [name.strip().lower() for name in header.split(delimiter)]
    missing = [name for name in ITEMVIEW_COLUMNS if name not in names]
    if missing:
        raise TraceFormatError(f"item-view header lacks {', '.join(missing)}: {header[:120]!r}", path=report.path)
    i_session, i_item, i_frame, i_date = (names.index(name) for name in ITEMVIEW_COLUMNS)
    i_user = names.index("user_id") if "user_id" in names else None
    width = max(i_session, i_item, i_frame, i_date) + 1
    groups: dict[str, list[tuple[int, int, str]]] = {}
    first_date: dict[str, int] = {}
    users: dict[str, str] = {}
    day_cache: dict[str, int | None] = {}
    for line in iterator:
        report.lines += 1
        if not line.strip():
            report.blank += 1
            continue
        row = line.split(delimiter)
        if len(row) < width:
            report.add_malformed(lines.line_number, line, strict)
            continue
        session_id, item, frame_text, date_text = row[i_session], row[i_item], row[i_frame], row[i_date]
        day = day_cache.get(date_text)
        if date_text not in day_cache:
            day = _day_epoch(date_text)
            day_cache[date_text] = day
        if day is None or not item or not session_id or not frame_text.strip().isdigit():
            report.add_malformed(lines.line_number, line, strict)
            continue
        groups.setdefault(session_id, []).append((int(frame_text), report.lines, item))
        if day < first_date.get(session_id, day + 1):
            first_date[session_id] = day
        if i_user is not None and session_id not in users and row[i_user] not in ("", "NA"):
            users[session_id] = row[i_user]
        report.records += 1
    sessions: list[Session] = []
    for session_id, events in groups.items():
        events.sort()
        base = float(first_date[session_id])
        times = [base + frame / 1000.0 for frame, _, _ in events]
        pages = [item for _, _, item in events]
        sessions.append(Session(session_id, users.get(session_id, session_id), times[0], pages, times))
    sessions.sort(key=lambda s: (s.start, _numeric_key(s.session_id)))
    return sessions


def _numeric_key(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (0, text)


def _day_epoch(text: str) -> int | None:
    parts = text.strip().split("-")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    year, month, day = (int(part) for part in parts)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


def count_clicks(sessions: Iterable[Session]) -> int:
    return sum(len(session.pages) for session in sessions)
