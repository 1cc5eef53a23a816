"""Fail when a figure quoted in the docs is not the one in its ``bench/results/*.json``.

A figure that comes from a benchmark is quoted as a Markdown link to its JSON file, the fragment naming the
value (a JSON Pointer, RFC 6901)::

    [2,914 req/s](bench/results/service.json#/runs/workers=2,mode=closed,concurrency=64/throughput_rps)
    [16.4%](../bench/results/replay.json#/rows/3/removed)               (from docs/: relative to the file)
    [0.156](<bench/results/cache.json#/ratios/l1_hit precache~1cashews/p50_ratio>)   (a key with a space)

- The quoted figure is the first number in the link text (``1,234``, ``0.87``, ``-3.5``, ``−3.5``).
- Right after the number, ``k`` / ``M`` / ``G`` mean thousands / millions / billions and ``%`` a fraction
  shown as a percentage (the JSON's 0.164 is quoted 16.4%); a link title gives any other scale explicitly:
  ``"*100"``, ``"/1e6"`` (then the suffix is only text).
- The figure matches when the JSON value, scaled, rounds to it at the number of decimals quoted
  (``472`` matches 472.13; ``423k`` does not match 472,133).
- A path segment ``key=value,key=value`` picks the one element of a list whose fields match (sturdier
  than an index when a benchmark adds rows); ``~1`` is ``/`` and ``~0`` is ``~`` in a key, as in RFC 6901;
  ``%XX`` escapes are decoded.

Run it as ``python bench/check_claims.py [FILE.md ...]`` (default: README.md and docs/*.md, where finding no
figure at all is an error too); it prints one line per bad figure (file, line, quoted value, JSON value) and
exits 1, or 0 with a count of the figures checked. ``make test`` runs it. ``--fix`` first re-quotes every drifted
figure in place from its JSON (after a benchmark re-run), keeping how it was written (decimals, separators,
sign, suffix); the sentences around the figures are the author's to re-read.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# [text](target "title") or [text](<target> "title"); the target must name a bench/results JSON file.
LINK = re.compile(
    r"\[(?P<text>[^\]]*)\]\(\s*(?:<(?P<angle>[^>]*)>|(?P<plain>[^)\s]+))(?:\s+\"(?P<title>[^\"]*)\")?\s*\)"
)
NUMBER = re.compile(
    r"(?P<sign>[-+−]?)(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<suffix>\s?[kMG%](?![A-Za-z]))?"
)
# What a claim looks like even when its link does not parse (a space in a target not written <...>).
CLAIM_HINT = re.compile(r"bench/results/[^)#\s]*\.json#")
SCALE = re.compile(r"^\s*(?P<op>[*/×÷])\s*(?P<factor>[0-9.eE+-]+)\s*$")
SUFFIX_SCALE = {"k": 1e-3, "M": 1e-6, "G": 1e-9, "%": 100.0}


class ClaimError(Exception):
    """A claim that cannot be checked at all (bad pointer, missing file, no number in the text)."""


@dataclass(frozen=True)
class Claim:
    """One figure in a document that names where in a benchmark's JSON it comes from."""

    doc: Path
    line: int
    text: str
    json_file: Path
    pointer: str
    title: str | None

    def where(self) -> str:
        try:
            shown = self.doc.relative_to(ROOT)
        except ValueError:
            shown = self.doc
        return f"{shown}:{self.line}"


def find_claims(doc: Path) -> list[Claim]:
    """Every link in ``doc`` whose target is a JSON file under bench/results with a fragment."""
    claims = []
    in_code = False
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        spans = [match.span() for match in LINK.finditer(line)]
        for hint in CLAIM_HINT.finditer(line):
            if not any(start <= hint.start() < end for start, end in spans):
                claims.append(Claim(doc, number, line[hint.start():hint.start() + 60], Path(), "", None))
        for match in LINK.finditer(line):
            target = match["angle"] if match["angle"] is not None else match["plain"]
            path, _, fragment = target.partition("#")
            if not path.endswith(".json"):
                continue
            json_file = (doc.parent / unquote(path)).resolve()
            if RESULTS.resolve() not in json_file.parents:
                continue
            if not fragment:
                continue  # a plain link to a results file quotes nothing
            claims.append(Claim(doc, number, match["text"], json_file, unquote(fragment), match["title"]))
    return claims


