"""Sessions of a visible trace mapped onto the example site's pages, for training and for replay.

The MSNBC trace gives each visitor's sequence of page categories. A category visited anew becomes its
section page (``frontpage`` is ``/``); each immediate repeat of a category becomes the next article of that
section (``/article/news-1``, ``-2``, …, wrapping after the last). Every mapped step is a link on the page
before it: the navigation bar links every section, a section lists its articles, an article links the
next one. Without the trace, :func:`walk_sessions` makes random walks of the same shape.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from examples.site.data import ARTICLES_PER_SECTION, SECTIONS

MSNBC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "msnbc-anonymous-web" / "msnbc990928.zip"


def section_page(section: str) -> str:
    return "/" if section == "frontpage" else f"/section/{section}"


def map_categories(categories: Iterable[str]) -> list[str]:
    """One visitor's categories -> the site's page paths (see the module docstring)."""
    pages: list[str] = []
    previous = None
    repeat = 0
    for category in categories:
        if category not in SECTIONS:
            continue
        if category == previous:
            repeat += 1
            pages.append(f"/article/{category}-{(repeat - 1) % ARTICLES_PER_SECTION + 1}")
        else:
            repeat = 0
            pages.append(section_page(category))
        previous = category
    return pages


def msnbc_sessions(path: Path = MSNBC, limit: int = 50_000, skip: int = 0, min_length: int = 2) -> list[list[str]]:
    """Mapped page sequences of the trace's visitors ``skip`` .. ``skip + limit`` (sessions shorter than
    ``min_length`` pages dropped)."""
    from precache.traces import iter_sessions

    out = []
    for session in itertools.islice(iter_sessions(path, "seq"), skip, skip + limit):
        pages = map_categories(session.pages)
        if len(pages) >= min_length:
            out.append(pages)
    return out


def walk_sessions(n: int, seed: int = 0, max_length: int = 12) -> list[list[str]]:
    """Random walks over the site's links: the same shape as the mapped trace, for when it is absent."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(SECTIONS))]
    out = []
    for _ in range(n):
        categories = [rng.choices(SECTIONS, weights)[0]]
        while len(categories) < max_length and rng.random() < 0.8:
            categories.append(categories[-1] if rng.random() < 0.6 else rng.choices(SECTIONS, weights)[0])
        out.append(map_categories(categories))
    return [s for s in out if len(s) >= 2]


def as_sessions(page_lists: Iterable[list[str]]) -> Iterator[object]:
    """precache ``Session`` objects (what predictors ``fit``), one per page list."""
    from precache.traces.model import Session

    for i, pages in enumerate(page_lists):
        yield Session(str(i), str(i), float(i), list(pages), [float(i)] * len(pages), [])
