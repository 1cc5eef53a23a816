"""Why requests still miss: the honest denominator for "misses removed by warming".

Every miss of the replay *without* warming is put in exactly one class, first match wins:

- ``first_ever``: the key was never requested before (not in the training part, not earlier in the replay).
  A compulsory miss: no model trained on the past can name a URL it has never seen.
- pages:
  - ``page_session_start``: the first page of a session: the warmer predicts *after* a page view, so a
    session's entry page has no context (only a popularity prefetch could help, at a large waste);
  - ``page_unknown_to_model``: seen before in the replay but not in the training sessions: outside the
    predictor's vocabulary;
  - ``page_in_top5`` / ``page_outside_top5``: a known page, mid-session, that the predictor did / did not
    rank in its top 5 given the session's pages so far (without a predictor: ``page_predictable``). Only
    the first is reachable for a warmer driven by that predictor.
- assets:
  - ``asset_no_page``: no page of the session came before it (a hotlink, or the page was a cache hit from
    another session's view... in any case nothing to predict from);
  - ``asset_same_instant``: requested in the same instant (the log's one-second resolution) as the
    session's latest page. A preload started when that page request is seen is modelled as starting
    *after* the instant's user requests, so it cannot be in time. Honest, not helped;
  - ``asset_linked``: requested at least one instant after the page, and the asset model links it to that
    page (``P(asset | page) > 0``): it can be preloaded at the page request (current-page assets) or with
    the predicted next page;
  - ``asset_unlinked``: later than the page but never seen with it in training (typically minutes after
    the page: an image opened by itself); without an asset model, ``asset_later`` covers both.

Then, on the same events, the replay *with* warming tells which of those misses became hits (removed, by
class) and which hits became misses (warming evicted something useful).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Sequence
from typing import Any, Protocol

from precache.scoring import hit_at
from precache.sim.metrics import HIT_CODES, ReplayResult
from precache.sim.workload import PreparedTrace
from precache.traces.paths import normalize_path
from precache.warming.assets import AssetModel

CLASSES = ("first_ever", "page_session_start", "page_unknown_to_model", "page_outside_top5", "page_in_top5",
           "page_predictable", "asset_no_page", "asset_same_instant", "asset_unlinked", "asset_linked",
           "asset_later")
IMPROVABLE = ("page_in_top5", "page_predictable", "asset_linked", "asset_later")


class _Predictor(Protocol):
    def predict(self, history: Sequence[str], k: int) -> list[tuple[str, float]]: ...


def classify_events(
    trace: PreparedTrace,
    predictor: _Predictor | None = None,
    assets: AssetModel | None = None,
    only: Container[int] | None = None,
) -> list[str]:
    """The class each replayed event would have if it missed (see the module docstring). The predictor
    (asked for events in ``only``: the misses) splits the mid-session pages, the asset model the assets."""
    ev = trace.events
    seen: set[str] = set()
    vocabulary: set[str] = set()
    for session in (*trace.train, *trace.validation):
        seen.update(session.pages)
        vocabulary.update(session.pages)
        seen.update(normalize_path(a.path) for a in session.assets)
    last_page: dict[str, tuple[str, float]] = {}
    history: dict[str, list[str]] = {}
    out: list[str] = []
    for i in range(len(ev)):
        key, sid, t = ev.keys[i], ev.sessions[i], ev.times[i]
        if key not in seen:
            cls = "first_ever"
            seen.add(key)
        elif ev.pages[i]:
            if sid not in last_page:
                cls = "page_session_start"
            elif key not in vocabulary:
                cls = "page_unknown_to_model"
            elif predictor is None or (only is not None and i not in only):
                cls = "page_predictable"
            else:
                top = predictor.predict(history[sid][-20:], 5)
                cls = "page_in_top5" if hit_at(top, key, 5) else "page_outside_top5"
        else:
            page = last_page.get(sid)
            if page is None:
                cls = "asset_no_page"
            elif page[1] == t:
                cls = "asset_same_instant"
            elif assets is None:
                cls = "asset_later"
            else:
                linked = any(a == key for a, _ in assets.assets_of(page[0]))
                cls = "asset_linked" if linked else "asset_unlinked"
        if ev.pages[i]:
            last_page[sid] = (key, t)
            history.setdefault(sid, []).append(key)
        out.append(cls)
    return out


def _outcomes(result: ReplayResult) -> dict[int, bool]:
    """event index -> was it a hit."""
    return {i: o in HIT_CODES for i, o in zip(result.indices, result.outcomes, strict=True)}


def miss_breakdown(
    trace: PreparedTrace,
    without: ReplayResult,
    with_warming: ReplayResult,
    predictor: _Predictor | None = None,
    assets: AssetModel | None = None,
) -> dict[str, Any]:
    """Misses of ``without`` by class, and which ones ``with_warming`` removed (or added)."""
    base, warm = _outcomes(without), _outcomes(with_warming)
    missed = {i for i, hit in base.items() if not hit} | {i for i, hit in warm.items() if not hit}
    classes = classify_events(trace, predictor, assets, only=missed)
    misses: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    added: Counter[str] = Counter()
    for i, hit in base.items():
        cls = classes[i]
        after = warm.get(i, hit)
        if not hit:
            misses[cls] += 1
            if after:
                removed[cls] += 1
        elif not after:
            added[cls] += 1
    total = sum(misses.values())
    improvable = sum(misses[c] for c in IMPROVABLE)
    net_removed = sum(removed.values()) - sum(added.values())
    rows = [{"class": c, "misses": misses[c], "share": misses[c] / total if total else 0.0,
             "removed": removed[c], "removed_share": removed[c] / misses[c] if misses[c] else 0.0,
             "added": added[c]} for c in CLASSES if misses[c] or removed[c] or added[c]]
    pages_removed = sum(removed[c] for c in CLASSES if c.startswith("page"))
    assets_removed = sum(removed[c] for c in CLASSES if c.startswith("asset"))
    return {
        "without": without.mode,
        "with": with_warming.mode,
        "misses": total,
        "rows": rows,
        "improvable_misses": improvable,
        "removed": sum(removed.values()),
        "removed_pages": pages_removed,
        "removed_assets": assets_removed,
        "removed_first_ever": removed["first_ever"],
        "added": sum(added.values()),
        "net_removed": net_removed,
        "removed_of_all_misses": net_removed / total if total else 0.0,
        "removed_of_improvable": net_removed / improvable if improvable else 0.0,
    }
