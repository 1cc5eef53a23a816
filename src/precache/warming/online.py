"""Page -> asset links learned online from the request stream, on top of the trained asset model.

Why: the trained :class:`~precache.warming.assets.AssetModel` knows only the links of its training window;
a page published (or changed) since then has no assets to preload. The warmer sees every request as it
happens, so it can keep learning the same quantity the trained model estimates,
``P(asset | page, the session has not fetched the asset yet)``, from what sessions fetched after viewing a
page (within ``window`` seconds, before their next page view).

Rules it keeps:

- **Causal.** It counts only what was observed: a page view, then the session's requests after it. A
  decision (``assets_of``) reads the counts as they are at that moment, nothing later.
- **On top of a model version.** A trained link keeps its trained probability (or, with ``base_weight``, it
  is a prior worth that many views that online views update: ``(base_weight * p + fetched) /
  (base_weight + at-risk views)``; on NASA that lost more hits than it saved preloads). A link the
  trained model lacks has no prior beyond the view being decided on (counted at risk before its fetches
  are seen), so one co-occurrence is not yet a preload. :meth:`rebase` with another version drops
  everything learned: the online part lives in memory only, so a registry version's checksum keeps
  describing what is loaded.
- **Bounded.** At most ``max_pages`` pages (least recently viewed dropped first), ``max_links`` links per
  page (the least fetched dropped first), ``max_sessions`` sessions (oldest first), ``max_keys`` keys
  remembered per session.
- **A session's own fetches.** The probability is conditional on the session not having the asset yet
  (its browser keeps it), so :meth:`has_fetched` can let the warmer skip assets the session already
  fetched (``skip_fetched``, off by default: on NASA those preloads were often used by other sessions).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from precache.warming.assets import AssetModel


@dataclass(slots=True)
class OnlineConfig:
    """Limits and weights of :class:`OnlineAssets` (see the module docstring)."""

    enabled: bool = True
    window: float = 60.0
    prior: float = 0.0
    """Extra unfetched pseudo-views for a link the trained model lacks. The view being decided on is
    already counted at risk, so with 0 a link needs 3 fetches in 3 views (then 3/4) to pass 0.7."""
    base_weight: float | None = None
    """Views a trained link's probability is worth against online counts; None: trained links keep it."""
    min_probability: float = 0.05
    max_assets: int = 20
    max_pages: int = 20_000
    max_links: int = 32
    max_sessions: int = 50_000
    max_keys: int = 512
    skip_fetched: bool = False
    """Skip assets the session already fetched (off: on NASA it removed preloads other sessions used)."""
    appetite: bool = True
    """Scale a session's asset probabilities by how often its earlier views fetched their likely assets."""
    appetite_min: float = 0.5
    """A view counts for the appetite when its page had assets at least this likely the session lacked."""


@dataclass(slots=True)
class _Link:
    fetched: float = 0.0
    at_risk: float = 0.0


@dataclass(slots=True)
class _Page:
    links: dict[str, _Link] = field(default_factory=dict)


@dataclass(slots=True)
class _Session:
    page: str | None = None
    since: float = 0.0
    keys: OrderedDict[str, None] = field(default_factory=OrderedDict)
    expected: frozenset[str] = frozenset()
    got: bool = False
    views: int = 0
    fetched_views: int = 0


T = TypeVar("T")


def _touch(entries: OrderedDict[str, T], key: str, make: Callable[[], T], cap: int) -> T:
    """``entries[key]``, created if missing, now the most recent; the least recent dropped over ``cap``."""
    entry = entries.get(key)
    if entry is None:
        entry = entries[key] = make()
        if len(entries) > cap:
            entries.popitem(last=False)
    else:
        entries.move_to_end(key)
    return entry


