"""No filesystem paths in answers to callers who do not run the system (issue 28).

``/api/ml/models`` showed API-token holders the absolute paths of the training data (``dataSpan.sources``) and
``/readyz`` (no auth) the model directories. Such callers get the last path component instead: enough to
tell two data sources apart, nothing about the host's layout. The training key still sees everything.
"""

from __future__ import annotations

import re
from typing import Any

# An absolute path of two or more components (``/a3`` or ``/hub``, a page, is one and stays).
_PATH = re.compile(r"(?<![\w.:/~-])(?:/[\w.@+~-]+){2,}/?")


def _last(match: re.Match[str]) -> str:
    parts = [p for p in match.group(0).split("/") if p]
    return parts[-1] if parts else "/"


def hide_paths(value: Any) -> Any:
    """``value`` (JSON-like) with every absolute path in its strings cut to its last component."""
    if isinstance(value, str):
        return _PATH.sub(_last, value)
    if isinstance(value, dict):
        return {key: hide_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [hide_paths(item) for item in value]
    return value
