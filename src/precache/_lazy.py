"""Lazy module attributes (PEP 562), so importing a package does not import its heavy parts."""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: ``import precache`` does not import typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def lazy_getattr(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``names[name]`` (a module path) on first
    use of ``name`` and keeps the value as a plain attribute afterwards."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
