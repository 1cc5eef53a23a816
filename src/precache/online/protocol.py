"""``precache evaluate --protocol prequential``: frozen and online rows per model on one split.

For each model: the merge is chosen on the training period (:func:`precache.online.prequential.choose`,
with a selection copy of the model fitted on the training slice alone), then the model fitted on train +
validation scores the test period in time order, frozen and online (test-then-learn, guards on).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from precache.evaluation import Split
from precache.models.base import PagePredictorBase
from precache.online.guards import ContributionGuard
from precache.online.prequential import (
    calibrated_lists,
    choose,
    events,
    frozen_heads,
    live_pass,
    online_lists,
    row,
    tally,
)

Builder = Callable[[], PagePredictorBase]


def default_guard() -> ContributionGuard:
    return ContributionGuard()


def prequential_rows(name: str, build: Builder, split: Split, max_transitions: int | None = None,
                     guard_factory: Callable[[], ContributionGuard | None] = default_guard,
                     on_progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The frozen and the online row of one model (see the module doc)."""
    say = on_progress or (lambda _: None)
    say(f"{name}: fitting the selection copy on the training slice")
    selection = build()
    selection.fit(split.train, None)
    seed = events(split.train)
    validation = events(split.validation, start=len(seed))
    say(f"{name}: choosing half-life and weight on the validation slice")
    choice = choose(frozen_heads(selection, validation, max_transitions), seed, validation, max_transitions,
                    guard_factory=guard_factory)
    say(f"{name}: fitting on train + validation")
    started = time.perf_counter()
    model = build()
    model.fit(split.train, split.validation)
    fit_seconds = time.perf_counter() - started
    seed = events(split.train_and_validation)
    test = events(split.test, start=len(seed))
    say(f"{name}: scoring the test period test-then-learn")
    frozen = frozen_heads(model, test, max_transitions)
    live = live_pass(seed, test, choice.params.half_life, guard_factory(), max_transitions)
    frozen_tally = tally(frozen, live.targets)
    online = tally(calibrated_lists(frozen, live, choice.params, "online"), live.targets)
    unmapped = tally(calibrated_lists(frozen, live, choice.params, "false"), live.targets)
    stored = tally(online_lists(frozen, live, choice.params), live.targets)
    return [
        row(name, "frozen", frozen_tally, fit_seconds=round(fit_seconds, 2)),
        row(name, "online", online, **choice.params.as_dict(), calibrated="online", ece_unmapped=round(unmapped.ece, 4),
            ece_offline_map=round(stored.ece, 4), validation_hr5=round(choice.validation_hr5, 4),
            frozen_validation_hr5=round(choice.frozen_validation_hr5, 4),
            updates_per_s=round(len(seed) / max(live.seed_seconds, 1e-9)), state_bytes=live.state.approx_bytes()),
    ]
