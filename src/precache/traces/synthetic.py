"""A deterministic synthetic website workload: the trace precache demos and benchmarks run on by default.

Real traces here are small, old or anonymised to categories. This generator gives a site with the structure
a predictive cache exploits and the nuisances it must survive:

* pages with Zipf-like popularity, grouped in sections, joined by a link graph whose out-links have skewed
  click probabilities (so a next-page model can beat popularity by a wide margin);
* sessions are walks: mostly follow a link, sometimes jump to a popular page; entries skew to the home page;
  think times are lognormal; returning clients come back after more than a session gap;
* each page pulls assets: site-wide css/js/logo, a theme stylesheet shared by several sections, section
  scripts and page images; a client's session fetches each asset once (its browser caches the rest);
* object sizes are lognormal with a Pareto tail; session arrivals follow a diurnal non-homogeneous Poisson
  process (by thinning); pages change at heterogeneous rates (``updates()``).

Memory is bounded by the site and the sessions open at one moment, never by ``n_requests``: requests are
produced by merging the open sessions' event streams through a heap.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate

from precache.traces.model import Request
from precache.traces.records import make_request

DAY = 86400.0
DEFAULT_START = 1_704_067_200.0  # 2024-01-01T00:00:00Z


@dataclass(slots=True)
class Site:
    """The generated site: pages, their links and assets, every object's size and each page's update rate."""

    pages: list[str]
    popularity: list[float]
    """Normalised jump/entry weight of each page (same order as ``pages``)."""
    links: dict[str, list[str]]
    link_weights: dict[str, list[float]]
    """Click probability of each out-link (sums to 1 per page; skewed, first links most likely)."""
    assets: dict[str, list[str]]
    """Assets each page embeds, in fetch order."""
    sizes: dict[str, int]
    """Bytes of every page and asset."""
    update_rates: dict[str, float] = field(default_factory=dict)
    """Content changes per second of each page (and of the site-wide assets)."""

    @property
    def all_assets(self) -> list[str]:
        return sorted({asset for assets in self.assets.values() for asset in assets})


def _size(rng: random.Random, median: float, sigma: float) -> int:
    """Lognormal size with a Pareto tail on 2% of objects (the heavy tail caches care about)."""
    value = rng.lognormvariate(math.log(median), sigma)
    if rng.random() < 0.02:
        value *= rng.paretovariate(1.2)
    return max(64, int(value))


def build_site(
    n_pages: int,
    seed: int = 0,
    zipf_s: float = 1.0,
    mean_out_links: float = 8.0,
    link_skew: float = 1.3,
) -> Site:
    """Build the page set, link graph, assets, sizes and update rates, deterministically from ``seed``
    (each step below draws from the one generator, in this order)."""
    if n_pages < 2:
        raise ValueError("a synthetic site needs at least 2 pages")
    rng = random.Random(f"site-{seed}")
    n_sections = max(1, min(40, n_pages // 40))
    pages, section_of = _pages(rng, n_pages, n_sections)
    popularity = _popularity(rng, len(pages), n_sections, zipf_s)
    links, link_weights = _links(rng, pages, section_of, popularity, mean_out_links, link_skew)
    site_assets = ["/static/site.css", "/static/site.js", "/static/logo.png"]
    assets, sizes = _assets(rng, pages, section_of, site_assets, max(1, n_sections // 3))
    update_rates: dict[str, float] = {}
    for page_index, page in enumerate(pages):
        hours = 1.0 if page_index <= n_sections else rng.lognormvariate(math.log(72.0), 1.5)
        update_rates[page] = 1.0 / (hours * 3600.0)
    for asset in site_assets:
        update_rates[asset] = 1.0 / (7 * DAY)
    return Site(pages, popularity, links, link_weights, assets, sizes, update_rates)


def _pages(rng: random.Random, n_pages: int, n_sections: int) -> tuple[list[str], list[int]]:
    """The home page, one index per section, then pages in random sections; each page's section (-1: home)."""
    pages = ["/"] + [f"/s{j}/" for j in range(n_sections)]
    section_of = [-1, *list(range(n_sections))]
    index = 0
    while len(pages) < n_pages:
        section = rng.randrange(n_sections)
        pages.append(f"/s{section}/p{index}.html")
        section_of.append(section)
        index += 1
    return pages[:n_pages], section_of[:n_pages]


def _popularity(rng: random.Random, n: int, n_sections: int, zipf_s: float) -> list[float]:
    """Home and section indexes near the top, the rest in a random Zipf order."""
    ranks = list(range(n))
    tail = ranks[1 + n_sections :]
    rng.shuffle(tail)
    order = [0, *rng.sample(range(1, 1 + n_sections), n_sections), *tail][:n]
    weights = [0.0] * n
    for rank, page_index in enumerate(order):
        weights[page_index] = 1.0 / (rank + 1) ** zipf_s
    total = sum(weights)
    return [w / total for w in weights]


