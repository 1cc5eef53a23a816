"""What a read did: how many lines, how many records, which lines were malformed.

Bad lines are skipped rather than fatal (real logs always have some), so the count must be visible:
``trace-stats`` prints it and tests assert on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from precache.traces.errors import TraceFormatError

MAX_KEPT_LINE_NUMBERS = 10


@dataclass(slots=True)
class ReadReport:
    """Counters of one pass over a trace. ``malformed`` includes overlong lines; blank lines are not errors."""

    path: str = ""
    format: str = ""
    lines: int = 0
    records: int = 0
    malformed: int = 0
    blank: int = 0
    overlong: int = 0
    malformed_line_numbers: list[int] = field(default_factory=list)
    first_bad_line: str | None = None
    """The first malformed line itself (cut to 200 characters), quoted by the loud failure."""
    first_bad_line_number: int | None = None
    bots: int = 0
    """Requests skipped as crawler traffic (``drop_bots``)."""
    out_of_order: int = 0
    """Requests older than their client's previous one by more than a minute (the log is not in time order)."""
    notes: list[str] = field(default_factory=list)
    """What the user should know about this read (which format ``auto`` chose, assumptions made)."""

    def add_malformed(self, line_number: int, line: str, strict: bool) -> None:
        """Count one bad line, or raise on it when reading strictly."""
        if strict:
            shown = line if len(line) <= 120 else line[:117] + "..."
            raise TraceFormatError(
                f"malformed {self.format} record: {shown!r}", path=self.path, line_number=line_number
            )
        self.malformed += 1
        if self.first_bad_line is None:
            self.first_bad_line = line if len(line) <= 200 else line[:197] + "..."
            self.first_bad_line_number = line_number
        if len(self.malformed_line_numbers) < MAX_KEPT_LINE_NUMBERS:
            self.malformed_line_numbers.append(line_number)

    def add_overlong(self, count: int, line_numbers: list[int], strict: bool) -> None:
        """Fold the text layer's overlong-line count in (they are malformed records too)."""
        if count and strict:
            raise TraceFormatError(
                "line longer than the line limit", path=self.path, line_number=line_numbers[0]
            )
        self.overlong = count
        self.malformed += count
        merged = sorted({*self.malformed_line_numbers, *line_numbers})
        self.malformed_line_numbers = merged[:MAX_KEPT_LINE_NUMBERS]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
