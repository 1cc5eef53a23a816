"""Fresh models at the edge: republish the edge table with the online counts, on a schedule.

Why: the table Workers serve the frozen model's tables, so what the online layer learns (issue 25) would
never reach them. Every ``MODEL_EDGE_REFRESH`` seconds one replica (a Redis lease: two replicas never both
write) reads the shared online rows for the pages of the active version's table, and -- only when those
stored counts changed since the last publish (a digest of the stored weights, which do not move with the
clock) -- writes a derived edge version ``<active version>+online-<n>`` into the active version's
``edge-refresh/`` directory (:func:`precache.edge.online_table.refreshed_export`: the same merge the service
answers with, per table context). The model-files endpoint then serves that manifest and its files in
place of the activation's (``registry_routes.read_active_file``), so Workers see a new ETag (sha256), fetch,
verify every sha256 and replay the probes like any other version. A new activation writes a new directory
without a refresh, so the next publish starts from the new model.

Skips are counted (unchanged counts, no table published for the active version, another replica holds the
lease); a failed publish is logged and counted and never touches serving (the files are written before the
manifest, atomically, by :meth:`EdgeExport.write`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from precache.defaults import PAGE_PREDICTOR
from precache.edge.manifest import EDGE_MANIFEST
from precache.monitoring.lease import RedisLease
from precache.online.layer import OnlineLayer
from precache.online.state import epoch_of
from precache.serve.registry_routes import REFRESH_DIR
from precache.serve.state import ServiceState

log = logging.getLogger("precache.serve.edge_refresh")

RESULTS = ("published", "unchanged", "skipped", "not_leader", "failed")


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The JSON of an edge manifest, or None when absent or unreadable."""
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class EdgeRefresher:
    """The refresh loop of one process (see the module doc); ``stats`` counts each tick's result."""

    def __init__(self, registry: Any, redis: Any, online: OnlineLayer, interval: float, prefix: str) -> None:
        self.registry, self.online, self.interval = registry, online, interval
        self.lease = RedisLease(redis, f"{prefix}edge-refresh:lease", uuid.uuid4().hex, max(3 * interval, 5.0))
        self.stats: Counter[str] = Counter()
        self.last: dict[str, Any] = {}
        self._model: tuple[Path, Any] | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.tick()

    async def tick(self) -> str:
        """One refresh: publish, or say why not; never raises."""
        try:
            if not await self.lease.hold():
                result = "not_leader"
            else:
                result = await self.publish()
        except Exception as exc:  # a failed publish must never affect serving: logged and counted
            log.warning("edge refresh failed: %s: %s", type(exc).__name__, exc)
            result = "failed"
        self.stats[result] += 1
        return result

    def _frozen(self, directory: Path) -> Any:
        """The predictor the version's table was exported from (for auto, the part the table Worker serves,
        chosen as activation chose it: :func:`precache.edge.served.served_form`), loaded once per version."""
        from precache.edge.build import load_model_dir
        from precache.edge.served import served_form

        if self._model is None or self._model[0] != directory:
            self._model = (directory, served_form(load_model_dir(directory)[0], "table").predictor)
        return self._model[1]

    async def _rows(self, pages: list[str], now: float) -> dict[str, dict[str, float]]:
        store = self.online.store
        if store is None:
            return {c: dict(r.successors) for c, r in self.online.local.rows.items() if r.successors}
        known = set(pages)  # only rows the table can name: contexts of the online indexes in the vocabulary
        contexts = [c for c in await store.context_pages(epoch_of(now, store.half_life)) if c in known]
        rows = await store.rows(sorted(contexts), now)
        return {c: r for c, r in rows.items() if r}

    async def publish(self) -> str:
        from precache.edge.online_table import refreshed_export, rows_digest

        info = await asyncio.to_thread(self.registry.active, PAGE_PREDICTOR)
        base = read_manifest(info.path / EDGE_MANIFEST) if info is not None else None
        if info is None or base is None or base.get("kind") != "table":
            return "skipped"  # no table published for the active version (none, ORT, or not servable)
        frozen = await asyncio.to_thread(self._frozen, info.path)
        if getattr(frozen, "kind", None) != base.get("model_kind"):
            return "skipped"  # the published table is not of the part we would refresh (published by hand)
        now = time.time()
        rows = await self._rows(list(frozen.vocabulary.pages[1:]), now)
        digest = rows_digest(rows)
        target = info.path / REFRESH_DIR
        previous = read_manifest(target / EDGE_MANIFEST)
        if previous is not None and previous.get("online_digest") == digest:
            return "unchanged"
        if previous is None and not rows:
            return "unchanged"  # nothing learned yet: the activation's table is the fresh one
        n = int(previous.get("online_refresh", 0)) + 1 if previous is not None else 1
        version = f"{base.get('version')}+online-{n}"
        k = int(base.get("k") or 10)

        def build_and_write() -> dict[str, Any]:
            export = refreshed_export(frozen, base, rows, self.online.params, now, version, k)
            export.extra["online_refresh"] = n
            export.write(target)
            return {"version": version, "contexts": export.extra["online_contexts"], "digest": digest}

        self.last = await asyncio.to_thread(build_and_write)
        log.info("edge refresh: published %s (%s contexts updated)", version, self.last["contexts"])
        return "published"

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            await self.lease.release()


def edge_refresh_gauges(refresher: EdgeRefresher) -> dict[str, Any]:
    """``edgeRefresh<Result>`` gauges for ``/api/ml/metrics`` (``precache_edge_refreshes_total{result}``)."""
    return {"edgeRefresh" + r.title().replace("_", ""): (lambda r=r: float(refresher.stats[r])) for r in RESULTS}


def start(state: ServiceState) -> EdgeRefresher | None:
    """Start the refresh loop when ``MODEL_EDGE_REFRESH`` is set and the online layer is on."""
    interval = state.settings.model_edge_refresh
    if not interval or state.online is None:
        return None
    refresher = EdgeRefresher(state.registry, state.redis, state.online, interval, state.serve.redis_prefix)
    state.metrics.gauges.update(edge_refresh_gauges(refresher))
    state.edge_refresher = refresher
    state.spawn(refresher.run())
    return refresher
