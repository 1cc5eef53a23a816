"""The edge table with the online counts applied: what a refreshed edge version holds.

Why this shape: the table Worker answers a history from the top-k row of its longest listed context, and the
service answers it by merging the frozen model's list with the live row of the history's last page
(:func:`precache.online.merge.merged`, weight ``lam(n)`` of the row's decayed evidence). So every listed
context's row becomes ``merged(frozen row, live row of its last page)``: the same merge, per context, and the
Worker needs no change. A page the frozen model knows but never saw followed (no first-order context) and
that the live counts did see followed gets a new first-order context (its frozen row is the order-0 one), so
a transition learned live reaches the Worker even there. Pages the frozen vocabulary does not hold cannot be
named by a table (page ids are the vocabulary's): live successors outside it are left out, and said so.

:class:`OnlineTable` is a predictor whose answer is exactly what the Worker computes from its tables, so the
existing exporter (:func:`precache.edge.tables.export_table`) writes it and its probes check it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from precache.edge.manifest import EdgeExport
from precache.edge.tables import DEFAULT_K, export_table
from precache.models.ppm import NgramPredictor
from precache.models.vocabulary import Vocabulary
from precache.online.merge import LIVE_DEPTH, MergeParams, merged
from precache.online.state import OnlineCounts
from precache.types import Prediction

Rows = Mapping[str, Mapping[str, float]]  # context page -> successor page -> stored (forward-decayed) weight


def rows_digest(rows: Rows) -> str:
    """sha256 of the stored live rows: it changes only when a count changed (stored weights do not move
    with the clock; see :mod:`precache.online.state`), which is what "only when the counts changed" means."""
    canonical = sorted((c, sorted(r.items())) for c, r in rows.items() if r)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


class OnlineTable:
    """A frozen n-gram predictor with the live first-order rows merged into every listed context's answer."""

    def __init__(self, frozen: NgramPredictor, rows: Rows, params: MergeParams, now: float) -> None:
        self.frozen = frozen
        self.params = params
        self.vocabulary: Vocabulary = frozen.vocabulary
        self.kind = frozen.kind
        self.fitted = frozen.fitted
        self.max_order = max(1, frozen.max_order)
        known = self.vocabulary.index
        live = OnlineCounts(params.half_life, max_contexts=max(1, len(rows)), max_successors=1 << 20)
        self.left_out = 0  # live successors outside the frozen vocabulary (a table cannot name them)
        for context, row in rows.items():
            kept = {p: w for p, w in row.items() if p in known}
            self.left_out += len(row) - len(kept)
            if context in known and kept:
                live.replace_row(context, kept, now)
        self.heads = {c: live.head(c, LIVE_DEPTH, now) for c in live.contexts()}
        own = [set(frozen.contexts(o)) for o in range(1, frozen.max_order + 1)] or [set()]
        own[0] |= {(known[c],) for c in self.heads}
        self._contexts = own
        self.updated = sum(1 for c in self.heads if self.params.lam(self.heads[c][1]) > 0)

    def contexts(self, order: int) -> list[tuple[int, ...]]:
        return sorted(self._contexts[order - 1])

    def _listed(self, history: Sequence[str]) -> tuple[int, ...]:
        """The longest suffix of ``history`` the tables list (the Worker's walk: stop at the first unseen)."""
        ids = tuple(self.vocabulary.encode(history[-self.max_order:])) if history else ()
        found: tuple[int, ...] = ()
        for order in range(1, min(len(ids), self.max_order) + 1):
            if ids[-order:] not in self._contexts[order - 1]:
                break
            found = ids[-order:]
        return found

    def predict(self, history: Sequence[str], k: int) -> Prediction:
        context = self._listed(history)
        suffix = list(history)[len(history) - len(context):]  # the listed context's pages (unknown ones as given)
        frozen = self.frozen.predict(suffix, k)
        if not context or not context[-1]:
            return frozen
        row, n = self.heads.get(self.vocabulary.pages[context[-1]], ([], 0.0))
        return merged(frozen, row, self.params.lam(n), k)

    def clear_cache(self) -> None:
        self.frozen.clear_cache()


def refreshed_export(frozen: NgramPredictor, base: EdgeExport | Mapping[str, Any], rows: Rows, params: MergeParams,
                     now: float, version: str, k: int = DEFAULT_K) -> EdgeExport:
    """The refreshed edge export: ``frozen``'s table with ``rows`` merged, labelled ``version``; its manifest
    carries ``online: true``, the number of contexts the live counts changed and the rows' digest, and the
    published (base) version's metrics and source."""
    table = OnlineTable(frozen, rows, params, now)
    export = export_table(table, version, k)
    source = base.manifest() if isinstance(base, EdgeExport) else dict(base)
    export.name = str(source.get("name", export.name))
    export.created = source.get("created")
    export.metrics = dict(source.get("metrics") or {})
    export.source = {**dict(source.get("source") or {}), "base_version": source.get("version")}
    export.extra = {**{key: source[key] for key in ("served", "of") if key in source}, "online": True,
                    "online_contexts": table.updated, "online_digest": rows_digest(rows),
                    "online_left_out": table.left_out}
    return export