class OnlineAssets:
    """``assets_of(page)`` like :class:`AssetModel`, learned online over a trained base (or none)."""

    def __init__(self, base: AssetModel | None = None, config: OnlineConfig | None = None,
                 version: str | None = None) -> None:
        self.config = config or OnlineConfig()
        self.base = base
        self.version = version
        self._pages: OrderedDict[str, _Page] = OrderedDict()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._views = 0  # closed views with likely assets, all sessions (the population's appetite)
        self._fetched_views = 0
        self.resets = 0

    # -- learning ---------------------------------------------------------------------------------
    def rebase(self, base: AssetModel | None, version: str | None) -> None:
        """Put the online layer on another trained model; a new version starts from nothing learned."""
        if version != self.version or base is not self.base:
            self._pages.clear()
            self._sessions.clear()
            self._views = self._fetched_views = 0
            self.resets += 1
        self.base, self.version = base, version

    def _session(self, session: str) -> _Session:
        return _touch(self._sessions, session, _Session, self.config.max_sessions)

    def _remember(self, state: _Session, key: str) -> bool:
        """Note that the session fetched ``key``; True if it had not before (as far as we remember)."""
        if key in state.keys:
            return False
        state.keys[key] = None
        if len(state.keys) > self.config.max_keys:
            state.keys.popitem(last=False)
        return True

    def observe_page(self, session: str, page: str, now: float) -> None:
        """A page view: every link of the page the session does not have yet was at risk in this view."""
        if not (self.config.enabled or self.config.skip_fetched):
            return
        state = self._session(session)
        if state.expected:  # close the previous view: did the session fetch any of its likely assets?
            state.views += 1
            state.fetched_views += state.got
            self._views += 1
            self._fetched_views += state.got
        state.page, state.since = page, now
        self._remember(state, page)
        if not self.config.enabled:
            return
        if self.config.appetite:
            state.expected = frozenset(a for a, p in self.assets_of(page)
                                       if p >= self.config.appetite_min and a not in state.keys)
            state.got = False
        entry = _touch(self._pages, page, _Page, self.config.max_pages)
        if self.base is not None:  # the trained links are tracked too (their estimate moves with base_weight)
            for asset, _ in self.base.assets_of(page):
                if asset not in entry.links and len(entry.links) < self.config.max_links:
                    entry.links[asset] = _Link()
        for asset, link in entry.links.items():
            if asset not in state.keys:
                link.at_risk += 1

    def observe_access(self, session: str, key: str, now: float) -> None:
        """A non-page request: its session's first fetch of ``key`` within ``window`` of the page it viewed
        last counts as that page's asset."""
        if not (self.config.enabled or self.config.skip_fetched):
            return
        state = self._session(session)
        if key in state.expected and now - state.since <= self.config.window:
            state.got = True
        if key == state.page or not self._remember(state, key) or not self.config.enabled:
            return
        if state.page is None or now - state.since > self.config.window:
            return
        entry = self._pages.get(state.page)
        if entry is None:
            return
        link = entry.links.get(key)
        if link is None:
            if len(entry.links) >= self.config.max_links:
                weakest = min(entry.links, key=lambda a: (entry.links[a].fetched, -entry.links[a].at_risk))
                del entry.links[weakest]
            link = entry.links[key] = _Link(at_risk=1.0)  # the view just seen, which fetched it
        link.fetched += 1

    def appetite(self, session: str) -> float:
        """How much likelier than the average session this one is to fetch a page's likely assets.

        A page's ``P(asset | page)`` averages over sessions whose browser (or proxy) already holds the
        site's images and sessions that fetch them. With ``a`` = the share of all sessions' closed views
        that fetched one of their likely assets and ``a_s`` = the same share for this session, shrunk
        towards ``a`` by one view, the factor is ``a_s / a``: 1 for a new session, below 1 for a session
        that viewed pages without fetching their likely assets, above 1 for one that fetched them."""
        if not self.config.appetite:
            return 1.0
        state = self._sessions.get(session)
        mean = (self._fetched_views + 1) / (self._views + 2)
        if state is None or not state.views:
            return 1.0
        return (state.fetched_views + mean) / (state.views + 1) / mean

    def has_fetched(self, session: str, key: str) -> bool:
        """The session already fetched ``key`` (as far as the bounded memory remembers)."""
        state = self._sessions.get(session)
        return state is not None and key in state.keys

    # -- answering --------------------------------------------------------------------------------
    def assets_of(self, page: str) -> list[tuple[str, float]]:
        """``[(asset, P(asset | page))]``, most likely first: the trained estimate moved by online counts."""
        base = self.base.assets_of(page) if self.base is not None else []
        entry = self._pages.get(page) if self.config.enabled else None
        if entry is None or not entry.links:
            return base
        cfg = self.config
        prior = dict(base)
        merged: dict[str, float] = {}
        for asset, link in entry.links.items():
            p = prior.pop(asset, None)
            if p is None:
                merged[asset] = link.fetched / (cfg.prior + link.at_risk)
            elif cfg.base_weight is None:
                merged[asset] = p
            else:
                merged[asset] = (cfg.base_weight * p + link.fetched) / (cfg.base_weight + link.at_risk)
        merged.update(prior)  # trained links not tracked (the page's link cap was full)
        ranked = sorted(((a, p) for a, p in merged.items() if p >= cfg.min_probability),
                        key=lambda item: (-item[1], item[0]))
        return ranked[: cfg.max_assets]

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def links(self) -> int:
        return sum(len(p.links) for p in self._pages.values())
