"""The shipped policy that steps aside online: the cache follows one candidate policy and hands itself
to another when that one's shadow cache (:mod:`.shadow`) shows it doing clearly better on recent
traffic.

Why: a policy chosen once on a validation slice cannot follow a workload that shifts (CloudPhysics'
slice is scan-heavy, its later half is not), and a short slice cannot tell the candidates apart.
Scored test-then-learn: every decision uses only requests already served.

The rule (docs/policy.md, "The online switcher"):

- every request the cache sees (a miss offered for admission, or a hit) is also a request to one shadow
  cache per candidate, at the real cache's byte capacity, each keeping its byte miss ratio decayed with
  a half-life of ``HALF_LIFE`` requests;
- every ``CHECK_EVERY`` requests, once ``HALF_LIFE`` requests have passed since the start or the last
  switch, the cache switches to the candidate with the lowest decayed ratio if it beats the running
  candidate's by more than ``MARGIN`` (hysteresis);
- the running candidate's shadow decides: a miss is admitted when its shadow holds the key afterwards,
  and the victims are the real cache's entries its shadow no longer holds (oldest first). So the real
  contents are the shadow's, less the keys it holds that have not been requested since the switch; a
  switch rebuilds nothing: the new candidate's state is warm, and the contents converge to its own as
  requests arrive.

The real cache's byte capacity is given: by the benchmark, or by the memory tier (``use_budget``, its
``max_bytes``). Without one it is estimated as the largest byte count the cache has held. When the real
budget is below the running shadow's (an estimate, or the tier's item budget), the shadow evicts too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from precache.cache.policy import EntryInfo, EvictionPolicy, S3FIFOPolicy
from precache.models.optimizer.heuristics import DoorkeeperPolicy, GDSFPolicy, SievePolicy
from precache.models.optimizer.shadow import ShadowCache

HALF_LIFE = 2048.0
"""Half-life of the decayed miss ratios, in requests: the previous design's window (2,048 sampled
requests) where its sample held every key, now in every workload; it follows a shift within a few
thousand requests, and a switch made on a short-lived lead costs little since nothing is rebuilt."""
CHECK_EVERY = 256
"""Requests between decisions (each decision is a comparison of a few floats)."""
MARGIN = 0.005
"""A candidate must beat the running policy's decayed byte miss ratio by more than this: the goal's own
tolerance, so a switch is made only for a gain the benchmark would count."""


Factory = Callable[[int | None], EvictionPolicy]
"""Builds a candidate for a byte capacity (None: unknown, the memory tier owns its budget)."""


def candidates() -> dict[str, Factory]:
    """The switcher's candidates by name, each built for a byte capacity: S3-FIFO (the default, first),
    S3-FIFO behind a doorkeeper, SIEVE and GDSF behind a doorkeeper (the Python forms of the benchmark's
    winning heuristics: S3FIFO, S3FIFO+Bloom, Sieve, GDSF+Bloom)."""
    return {
        "s3fifo": lambda cap: S3FIFOPolicy(capacity_bytes=cap),
        "s3fifo+door": lambda cap: DoorkeeperPolicy(S3FIFOPolicy(capacity_bytes=cap)),
        "sieve": lambda cap: SievePolicy(),
        "gdsf+door": lambda cap: DoorkeeperPolicy(GDSFPolicy(capacity_bytes=cap)),
    }


class SwitchingPolicy:
    """An :class:`EvictionPolicy` that follows one of ``factories``' shadows (the first at the start)
    and switches by the rule above. ``switches`` records ``(request count, new policy)`` per switch."""

    name = "switch"

    def __init__(self, capacity_bytes: int | None = None, factories: dict[str, Factory] | None = None,
                 half_life: float = HALF_LIFE, margin: float = MARGIN, check_every: int = CHECK_EVERY) -> None:
        self.factories = factories if factories is not None else candidates()
        self._decay = 0.5 ** (1.0 / half_life)
        self.fixed_capacity = capacity_bytes
        self.shadows = self._build_shadows(capacity_bytes)
        self.current = next(iter(self.factories))
        self.half_life, self.margin, self.check_every = half_life, margin, check_every
        self.resident: dict[str, EntryInfo] = {}
        self.used = 0
        self.requests = 0
        self._since_switch = 0
        self._extras: dict[str, None] = {}  # resident keys the running shadow does not hold, oldest first
        self._offered: str | None = None  # the key admit() just fed to the shadows
        self.switches: list[tuple[int, str]] = []

    def _build_shadows(self, capacity: int | None) -> dict[str, ShadowCache]:
        return {name: ShadowCache(make(capacity), float(capacity or 1), self._decay,
                                  partial(self._shadow_evicted, name))
                for name, make in self.factories.items()}

    def use_budget(self, max_bytes: int) -> None:
        """The memory tier's byte budget (:class:`~precache.cache.policy.BudgetAwarePolicy`): before any
        request the shadows are built for it, as in the benchmark; later (a tier given a used policy) it
        only becomes the shadows' capacity, as the estimate would."""
        if self.requests == 0 and not self.resident:
            self.fixed_capacity = max_bytes
            self.shadows = self._build_shadows(max_bytes)
        else:
            self._set_capacity(max(max_bytes, int(self.capacity)))

    @property
    def policy(self) -> EvictionPolicy:
        """The running candidate (its shadow's policy)."""
        return self.shadows[self.current].policy

    @property
    def capacity(self) -> float:
        """The shadows' byte capacity: the real cache's, given or estimated."""
        return self.shadows[self.current].capacity

    def _shadow_evicted(self, name: str, key: str) -> None:
        if name == self.current and key in self.resident:
            self._extras[key] = None

    def _request(self, key: str, size: int) -> bool:
        """Feed one request to every shadow; True if the running one holds the key afterwards."""
        if self.fixed_capacity is None and key not in self.resident and self.used + size > self.capacity:
            self._set_capacity(self.used + size)  # the tier is storing this much: its budget is at least that
        for shadow in self.shadows.values():
            shadow.request(key, size)
        self.requests += 1
        self._since_switch += 1
        if self._since_switch >= self.half_life and self.requests % self.check_every == 0:
            self._decide()
        held = key in self.shadows[self.current].resident
        if held:
            self._extras.pop(key, None)
        elif key in self.resident:
            self._extras[key] = None
        return held

    def _set_capacity(self, capacity: int) -> None:
        """A larger estimate of the budget (it only grows). The policies are not told: one built without
        a capacity keeps its rules for an unknown budget (S3-FIFO's shares of the resident bytes)."""
        for shadow in self.shadows.values():
            shadow.capacity = capacity

    def _decide(self) -> None:
        ratios = {name: shadow.byte_miss_ratio() for name, shadow in self.shadows.items()}
        best = min(ratios, key=lambda name: ratios[name])
        if best != self.current and ratios[best] < ratios[self.current] - self.margin:
            self._switch(best)

    def _switch(self, name: str) -> None:
        """Follow ``name``'s shadow from now on: what it does not hold is evicted first."""
        held = self.shadows[name].resident
        self.current = name
        self._extras = {key: None for key in self.resident if key not in held}
        self._since_switch = 0
        self.switches.append((self.requests, name))

    def admit(self, info: EntryInfo) -> bool:
        self._offered = info.key  # a miss: the cache asks admission only for what it does not hold
        return self._request(info.key, info.size)

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return self.policy.ttl_for(info, default_ttl)

    def on_insert(self, info: EntryInfo) -> None:
        key = info.key
        old = self.resident.pop(key, None)
        if old is not None:
            self.used -= old.size
        if self._offered != key:  # stored without admit() (the tier's fill from L2): a request all the same
            self._request(key, info.size)
        self._offered = None
        self.resident[key] = info
        self.used += info.size
        if key not in self.shadows[self.current].resident:
            self._extras[key] = None  # stored although the running candidate would not hold it
        if self.fixed_capacity is None and self.used > self.capacity:
            self._set_capacity(self.used)

    def on_hit(self, info: EntryInfo) -> None:
        self._offered = None
        self._request(info.key, info.size)

    def on_remove(self, key: str) -> None:
        self._offered = None
        gone = self.resident.pop(key, None)
        if gone is not None:
            self.used -= gone.size
        self._extras.pop(key, None)
        for shadow in self.shadows.values():  # a delete or an expiry ends the key in every candidate
            shadow.remove(key)

    def victim(self) -> str | None:
        extras, resident = self._extras, self.resident
        while extras:
            key = next(iter(extras))
            del extras[key]
            if key in resident:
                return self._evicted(key)
        # the real budget is below the running shadow's (an estimate, an item budget): it evicts too
        shadow = self.shadows[self.current]
        while (dropped := shadow.evict_one()) is not None:
            if dropped in resident:
                return self._evicted(dropped)
        return self._evicted(next(iter(resident))) if resident else None

    def _evicted(self, key: str) -> str:
        gone = self.resident.pop(key)
        self.used -= gone.size
        return key

    def __len__(self) -> int:
        return len(self.resident)