def resolve(document: Any, pointer: str) -> Any:
    """The value at ``pointer`` (RFC 6901, plus ``key=value,...`` segments that select a list element)."""
    if pointer in ("", "/"):
        return document
    if not pointer.startswith("/"):
        raise ClaimError(f"the fragment {pointer!r} is not a JSON Pointer (it starts with '/')")
    node = document
    for raw in pointer[1:].split("/"):
        segment = raw.replace("~1", "/").replace("~0", "~")
        node = _step(node, segment, pointer)
    return node


def _step(node: Any, segment: str, pointer: str) -> Any:
    if isinstance(node, dict):
        if segment not in node:
            raise ClaimError(f"{pointer}: no key {segment!r} (keys: {', '.join(map(str, list(node)[:12]))})")
        return node[segment]
    if isinstance(node, list):
        if segment.isdigit():
            index = int(segment)
            if index >= len(node):
                raise ClaimError(f"{pointer}: index {index} past the end ({len(node)} items)")
            return node[index]
        if "=" in segment:
            return _select(node, segment, pointer)
        raise ClaimError(f"{pointer}: {segment!r} is neither an index nor key=value for a list")
    raise ClaimError(f"{pointer}: {segment!r} reaches into a {type(node).__name__}")


def _select(items: list[Any], segment: str, pointer: str) -> Any:
    wanted = dict(part.split("=", 1) for part in segment.split(","))
    found = [item for item in items if isinstance(item, dict)
             and all(k in item and _same(item[k], v) for k, v in wanted.items())]
    if len(found) != 1:
        raise ClaimError(f"{pointer}: {segment!r} matches {len(found)} list items, not exactly one")
    return found[0]


def _same(value: Any, text: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value).lower() == text.lower()
    try:
        return float(text) == float(value)
    except ValueError:
        return False


@dataclass(frozen=True)
class Quoted:
    """The number a claim's text shows: its value, its decimals and the scale from the JSON to it."""

    value: float
    decimals: int
    scale: float
    shown: str


def quoted_number(claim: Claim) -> Quoted:
    match = NUMBER.search(claim.text)
    if match is None:
        raise ClaimError(f"no number in the link text {claim.text!r}")
    digits = match["digits"].replace(",", "")
    sign = -1.0 if match["sign"] in ("-", "−") else 1.0
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    suffix = (match["suffix"] or "").strip()
    scale = SUFFIX_SCALE.get(suffix, 1.0)
    if claim.title is not None:
        explicit = SCALE.match(claim.title)
        if explicit is None:
            raise ClaimError(f"the link title {claim.title!r} is not a scale such as \"*100\" or \"/1e6\"")
        factor = float(explicit["factor"])
        scale = factor if explicit["op"] in "*×" else 1.0 / factor
    return Quoted(sign * float(digits), decimals, scale, match.group(0))


