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


def declared_imports(path: str) -> dict[str, str]:
    """``name -> module`` of the ``from module import name as name`` lines under ``if TYPE_CHECKING:`` in
    the source file ``path``: a package's one list of its public names, read by type checkers as it is
    and by :func:`lazy_package` at run time (the approach of scientific-python's ``lazy_loader`` stubs)."""
    import ast

    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read(), path)
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    names.update({alias.asname or alias.name: statement.module for alias in statement.names})
    return names


def lazy_package(package: str, hidden: tuple[str, ...] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names are its ``TYPE_CHECKING`` imports
    (:func:`declared_imports`, parsed on first use, so ``import package`` reads nothing). ``__all__`` is
    computed from them too, less ``hidden`` (names that ``from package import *`` must not import)."""
    namespace = sys.modules[package].__dict__
    declared: dict[str, str] = {}

    def names() -> dict[str, str]:
        if not declared:
            declared.update(declared_imports(namespace["__file__"]))
        return declared

    def __getattr__(name: str) -> Any:
        if name == "__all__":
            value: Any = sorted([*(n for n in names() if n not in hidden), "__version__"])
        else:
            module = names().get(name)
            if module is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names()})

    return __getattr__, __dir__
