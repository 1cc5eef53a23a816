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

State is bounded (least recently seen sessions and clients are forgotten past ``max_tracked``), local to the
process (with N replicas a client has at most N votes per pair), and every refusal is counted.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Client:
    window_start: float
    learned: int = 0
    pairs: set[tuple[str, str]] = field(default_factory=set)


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
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self.refused: Counter[str] = Counter()

    def _session_ok(self, session: str) -> bool:
        seen = self._sessions.pop(session, 0)
        self._sessions[session] = seen + 1
        if len(self._sessions) > self.max_tracked:
            self._sessions.popitem(last=False)
        return seen < self.max_per_session

    def _client_ok(self, client: str, pair: tuple[str, str], t: float) -> str | None:
        state = self._clients.pop(client, None)
        if state is None or t - state.window_start >= self.window or t < state.window_start:
            state = _Client(window_start=t)
        self._clients[client] = state
        if len(self._clients) > self.max_tracked:
            self._clients.popitem(last=False)
        if self.one_vote_per_pair and pair in state.pairs:
            return "repeat"
        if state.learned >= self.max_per_client:
            return "client"
        state.learned += 1
        if self.one_vote_per_pair:
            state.pairs.add(pair)
        return None

    def allow(self, session: str, client: str, previous: str, page: str, t: float, agent: str | None = None) -> bool:
        if agent and self.bot_filter is not None and self.bot_filter(agent):
            self.refused["bot"] += 1
            return False
        if session and not self._session_ok(session):
            self.refused["session"] += 1
            return False
        if client:
            reason = self._client_ok(client, (previous, page), t)
            if reason is not None:
                self.refused[reason] += 1
                return False
        return True
