"""The one error type trace reading raises, so callers (and the CLI) can tell bad input from bugs."""

from __future__ import annotations


class TraceFormatError(ValueError):
    """A trace cannot be read: unknown format, corrupt compression, or (with ``strict=True``) a bad line.

    It is a ``ValueError`` so the CLI entry point prints it as one clear line with exit status 2.
    ``line_number`` is the 1-based physical line where the problem was found, when there is one.
    """

    def __init__(self, message: str, *, path: str | None = None, line_number: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line_number is not None:
                where += f", line {line_number}"
            where += ": "
        elif line_number is not None:
            where = f"line {line_number}: "
        super().__init__(where + message)
        self.path = path
        self.line_number = line_number
