"""The design rules of the developers' guide, checked over the source (fast: ast only, nothing imported).

* Package layering (``/work/shared/ARCHITECTURE.md``, "Packages"): a row of the package table may import
  the rows above it, never a row below it, and no two packages import each other (no cycle). ``cli`` and
  ``serve`` may import everything.
* No function over 80 lines, no module over 600 lines.

Every import counts, including the lazy ones inside functions and the ``TYPE_CHECKING`` ones: a lazy import
is still a dependency (it only moves the cost), and a type-only one still ties the two packages' designs.
Offenders that other work is still reshaping are listed, each with a comment, in the ``KNOWN_*`` tables
below; the tests fail when an offender is not listed, and also when a listed one is fixed (so the list only
shrinks).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import precache

SRC = Path(precache.__file__).parent
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 600

# The package table, top row first. A unit (a sub-package, or a top-level module of ``precache``) may import
# units of earlier rows only; units of one row do not import each other. Rows not in the table: the shared
# names and utilities every package may use (first row), ``scoring`` / ``evaluation`` (the ranking metrics and
# the evaluation protocol, which models use to choose), ``edge`` (exporting a model as the edge Workers' files:
# the registry's activation publishes through it), ``stack`` (a cache, warmer and models put together from the
# settings) and ``processes`` (process groups, for the CLI and the service).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_lazy", "types", "defaults", "processes"),
    ("resilience",),
    ("config",),
    ("history",),  # the one session-history store (protocol, memory, Redis, failover)
    ("traces",),
    ("cache",),
    ("scoring",),
    ("evaluation",),
    ("models",),
    ("online",),  # the online layer: live counts merged with the frozen model (issue 25)
    ("inference",),
    ("edge",),
    ("registry",),
    ("training",),
    ("warming",),
    ("monitoring",),
    ("experiments",),
    ("web",),
    ("stack",),
    ("serve",),
    ("sim",),
    ("cli",),
)
IMPORTS_EVERYTHING = {"cli", "serve", "precache"}  # ``precache`` is the package's own lazy façade

# Upward imports still being reshaped by other work: (importer unit, imported unit) -> why it is allowed now.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}
# Module cycles still being reshaped by other work (sorted module names).
KNOWN_MODULE_CYCLES: set[tuple[str, ...]] = set()
# Functions over the limit, "path:function" -> lines when listed (a listed one may shrink, not grow); each is
# owned by work in progress.
KNOWN_LONG_FUNCTIONS: dict[str, int] = {}
# Modules over the limit, "path" -> lines when listed.
KNOWN_LONG_MODULES: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (or a name inside it)
    line: int


def module_name(path: Path) -> str:
    parts = ["precache", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[Import]:
    """Every ``precache`` import in ``path``, relative ones resolved."""
    importer = module_name(path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            if name == "precache" or name.startswith("precache."):
                yield Import(importer, name, node.lineno)


def unit(module: str) -> str:
    """The unit of the package table a module belongs to: ``precache.cache.layered`` -> ``cache``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "precache"


def sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def layer_of() -> dict[str, int]:
    return {name: row for row, names in enumerate(LAYERS) for name in names}


def test_every_unit_has_a_row() -> None:
    """A new package or top-level module must be placed in the table (and so in the layering)."""
    rows = layer_of()
    units = {unit(module_name(p)) for p in sources()} - IMPORTS_EVERYTHING
    assert units <= set(rows), f"not in LAYERS: {sorted(units - set(rows))}"


def upward_imports() -> dict[tuple[str, str], list[str]]:
    rows = layer_of()
    found: dict[tuple[str, str], list[str]] = {}
    for path in sources():
        for imp in imports_of(path):
            a, b = unit(imp.importer), unit(imp.imported)
            if a == b or a in IMPORTS_EVERYTHING:
                continue
            if b in IMPORTS_EVERYTHING or rows[b] >= rows[a]:
                found.setdefault((a, b), []).append(f"{path.relative_to(SRC)}:{imp.line} imports {imp.imported}")
    return found


