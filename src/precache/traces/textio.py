"""Open a trace as decoded text lines, whatever its compression, with bounded memory per line.

Traces arrive plain, gzipped or zipped (the MSNBC copy is a zip with macOS junk members; a zip of several
logs is read member after member), sometimes truncated, sometimes with bytes that are not UTF-8, a BOM
or in UTF-16 (Windows tools). Readers should not care: they get ``str`` lines without
line endings. Compression is sniffed from magic bytes, not the file name, so a mislabelled file still reads.
Lines longer than ``max_line_chars`` are skipped (and counted) by reading them in bounded pieces, so a
1 GB line never sits in memory.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from precache.traces.errors import TraceFormatError

MAX_LINE_CHARS = 64 * 1024
"""Lines longer than this are not log records: skipped and counted as overlong."""

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


class _Closable(Protocol):
    def close(self) -> None: ...


def _open_binary(path: Path) -> tuple[IO[bytes], list[_Closable]]:
    """Return a binary stream of the decompressed content plus every handle to close afterwards."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through the returned list
    try:
        magic = raw.read(4)
        raw.seek(0)
        if magic.startswith(_GZIP_MAGIC):
            gz = gzip.GzipFile(fileobj=raw, mode="rb")
            return gz, [gz, raw]  # type: ignore[return-value]
        if magic.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
            archive = zipfile.ZipFile(raw)
            members = [
                info
                for info in archive.infolist()
                if not info.is_dir()
                and not info.filename.startswith("__MACOSX/")
                and not os.path.basename(info.filename).startswith("._")
            ]
            if not members:
                archive.close()
                raise TraceFormatError("zip archive holds no data member", path=str(path))
            if len(members) == 1:
                member = archive.open(members[0])
                return member, [member, archive, raw]
            chained = io.BufferedReader(_Members(archive, members))
            return chained, [chained, archive, raw]
        return raw, [raw]
    except zipfile.BadZipFile as exc:
        raw.close()
        raise TraceFormatError(f"corrupt zip archive ({exc})", path=str(path)) from None
    except BaseException:
        raw.close()
        raise


class _Members(io.RawIOBase):
    """The data members of a zip, read one after the other (rotated logs zipped together are one log).

    A member that does not end with a newline gets one, so its last line does not merge with the next
    member's first line.
    """

    def __init__(self, archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> None:
        self._archive = archive
        self._pending = list(members)
        self._current: IO[bytes] | None = None
        self._last = b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._current is None:
                if not self._pending:
                    return 0
                self._current = self._archive.open(self._pending.pop(0))
            data = self._current.read(len(buffer))
            if data:
                buffer[: len(data)] = data
                self._last = data[-1:]
                return len(data)
            self._current.close()
            self._current = None
            if self._last != b"\n":
                self._last = b"\n"
                buffer[:1] = b"\n"
                return 1

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()


def _encoding(stream: IO[bytes]) -> str:
    """``utf-16`` for a UTF-16 byte-order mark, else ``utf-8-sig`` (which drops a UTF-8 BOM if present)."""
    peek = getattr(stream, "peek", None)
    head = peek(4)[:4] if callable(peek) else b""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return "utf-8-sig"


class TextLines:
    """Iterator over the decoded lines of a trace file (line endings removed).

    Counters are public so readers can report them: ``line_number`` is the physical number of the last line
    yielded (skipped overlong lines still advance it), ``overlong`` counts skipped lines and
    ``overlong_line_numbers`` keeps the first few. Iterating twice re-opens the file.
    """

    def __init__(self, path: str | os.PathLike[str], max_line_chars: int = MAX_LINE_CHARS) -> None:
        self.path = Path(path)
        if max_line_chars < 1:
            raise ValueError("max_line_chars must be positive")
        self.max_line_chars = max_line_chars
        self.line_number = 0
        self.overlong = 0
        self.overlong_line_numbers: list[int] = []
        self._active: Iterator[str] | None = None

    def __next__(self) -> str:
        """Lets ``next(open_text(path))`` work as on a plain iterator (one pass shared by next() calls)."""
        if self._active is None:
            self._active = iter(self)
        return next(self._active)

    def __iter__(self) -> Iterator[str]:
        if not self.path.exists():
            raise FileNotFoundError(f"no such trace file: {self.path}")
        if self.path.is_dir():
            raise IsADirectoryError(f"trace path is a directory, not a file: {self.path}")
        self.line_number = 0
        self.overlong = 0
        self.overlong_line_numbers = []
        stream, handles = _open_binary(self.path)
        try:
            text = io.TextIOWrapper(stream, encoding=_encoding(stream), errors="replace", newline=None)
            handles.insert(0, text)
            yield from self._lines(text)
        except (EOFError, gzip.BadGzipFile, zlib.error, zipfile.BadZipFile) as exc:
            raise TraceFormatError(
                f"compressed data is truncated or corrupt after {self.line_number} lines ({exc})",
                path=str(self.path),
                line_number=self.line_number + 1,
            ) from None
        finally:
            for handle in handles:
                try:
                    handle.close()
                except Exception:  # closing a half-read corrupt stream may raise again; nothing to do
                    pass

    def _lines(self, text: io.TextIOWrapper) -> Iterator[str]:
        limit = self.max_line_chars
        readline = text.readline
        while True:
            line = readline(limit + 1)
            if not line:
                return
            self.line_number += 1
            if line[-1] == "\n":
                yield line[:-1]
                continue
            if len(line) <= limit:  # last line without a newline
                yield line
                return
            # Overlong: drain the rest of the line in bounded pieces, never holding it whole.
            while line and line[-1] != "\n":
                line = readline(limit)
            self.overlong += 1
            if len(self.overlong_line_numbers) < 10:
                self.overlong_line_numbers.append(self.line_number)


def open_text(path: str | os.PathLike[str], max_line_chars: int = MAX_LINE_CHARS) -> TextLines:
    """Open a plain, gzip or zip trace as an iterable of decoded lines (see :class:`TextLines`).

    Non-UTF-8 bytes become U+FFFD instead of failing; CRLF and CR endings are normalised; a truncated or
    corrupt archive raises :class:`TraceFormatError` naming how many lines were read first.
    """
    return TextLines(path, max_line_chars)


def read_head(path: str | os.PathLike[str], n_lines: int = 32, max_chars: int = 256 * 1024) -> list[str]:
    """The first few lines of a trace, for format sniffing; stops early on a truncated archive."""
    lines: list[str] = []
    total = 0
    reader = TextLines(path, max_line_chars=min(MAX_LINE_CHARS, max_chars))
    iterator = iter(reader)
    try:
        for line in iterator:
            lines.append(line)
            total += len(line)
            if len(lines) >= n_lines or total >= max_chars:
                break
    except TraceFormatError:
        if not lines:
            raise
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return lines
