"""The shipped policy that steps aside online: it runs one candidate for real and switches to another
when miniature simulations (:mod:`.minisim`) show that one doing clearly better on recent traffic.

Why: a policy chosen once on a validation slice cannot follow a workload that shifts (CloudPhysics'
slice is scan-heavy, its later half is not), and a short slice cannot tell the candidates apart.
Scored test-then-learn: every decision uses only requests already served.

The rule, fixed before any benchmark run (docs/policy.md, "The online switcher"):

- every request is offered to the SHARDS sample (``MAX_KEYS`` distinct keys); sampled requests feed
  one miniature cache per candidate, each keeping a byte miss ratio decayed with a half-life of
  ``HALF_LIFE`` sampled requests;
- every ``CHECK_EVERY`` sampled requests, once ``HALF_LIFE`` sampled requests have been seen since the
  start or the last switch, the real cache switches to the candidate with the lowest decayed ratio if
  it beats the running candidate's by more than ``MARGIN`` (hysteresis);
- a switch rebuilds the new policy's state from the resident entries, oldest insertion first.

The real cache's capacity is given (the benchmark knows it) or, in the memory tier, estimated as the
largest resident byte count seen (what the tier holds once it evicts).
"""

from __future__ import annotations

from collections.abc import Callable

from precache.cache.policy import EntryInfo, EvictionPolicy, S3FIFOPolicy
from precache.models.optimizer.heuristics import DOOR_GENERATION, DoorkeeperPolicy, GDSFPolicy, SievePolicy
from precache.models.optimizer.minisim import Shards

MAX_KEYS = 4096
"""Distinct sampled keys (SHARDS' s_max): Waldspurger et al. report mean absolute miss-ratio errors of
about 0.01 or less with a few thousand sampled keys; each sampled request costs one step per mini."""
HALF_LIFE = 2048.0
"""Half-life of the decayed miss ratios, in sampled requests: about half the sample's distinct keys, so
a window spans several reuses of a typical sampled key, yet follows a shift within a few thousand."""
CHECK_EVERY = 256
"""Sampled requests between decisions (each decision is a comparison of a few floats)."""
MARGIN = 0.005
"""A candidate must beat the running policy's decayed byte miss ratio by more than this: the goal's own
tolerance, so a switch is made only for a gain the benchmark would count."""


Factory = Callable[[int | None], EvictionPolicy]
"""Builds a candidate for a byte capacity (None: unknown, the memory tier owns its budget)."""


def candidates(door_generation: int = DOOR_GENERATION) -> dict[str, Factory]:
    """The switcher's candidates by name, each built for a byte capacity: S3-FIFO (the default, first),
    S3-FIFO behind a doorkeeper, SIEVE and GDSF behind a doorkeeper (the Python forms of the benchmark's
    winning heuristics: S3FIFO, S3FIFO+Bloom, Sieve, GDSF+Bloom)."""
    return {
        "s3fifo": lambda cap: S3FIFOPolicy(capacity_bytes=cap),
        "s3fifo+door": lambda cap: DoorkeeperPolicy(S3FIFOPolicy(capacity_bytes=cap), door_generation),
        "sieve": lambda cap: SievePolicy(),
        "gdsf+door": lambda cap: DoorkeeperPolicy(GDSFPolicy(), door_generation),
    }


class SwitchingPolicy:
    """An :class:`EvictionPolicy` that runs one of ``factories`` (the first at the start) and switches
    by the rule above. ``switches`` records ``(sampled request count, new policy)`` per switch."""

    name = "switch"

    def __init__(self, capacity_bytes: int | None = None,
                 factories: dict[str, Factory] | None = None,
                 max_keys: int = MAX_KEYS, half_life: float = HALF_LIFE, margin: float = MARGIN,
                 check_every: int = CHECK_EVERY) -> None:
        self.factories = factories if factories is not None else candidates()
        self.fixed_capacity = capacity_bytes
        cap = capacity_bytes or 1
        self.current = next(iter(self.factories))
        self.policy: EvictionPolicy = self.factories[self.current](capacity_bytes)
        # the minis' doorkeepers see only sampled keys: they remember the whole sample (max_keys keys), as
        # the real one remembers DOOR_GENERATION keys or more (equal when T * DOOR_GENERATION >= max_keys)
        mini_factories = self.factories if factories is not None else candidates(max_keys)
        self.shards = Shards(mini_factories, cap, max_keys, half_life)
        self.half_life, self.margin, self.check_every = half_life, margin, check_every
        self.resident: dict[str, EntryInfo] = {}
        self.used = 0
        self._since_switch = 0
        self.switches: list[tuple[int, str]] = []

    def _observe(self, info: EntryInfo) -> None:
        if not self.shards.observe(info.key, info.size):
            return
        self._since_switch += 1
        if self._since_switch >= self.half_life and self.shards.sampled % self.check_every == 0:
            self._decide()

    def _decide(self) -> None:
        ratios = self.shards.ratios()
        best = min(ratios, key=lambda name: ratios[name])
        if best != self.current and ratios[best] < ratios[self.current] - self.margin:
            self._switch(best)

    def _switch(self, name: str) -> None:
        """Run ``name`` for real from now on, its state rebuilt from the residents (oldest first)."""
        policy = self.factories[name](self.fixed_capacity)
        for info in self.resident.values():
            policy.on_insert(info)
        self.policy, self.current = policy, name
        self._since_switch = 0
        self.switches.append((self.shards.sampled, name))

    def admit(self, info: EntryInfo) -> bool:
        self._observe(info)  # a miss (the cache asks admission only for what it does not hold)
        return self.policy.admit(info)

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return self.policy.ttl_for(info, default_ttl)

    def on_insert(self, info: EntryInfo) -> None:
        if info.key in self.resident:
            self.on_remove(info.key)
        self.resident[info.key] = info
        self.used += info.size
        if self.fixed_capacity is None and self.used > self.shards.capacity:
            self.shards.set_capacity(self.used)  # the tier's budget, as far as it has shown it
        self.policy.on_insert(info)

    def on_hit(self, info: EntryInfo) -> None:
        self._observe(info)
        self.policy.on_hit(info)

    def on_remove(self, key: str) -> None:
        gone = self.resident.pop(key, None)
        if gone is not None:
            self.used -= gone.size
        self.policy.on_remove(key)

    def victim(self) -> str | None:
        key = self.policy.victim()
        if key is not None:
            gone = self.resident.pop(key, None)
            self.used -= gone.size if gone is not None else 0
        return key

    def __len__(self) -> int:
        return len(self.resident)