def test_no_upward_import_between_packages() -> None:
    found = upward_imports()
    new = {edge: where for edge, where in found.items() if edge not in KNOWN_UPWARD}
    assert not new, "upward (or same-row) imports:\n" + "\n".join(
        f"{a} -> {b}: {'; '.join(where)}" for (a, b), where in sorted(new.items()))
    fixed = set(KNOWN_UPWARD) - set(found)
    assert not fixed, f"fixed, remove from KNOWN_UPWARD: {sorted(fixed)}"


def test_no_import_cycle_between_packages() -> None:
    """Implied by the layering for the table's rows; checked on its own so a cycle is named as one."""
    graph: dict[str, set[str]] = {}
    for path in sources():
        for imp in imports_of(path):
            a, b = unit(imp.importer), unit(imp.imported)
            if a != b and "precache" not in (a, b):
                graph.setdefault(a, set()).add(b)
    cycles = [(a, b) for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, set())]
    assert not cycles, f"packages importing each other: {cycles}"
    # longer cycles: a unit reachable from itself
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node == start:
                raise AssertionError(f"{start} is in an import cycle between packages")
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))


def module_graph() -> dict[str, set[str]]:
    """Module -> the ``precache`` modules it imports. ``from pkg import mod`` imports ``mod`` (the package's
    ``__init__`` runs first whatever one imports from it, so that is not an edge of its own)."""
    modules = {module_name(p) for p in sources()}
    graph: dict[str, set[str]] = {}
    for path in sources():
        importer = module_name(path)
        targets = graph.setdefault(importer, set())
        submodules: dict[int, set[str]] = {}  # line -> modules named by ``from pkg import mod``
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("precache"):
                named = {f"{node.module}.{alias.name}" for alias in node.names}
                if named <= modules:
                    submodules[node.lineno] = named
        for imp in imports_of(path):
            found = submodules.get(imp.line) or ({imp.imported} if imp.imported in modules else set())
            targets.update(found - {importer})
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_modules() -> None:
    """Modules that import each other (even lazily, or for types only) are one module in two files."""
    found = {tuple(c) for c in cycles(module_graph())}
    new = found - KNOWN_MODULE_CYCLES
    assert not new, f"modules in an import cycle: {sorted(new)}"
    assert not KNOWN_MODULE_CYCLES - found, f"fixed, remove from KNOWN_MODULE_CYCLES: {KNOWN_MODULE_CYCLES - found}"


def function_lengths() -> dict[str, int]:
    long: dict[str, int] = {}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(SRC)}:{node.name}"] = lines
    return long


def test_no_function_over_80_lines() -> None:
    long = function_lengths()
    new = {name: n for name, n in long.items() if n > KNOWN_LONG_FUNCTIONS.get(name, MAX_FUNCTION_LINES)}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (def to last line): {new}"
    fixed = set(KNOWN_LONG_FUNCTIONS) - set(long)
    assert not fixed, f"fixed, remove from KNOWN_LONG_FUNCTIONS: {sorted(fixed)}"


def test_no_module_over_600_lines() -> None:
    long = {str(p.relative_to(SRC)): n for p in sources() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    new = {name: n for name, n in long.items() if n > KNOWN_LONG_MODULES.get(name, MAX_MODULE_LINES)}
    assert not new, f"modules over {MAX_MODULE_LINES} lines: {new}"
    fixed = set(KNOWN_LONG_MODULES) - set(long)
    assert not fixed, f"fixed, remove from KNOWN_LONG_MODULES: {sorted(fixed)}"


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    """The walkers above find what they look for (a check that cannot fail proves nothing)."""
    sample = SRC / "cache" / "layered.py"
    assert any(unit(i.imported) == "cache" for i in imports_of(sample))
    assert unit("precache.models.kinds") == "models" and unit("precache") == "precache"
    rows = layer_of()
    assert rows["cache"] < rows["models"] < rows["registry"] < rows["serve"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
