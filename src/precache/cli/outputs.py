"""Check a command's output paths before it works, so a bad one fails in a second, not after the run.

``demo --out`` pointing at an existing file, or an unwritable ``--json``, used to fail only after the whole
replay, with an error that named no option. Each command calls :func:`check_output_file` or
:func:`check_output_dir` for every output option first. Writability is probed by creating (and removing) a
temporary file where the output will go (or in its nearest existing parent, which the command will
create the rest under): permission bits do not tell the truth for root, read-only mounts or full disks.
Errors are ``ValueError`` naming the option, which the CLI entry point prints as one line with exit 2.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def _nearest_existing(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _probe(directory: Path, option: str, target: Path) -> None:
    if not directory.is_dir():
        raise ValueError(f"{option} {target}: {directory} is not a directory, so nothing can be written under it")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".precache-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"{option} {target}: cannot write in {directory} ({exc.strerror or exc})") from None


def check_output_file(path: Path | None, option: str) -> None:
    """``path`` (a file a command will write) can be written: not a directory, its folder writable."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a file path")
    if path.exists():
        try:
            with path.open("ab"):
                pass
        except OSError as exc:
            raise ValueError(f"{option} {path}: cannot write this file ({exc.strerror or exc})") from None
        return
    _probe(_nearest_existing(path.parent), option, path)


def check_output_dir(path: Path | None, option: str) -> None:
    """``path`` (a directory a command will create or fill) is not a file and can be written in."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is an existing file, not a directory; give a directory path")
    _probe(_nearest_existing(path), option, path)