def _links(rng: random.Random, pages: list[str], section_of: list[int], popularity: list[float],
           mean_out_links: float, link_skew: float) -> tuple[dict[str, list[str]], dict[str, list[float]]]:
    """Each page's out-links (mostly within its section, plus its section index and home) and click weights."""
    cumulative = list(accumulate(popularity))
    members: dict[int, list[int]] = {}
    for page_index, section in enumerate(section_of):
        members.setdefault(section, []).append(page_index)
    member_cum = {s: list(accumulate(popularity[i] for i in idx)) for s, idx in members.items()}

    def pick_global() -> int:
        return min(bisect_right(cumulative, rng.random() * cumulative[-1]), len(pages) - 1)

    def pick_in(section: int) -> int:
        idx, cum = members[section], member_cum[section]
        return idx[min(bisect_right(cum, rng.random() * cum[-1]), len(idx) - 1)]

    links: dict[str, list[str]] = {}
    link_weights: dict[str, list[float]] = {}
    for page_index, page in enumerate(pages):
        degree = max(2, min(40, int(rng.expovariate(1.0 / mean_out_links)) + 2))
        targets: list[int] = []
        section = section_of[page_index]
        for _ in range(degree * 3):
            if len(targets) >= degree:
                break
            target = pick_in(section) if section >= 0 and rng.random() < 0.6 else pick_global()
            if target != page_index and target not in targets:
                targets.append(target)
        if section >= 0 and (1 + section) not in targets and page_index != 1 + section:
            targets.append(1 + section)
        if page_index != 0 and 0 not in targets:
            targets.append(0)
        # Which link is clicked most is page-specific (not just global popularity): shuffle, then skew.
        rng.shuffle(targets)
        raw = [1.0 / (position + 1) ** link_skew for position in range(len(targets))]
        norm = sum(raw)
        links[page] = [pages[t] for t in targets]
        link_weights[page] = [w / norm for w in raw]
    return links, link_weights


