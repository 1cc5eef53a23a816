"""The README is a user's guide whose code runs and whose links lead somewhere.

Its python example runs as written against a real Redis (only the URL is pointed at the test's); it has the
sections a newcomer looks for; every relative link in it and in docs/*.md names a file that exists, and a
``#fragment`` on a Markdown file names one of its headings (the benchmark figures' JSON fragments are
bench/check_claims.py's job)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LINK = re.compile(r"\[[^\]]*\]\(\s*(?:<([^>]*)>|([^)\s]+))(?:\s+\"[^\"]*\")?\s*\)")


def test_readme_example_runs(redis_url: str) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README lost its python example"
    code = blocks[0].replace("redis://127.0.0.1:6379/0", redis_url)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "product 1" in proc.stdout


def test_readme_is_a_short_guide_with_its_sections() -> None:
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    for wanted in ("Two commands", "Use it", "Serve it", "Deploy it", "Results", "Documentation"):
        assert any(h.startswith(wanted) for h in headings), f"README has no '{wanted}' section: {headings}"
    assert "make demo" in readme and "make test" in readme
    assert len(readme.splitlines()) <= 200, "the full report belongs in docs/benchmarks.md"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", markdown.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_links_in_readme_and_docs_lead_somewhere() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for match in LINK.finditer(text):
            target = match[1] if match[1] is not None else match[2]
            if re.match(r"^[a-z]+:", target):
                continue  # http(s):, mailto:
            path, _, fragment = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif fragment and file.suffix == ".md" and fragment not in anchors(file):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
