"""The example site's data store: a real SQLite file with sections and articles, built deterministically.

Sections are the 17 page categories of the MSNBC click trace (../shared/data/msnbc-anonymous-web), so that
trace's sessions map onto this site's pages (see :mod:`examples.site.trace`).
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

SECTIONS = ("frontpage", "news", "tech", "local", "opinion", "on-air", "misc", "weather", "msn-news", "health",
            "living", "business", "msn-sports", "sports", "summary", "bbs", "travel")
"""In the trace's order (category 1 = frontpage, ... 17 = travel)."""
ARTICLES_PER_SECTION = 20

_WORDS = ("market", "storm", "council", "vote", "season", "study", "report", "league", "festival", "budget",
          "school", "river", "bridge", "network", "launch", "review", "forecast", "trial", "summit", "record")
_ADJECTIVES = ("new", "late", "record", "quiet", "sudden", "local", "national", "early", "final", "rare")


def build(path: Path, seed: int = 7) -> Path:
    """Create (or re-create) the database at ``path``: every section, its articles with text and views."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.executescript("""
            CREATE TABLE section (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
            CREATE TABLE article (slug TEXT PRIMARY KEY, section TEXT NOT NULL REFERENCES section(name),
                                  rank INTEGER NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
                                  views INTEGER NOT NULL);
            CREATE INDEX article_section ON article(section, rank);
        """)
        for position, name in enumerate(SECTIONS):
            db.execute("INSERT INTO section VALUES (?, ?)", (name, position))
            for rank in range(1, ARTICLES_PER_SECTION + 1):
                title = f"{rng.choice(_ADJECTIVES).title()} {rng.choice(_WORDS)} {rng.choice(_WORDS)} ({name})"
                body = "\n\n".join(
                    " ".join(rng.choice(_WORDS + _ADJECTIVES) for _ in range(rng.randint(40, 90))).capitalize() + "."
                    for _ in range(rng.randint(3, 6)))
                db.execute("INSERT INTO article VALUES (?, ?, ?, ?, ?, ?)",
                           (f"{name}-{rank}", name, rank, title, body, rng.randint(10, 100_000)))
    tmp.replace(path)
    return path


class Store:
    """Read-only queries; one connection per call (sqlite3 connections are not shared across threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            build(path)

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, args).fetchall()

    def sections(self) -> list[str]:
        return [row["name"] for row in self._query("SELECT name FROM section ORDER BY position")]

    def articles(self, section: str) -> list[sqlite3.Row]:
        return self._query("SELECT slug, title, rank, views FROM article WHERE section = ? ORDER BY rank", (section,))

    def article(self, slug: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM article WHERE slug = ?", (slug,))
        return rows[0] if rows else None

    def search(self, query: str, limit: int = 20) -> list[sqlite3.Row]:
        pattern = "%" + query.replace("%", "").replace("_", "") + "%"
        return self._query("SELECT slug, title, section FROM article WHERE title LIKE ? OR body LIKE ? "
                           "ORDER BY views DESC LIMIT ?", (pattern, pattern, limit))

    def stats(self) -> list[sqlite3.Row]:
        return self._query("SELECT section, COUNT(*) AS articles, SUM(views) AS views FROM article "
                           "GROUP BY section ORDER BY views DESC")
