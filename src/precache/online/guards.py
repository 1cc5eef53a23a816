"""What live traffic may teach the online counts: the bot filter, per-session and per-client caps.

Why: live traffic includes crawlers and abuse, and a count model learns whatever it is shown. A replaying
client that walks one path over and over would otherwise own every row on that path. Four guards, in order:

1. **bots**: a request whose user agent the maintained crawler list matches (:class:`precache.traces.bots.
   BotFilter`) teaches nothing;
2. **per session**: at most ``max_per_session`` transitions of one session are learned (crawls and scripted
   sessions are long; people's sessions rarely pass 50 pages);
3. **per client and window**: at most ``max_per_client`` transitions of one client per ``window`` seconds;
4. **one vote per pair**: within a window a client's repeats of the same ``previous -> page`` count once,
   so replaying a sequence adds one count per pair, not one per replay.

State is bounded (least recently seen sessions and clients are forgotten past ``max_tracked``, the oldest
votes past ``2 * max_tracked``), local to the process (with N replicas a client has at most N votes per pair),
and every refusal is counted. It holds only strings and numbers in three ordered dicts -- no object per client
-- so it adds next to nothing to a full garbage collection, which walks every container object a service
holds (a ``set`` and an object per client made 200,000 of them at the default cap: milliseconds per pause).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable


class ContributionGuard:
    """``allow(session, client, previous, page, t, agent)``: True when the transition may be learned."""

    def __init__(self, max_per_session: int = 50, max_per_client: int = 200, window: float = 3600.0,
                 one_vote_per_pair: bool = True, bot_filter: Callable[[str], bool] | None = None,
                 max_tracked: int = 100_000) -> None:
        if max_per_session < 1 or max_per_client < 1 or not window > 0 or max_tracked < 1:
            raise ValueError("guard caps and window must be positive")
        self.max_per_session = max_per_session
        self.max_per_client = max_per_client
        self.window = window
        self.one_vote_per_pair = one_vote_per_pair
        self.bot_filter = bot_filter
        self.max_tracked = max_tracked
        self._sessions: OrderedDict[str, int] = OrderedDict()
        self._clients: OrderedDict[str, tuple[float, int]] = OrderedDict()  # client -> (window start, learned)
        self._votes: OrderedDict[str, float] = OrderedDict()  # "client, previous, page" -> its window's start
        self.refused: Counter[str] = Counter()

    def _session_ok(self, session: str) -> bool:
        seen = self._sessions.pop(session, 0)
        self._sessions[session] = seen + 1
        if len(self._sessions) > self.max_tracked:
            self._sessions.popitem(last=False)
        return seen < self.max_per_session

    def _client_ok(self, client: str, previous: str, page: str, t: float) -> str | None:
        start, learned = self._clients.pop(client, (t, 0))
        if t - start >= self.window or t < start:
            start, learned = t, 0
        self._clients[client] = (start, learned)
        if len(self._clients) > self.max_tracked:
            self._clients.popitem(last=False)
        vote = f"{client}\x1f{previous}\x1f{page}" if self.one_vote_per_pair else ""
        if vote and self._votes.get(vote) == start:
            return "repeat"
        if learned >= self.max_per_client:
            return "client"
        self._clients[client] = (start, learned + 1)
        if vote:
            self._votes[vote] = start
            self._votes.move_to_end(vote)
            if len(self._votes) > 2 * self.max_tracked:
                self._votes.popitem(last=False)
        return None

    def allow(self, session: str, client: str, previous: str, page: str, t: float, agent: str | None = None) -> bool:
        if agent and self.bot_filter is not None and self.bot_filter(agent):
            self.refused["bot"] += 1
            return False
        if session and not self._session_ok(session):
            self.refused["session"] += 1
            return False
        if client:
            reason = self._client_ok(client, previous, page, t)
            if reason is not None:
                self.refused[reason] += 1
                return False
        return True