def check(claim: Claim, cache: dict[Path, Any]) -> str | None:
    """None when the claim holds, else the line to print."""
    if claim.pointer == "":
        return f"{claim.where()}: a link to a result that does not parse ({claim.text!r}): write it as " \
               "[figure](bench/results/NAME.json#/pointer), a target with spaces in <...>"
    try:
        if claim.json_file not in cache:
            if not claim.json_file.exists():
                raise ClaimError(f"{claim.json_file.name} does not exist")
            cache[claim.json_file] = json.loads(claim.json_file.read_text(encoding="utf-8"))
        value = resolve(cache[claim.json_file], claim.pointer)
        quoted = quoted_number(claim)
    except (ClaimError, json.JSONDecodeError) as exc:
        return f"{claim.where()}: [{claim.text}] cannot be checked: {exc}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return (f"{claim.where()}: [{claim.text}] points at {value!r}, not a number"
                f" ({claim.json_file.name}#{claim.pointer})")
    scaled = value * quoted.scale
    tolerance = 0.5 * 10 ** -quoted.decimals + 1e-9 * max(1.0, abs(scaled))
    if abs(scaled - quoted.value) <= tolerance:
        return None
    shown = f"{scaled:.{quoted.decimals}f}"
    return (f"{claim.where()}: quoted {quoted.shown!r} but {claim.json_file.name}#{claim.pointer} is {value!r}"
            f" (would be quoted {shown})")


def requoted(claim: Claim, cache: dict[Path, Any]) -> str | None:
    """The claim's link text with its figure re-quoted from the JSON (the same decimals, thousands separators,
    sign style and suffix), or None when the figure holds or cannot be checked at all."""
    if check(claim, cache) is None:
        return None
    try:
        value = resolve(cache[claim.json_file], claim.pointer)
        quoted = quoted_number(claim)
    except (ClaimError, KeyError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    match = NUMBER.search(claim.text)
    assert match is not None  # quoted_number found it
    scaled = value * quoted.scale
    # thousands separators as written, or (a figure quoted under 1,000 before) as the docs write them
    separators = "," in match["digits"] or len(match["digits"].split(".")[0]) < 4
    body = f"{abs(scaled):{',' if separators else ''}.{quoted.decimals}f}"
    minus = "−" if "−" in match["sign"] else "-"
    sign = minus if round(scaled, quoted.decimals) < 0 else "+" if match["sign"] == "+" else ""
    return claim.text[:match.start()] + sign + body + (match["suffix"] or "") + claim.text[match.end():]


def fix(doc: Path, cache: dict[Path, Any]) -> int:
    """Re-quote every drifted figure of ``doc`` in place (after a benchmark re-run); returns how many. The
    prose around a figure is not touched: read it again (a "better" may now be a "worse")."""
    lines = doc.read_text(encoding="utf-8").split("\n")
    changed = 0
    for number, claim in ((c.line, c) for c in find_claims(doc) if c.pointer):
        line = lines[number - 1]
        text = requoted(claim, cache)
        if text is None:
            continue
        for match in LINK.finditer(line):
            if match["text"] == claim.text:
                start, end = match.span("text")
                lines[number - 1] = line[:start] + text + line[end:]
                changed += 1
                print(f"{claim.where()}: {claim.text!r} -> {text!r}")
                break
    if changed:
        doc.write_text("\n".join(lines), encoding="utf-8")
    return changed


def default_docs(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("docs", nargs="*", type=Path, help="Markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--root", type=Path, default=ROOT, help="where README.md and docs/ are (default: this repo)")
    parser.add_argument("--fix", action="store_true",
                        help="re-quote drifted figures in place from their JSON (then read the prose around them)")
    args = parser.parse_args(argv)
    docs = [path.resolve() for path in args.docs] or default_docs(args.root.resolve())
    cache: dict[Path, Any] = {}
    if args.fix:
        fixed = sum(fix(doc, cache) for doc in docs if doc.exists())
        print(f"check_claims --fix: {fixed} figures re-quoted; read the sentences around them again")
    problems: list[str] = []
    checked = 0
    for doc in docs:
        if not doc.exists():
            problems.append(f"{doc}: no such file")
            continue
        for claim in find_claims(doc):
            checked += 1
            problem = check(claim, cache)
            if problem is not None:
                problems.append(problem)
    if checked == 0 and not args.docs:
        problems.append("no quoted figure found: a doc that quotes bench/results links each figure to its JSON")
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_claims: {len(problems)} of {checked} quoted figures differ from bench/results", file=sys.stderr)
        return 1
    print(f"check_claims: {checked} quoted figures match bench/results ({len(docs)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