def _assets(rng: random.Random, pages: list[str], section_of: list[int], site_assets: list[str],
            n_themes: int) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each page's assets (site-wide, its section's theme and script, its own images) and every size."""
    sizes: dict[str, int] = {}
    for asset in site_assets:
        sizes[asset] = _size(rng, 20_000, 0.5)
    assets: dict[str, list[str]] = {}
    for page_index, page in enumerate(pages):
        section = section_of[page_index]
        own = list(site_assets)
        if section >= 0:
            theme = f"/static/theme{section % n_themes}.css"
            script = f"/s{section}/section.js"
            own += [theme, script]
            sizes.setdefault(theme, _size(rng, 15_000, 0.5))
            sizes.setdefault(script, _size(rng, 30_000, 0.6))
        for k in range(rng.randrange(0, 5)):
            image = f"{page.rstrip('/') or '/home'}-img{k}.jpg"
            own.append(image)
            sizes[image] = _size(rng, 35_000, 1.1)
        assets[page] = own
        sizes[page] = _size(rng, 12_000, 0.8)
    return assets, sizes


class SyntheticWorkload:
    """``n_requests`` time-ordered requests (pages and assets) of a synthetic site; deterministic per seed.

    Parameters shape the site (``n_pages``, ``zipf_s``, ``mean_out_links``, ``link_skew``) and the
    behaviour (``follow_prob`` of clicking a link rather than jumping, ``continue_prob`` of another page,
    ``home_entry_prob``, median ``think_seconds``, ``diurnal_amplitude``). ``days`` spreads the load; by
    default it grows with the request count (1 day up to 500k requests, at most 28).
    """

    def __init__(
        self,
        n_requests: int,
        seed: int = 0,
        n_pages: int = 1000,
        *,
        zipf_s: float = 1.0,
        mean_out_links: float = 8.0,
        link_skew: float = 1.3,
        follow_prob: float = 0.85,
        continue_prob: float = 0.78,
        home_entry_prob: float = 0.3,
        think_seconds: float = 25.0,
        diurnal_amplitude: float = 0.6,
        days: float | None = None,
        start: float = DEFAULT_START,
        max_think_seconds: float = 1500.0,
    ) -> None:
        if n_requests < 0:
            raise ValueError("n_requests must be >= 0")
        for name, value in (("follow_prob", follow_prob), ("continue_prob", continue_prob),
                            ("home_entry_prob", home_entry_prob), ("diurnal_amplitude", diurnal_amplitude)):
            if not 0.0 <= value <= 1.0 or (name == "continue_prob" and value >= 1.0):
                raise ValueError(f"{name} must be in [0, 1) / [0, 1], got {value}")
        self.n_requests = n_requests
        self.seed = seed
        self.site = build_site(n_pages, seed, zipf_s, mean_out_links, link_skew)
        self.follow_prob = follow_prob
        self.continue_prob = continue_prob
        self.home_entry_prob = home_entry_prob
        self.think_seconds = think_seconds
        self.max_think_seconds = max_think_seconds
        self.diurnal_amplitude = diurnal_amplitude
        self.days = days if days is not None else min(28.0, max(1.0, n_requests / 500_000))
        self.start = start
        mean_pages = 1.0 / (1.0 - continue_prob)
        mean_assets = sum(len(a) for a in self.site.assets.values()) / len(self.site.assets)
        requests_per_session = mean_pages + min(mean_assets * mean_pages, mean_assets + 2.0 * (mean_pages - 1))
        self.sessions_per_day = max(1.0, n_requests / requests_per_session / self.days)
        self.n_clients = max(50, int(self.sessions_per_day * self.days / 3))

    @property
    def end(self) -> float:
        """Expected end time of the requests (the horizon of ``updates()``)."""
        return self.start + self.days * DAY

    def _rate(self, moment: float) -> float:
        """Session arrivals per second at ``moment``: a daily sine peaking at 15:00 UTC."""
        phase = 2.0 * math.pi * ((moment - self.start) / DAY - 15.0 / 24.0)
        return self.sessions_per_day / DAY * (1.0 + self.diurnal_amplitude * math.cos(phase))

    def _arrivals(self, rng: random.Random) -> Iterator[float]:
        """Session start times: a non-homogeneous Poisson process by thinning."""
        peak = self.sessions_per_day / DAY * (1.0 + self.diurnal_amplitude)
        moment = self.start
        while True:
            moment += rng.expovariate(peak)
            if rng.random() * peak <= self._rate(moment):
                yield moment

    def requests(self) -> Iterator[Request]:
        """Exactly ``n_requests`` requests, in time order (ties broken deterministically)."""
        rng = random.Random(f"requests-{self.seed}")
        site = self.site
        pages = site.pages
        popularity_cum = list(accumulate(site.popularity))
        link_cum = {page: list(accumulate(w)) for page, w in site.link_weights.items()}
        counter = itertools.count()
        heap: list[tuple[float, int, Request, Iterator[Request]]] = []
        arrivals = self._arrivals(rng)
        next_arrival = next(arrivals)
        last_end: dict[str, float] = {}
        fresh = itertools.count(self.n_clients)
        emitted = 0

        def jump() -> str:
            return pages[min(bisect_right(popularity_cum, rng.random() * popularity_cum[-1]), len(pages) - 1)]

        def walk(client: str, moment: float) -> Iterator[Request]:
            page = "/" if rng.random() < self.home_entry_prob else jump()
            seen_pages: set[str] = set()
            fetched: set[str] = set()
            sizes = site.sizes
            while True:
                if page in seen_pages:
                    yield make_request(moment, client, page, "GET", 304, 0)
                else:
                    seen_pages.add(page)
                    yield make_request(moment, client, page, "GET", 200, sizes[page])
                    offset = moment
                    for asset in site.assets[page]:
                        if asset in fetched:
                            continue
                        fetched.add(asset)
                        offset += rng.expovariate(20.0)
                        yield make_request(offset, client, asset, "GET", 200, sizes[asset])
                    moment = offset
                if rng.random() >= self.continue_prob:
                    last_end[client] = moment
                    return
                think = rng.lognormvariate(math.log(self.think_seconds), 1.0)
                moment += min(think, self.max_think_seconds)
                if rng.random() < self.follow_prob:
                    cum = link_cum[page]
                    choice = bisect_right(cum, rng.random() * cum[-1])
                    page = site.links[page][min(choice, len(cum) - 1)]
                else:
                    page = jump()

        def start_session(moment: float) -> None:
            client_index = int(rng.paretovariate(1.1)) % self.n_clients
            client = f"client{client_index}"
            if moment - last_end.get(client, -math.inf) <= self.max_think_seconds * 2 or client in active:
                client = f"client{next(fresh)}"
            active.add(client)
            stream = walk(client, moment)
            first = next(stream)
            heapq.heappush(heap, (first.time, next(counter), first, stream))

        active: set[str] = set()
        while emitted < self.n_requests:
            if not heap or next_arrival <= heap[0][0]:
                start_session(next_arrival)
                next_arrival = next(arrivals)
                continue
            _, _, request, stream = heap[0]
            following = next(stream, None)
            if following is None:
                heapq.heappop(heap)
                active.discard(request.client)
            else:
                heapq.heapreplace(heap, (following.time, next(counter), following, stream))
            emitted += 1
            yield request
            if len(last_end) > 2 * self.n_clients + 10_000:  # forget clients long gone: bounded memory
                horizon = request.time - 2 * self.max_think_seconds
                for client in [c for c, end in last_end.items() if end < horizon]:
                    del last_end[client]

    def updates(self, until: float | None = None) -> Iterator[tuple[float, str]]:
        """Content changes ``(time, path)`` in time order up to ``until`` (default :attr:`end`).

        Each page changes as a Poisson process at its own rate (home and section pages hourly, most pages
        every few days, a long tail rarely); independent of ``requests()``.
        """
        horizon = self.end if until is None else until
        rng = random.Random(f"updates-{self.seed}")
        heap = [
            (self.start + rng.expovariate(rate), path, rate)
            for path, rate in sorted(self.site.update_rates.items())
            if rate > 0
        ]
        heapq.heapify(heap)
        while heap and heap[0][0] <= horizon:
            moment, path, rate = heap[0]
            yield moment, path
            heapq.heapreplace(heap, (moment + rng.expovariate(rate), path, rate))
