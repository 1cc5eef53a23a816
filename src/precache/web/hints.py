"""Which predicted pages the browser is told to prefetch, and how (Speculation Rules, ``Link`` headers).

Only what is safe to fetch ahead, as the middleware's :class:`~precache.web.marks.PrefetchPolicy` says (an
allow rule: same-origin path, no query string, no action word, nothing the application marks unsafe, not a
page whose anonymous response the cache refused to store), predicted with probability >= the threshold; a
few per response and a budget of distinct URLs per session, so a wrong model cannot make a browser fetch
the whole site.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

from precache.web.config import HintConfig
from precache.web.sessions import HintBudgets

RULES_MEDIA_TYPE = "application/speculationrules+json"
_SAFE_PATH_CHARS = "/-._~!$&'()*+,;=:@%"
_SAFE_QUERY_CHARS = _SAFE_PATH_CHARS + "?"


class Predictor(Protocol):
    def predict(self, history: Sequence[str], k: int) -> list[tuple[str, float]]: ...


class Policy(Protocol):
    def allows(self, page: str) -> bool: ...


def page_url(page: str) -> str:
    """A page id as a URL path: path and query quoted separately (``/search?q=storm`` stays a query)."""
    path, question, query = page.partition("?")
    return quote(path, safe=_SAFE_PATH_CHARS) + (question + quote(query, safe=_SAFE_QUERY_CHARS) if question else "")


class HintPlanner:
    """Turns a session's history into the URLs to hint (see the module docstring)."""

    def __init__(self, config: HintConfig, predictor: Predictor | None, budgets: HintBudgets,
                 policy: Policy) -> None:
        self.config = config
        self.predictor = predictor
        self.budgets = budgets
        self.policy = policy
        self.errors = 0

    @property
    def enabled(self) -> bool:
        return self.predictor is not None and self.config.mode != "none" and self.config.max_per_page > 0

    def safe(self, page: str) -> bool:
        return self.policy.allows(page)

    def choose(self, session_id: str, history: Sequence[str]) -> list[str]:
        """The URLs (quoted paths) to hint after ``history`` (most recent page last)."""
        if not self.enabled or not history:
            return []
        assert self.predictor is not None
        cfg = self.config
        try:
            predicted = self.predictor.predict(list(history), max(cfg.max_per_page * 3, 10))  # room for unsafe ones
        except Exception:  # a model failure costs the hints, never the page
            self.errors += 1
            return []
        current = history[-1]
        pages = [page for page, p in predicted
                 if p >= cfg.threshold and page != current and self.safe(page)][: cfg.max_per_page]
        urls = [page_url(page) for page in pages]
        return self.budgets.spend(session_id, urls, cfg.budget_per_session)

    def rules_json(self, urls: Sequence[str]) -> bytes:
        """A speculation rules document prefetching ``urls`` (an empty list is a valid no-op)."""
        rules: dict[str, Any] = {"prefetch": []}
        if urls:
            rules["prefetch"].append({"source": "list", "urls": list(urls), "eagerness": self.config.eagerness})
        return json.dumps(rules, separators=(",", ":")).encode()

    def rules_header(self, page: str, view: bool) -> str:
        """The ``Speculation-Rules`` header value: a structured-field string naming this session's route.

        The route doubles as a page-view beacon for views the server would not otherwise see: ``view``
        says the page was fetched as a prefetch (the browser fetches a document's rules only once it
        shows it), and ``n``, unique per response, tells a first fetch from a repeat, which means the
        browser showed this response again from its own HTTP cache."""
        url = f"{self.config.route}?page={quote(page, safe='')}&n={secrets.token_hex(6)}" + ("&view=1" if view else "")
        return f'"{url}"'

def link_header(urls: Sequence[str]) -> str:
    """``Link: </a>; rel=prefetch, </b>; rel=prefetch``."""
    return ", ".join(f"<{url}>; rel=prefetch" for url in urls)
