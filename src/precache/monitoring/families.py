"""Every metric precache exports, defined once: name, type, help text and label names.

Conventions (Prometheus'): a ``precache_`` prefix, base units (seconds, bytes), ``_total`` on counters,
ratios in 0-1, and only low-cardinality labels -- never a key, a page or a session id. The exposition,
the Grafana dashboard test and the docs all read this table, so a metric cannot be renamed in one place
and forgotten in another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

# Prediction latency buckets in seconds: 100 µs to 1 s, dense around the 10 ms alert threshold.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


FAMILIES: tuple[Family, ...] = (
    Family("precache_cache_requests_total", "counter",
           "Cache lookups by tier and result (tier=l1: every get; tier=l2: the L1 misses that reached L2).",
           ("tier", "result")),
    Family("precache_cache_hit_ratio", "gauge", "Share of cache lookups served from L1 or L2 since start (0-1)."),
    Family("precache_cache_loads_total", "counter", "Loader (origin) calls made by the cache.", ("result",)),
    Family("precache_cache_joined_loads_total", "counter", "Gets that joined a load already in flight."),
    Family("precache_cache_writes_total", "counter", "Cache writes by operation.", ("op",)),
    Family("precache_cache_evictions_total", "counter", "Entries evicted from a tier.", ("tier",)),
    Family("precache_cache_invalidations_received_total", "counter",
           "Invalidation messages received from other instances."),
    Family("precache_cache_tier_bytes", "gauge", "Bytes held by a tier.", ("tier",)),
    Family("precache_cache_tier_items", "gauge", "Entries held by a tier.", ("tier",)),
    Family("precache_redis_errors_total", "counter", "L2 (Redis) operations that failed."),
    Family("precache_redis_busy_total", "counter", "L2 operations skipped: no connection slot in time."),
    Family("precache_circuit_breaker_state", "gauge",
           "Processes whose L2 circuit breaker is in this state (sum over workers).", ("state",)),
    Family("precache_events_dropped_total", "counter", "Access events dropped because a queue was full.",
           ("queue",)),
    Family("precache_predictions_total", "counter", "Predictions served.", ("type",)),
    Family("precache_prediction_latency_seconds", "histogram", "Time to serve one prediction."),
    Family("precache_prediction_scored_total", "counter",
           "Served predictions scored against the page the session visited next.", ("model_version",)),
    Family("precache_prediction_hits_total", "counter",
           "Scored predictions whose top-k held the next page.", ("model_version", "k")),
    Family("precache_prediction_accuracy", "gauge",
           "Online hit rate at k over a rolling window (0-1; absent while the window has no scored prediction).",
           ("k", "window")),
    Family("precache_predictive_hits_total", "counter",
           "Cache lookups served by an entry the warmer preloaded (its first use)."),
    Family("precache_predictive_hit_ratio", "gauge",
           "Share of cache lookups served by an entry the warmer preloaded (first use), since start (0-1)."),
    Family("precache_preload_efficiency", "gauge",
           "Share of completed (origin-fetched) preloads that a user request used (0-1)."),
    Family("precache_preloads_total", "counter", "Preloads by outcome.", ("outcome",)),
    Family("precache_warming_origin_requests_total", "counter", "Origin requests made by warming."),
    Family("precache_warming_origin_bytes_total", "counter", "Bytes fetched from the origin by warming."),
    Family("precache_training_runs_total", "counter", "Training pipeline runs by result.", ("result",)),
    Family("precache_gate_decisions_total", "counter", "Quality-gate decisions on candidate models.",
           ("decision",)),
    Family("precache_model_info", "gauge",
           "Active model version (value = processes serving it; a gauge so multi-worker sums work).",
           ("name", "version")),
    Family("precache_edge_fallbacks_total", "counter", "Edge predictions answered locally instead.", ("reason",)),
    Family("precache_memory_bytes", "gauge",
           "Memory the alert watches: L1 bytes plus loaded model bytes (not the process RSS).", ("component",)),
    # -- the service's own counts (precache.serve.metrics), summed over a replica's workers like the rest --
    Family("precache_http_requests_total", "counter", "HTTP requests answered, by route template and status.",
           ("route", "status")),
    Family("precache_prediction_cache_lookups_total", "counter",
           "Predictions answered from a worker's prediction cache (hit) or computed (miss).", ("result",)),
    Family("precache_unavailable_total", "counter",
           "Requests answered 503 (ML disabled, no model loaded, or a dependency unavailable)."),
    Family("precache_experiment_arm_fallbacks_total", "counter",
           "Predictions whose experiment arm pinned a version that cannot be served (answered by the active model)."),
    Family("precache_events_received_total", "counter", "Access events accepted by POST /api/ml/events."),
    Family("precache_events_streamed_total", "counter", "Accepted access events written to the Redis Stream."),
    Family("precache_events_rate_limited_total", "counter", "POST /api/ml/events requests refused (429) by the "
           "shared rate limit."),
    Family("precache_history_redis_failures_total", "counter",
           "Session-history operations that used the in-memory fallback because Redis failed."),
    Family("precache_asset_count_failures_total", "counter", "Asset-list updates that failed (Redis)."),
    Family("precache_rate_limit_redis_failures_total", "counter",
           "Rate-limit checks that could not reach Redis."),
    Family("precache_model_loads_total", "counter", "Model versions loaded and verified by the service."),
    Family("precache_alert_loop_errors_total", "counter", "Alert evaluations that failed (logged)."),
    Family("precache_edge_forwarded_total", "counter", "Predictions forwarded to the edge inference URL."),
    Family("precache_edge_answered_total", "counter", "Forwarded predictions the edge answered."),
    Family("precache_gc_full_collections_total", "counter", "Full (generation 2) garbage collections run."),
    Family("precache_gc_frozen_objects", "gauge", "Objects in the permanent generation (gc.freeze)."),
    Family("precache_sessions_in_memory", "gauge", "Session histories held in the in-memory fallback store."),
    Family("precache_online_learned_total", "counter", "Page-view transitions the online layer learned."),
    Family("precache_online_refused_total", "counter", "Transitions the online layer's guards refused."),
    Family("precache_online_flushes_total", "counter", "Batches of online increments sent to Redis."),
    Family("precache_online_redis_failures_total", "counter",
           "Online-layer Redis operations that failed (op: flush or read; answers used local counts).", ("op",)),
    Family("precache_online_dropped_increments_total", "counter",
           "Online increments dropped because Redis stayed away past the backlog bound."),
    Family("precache_online_contexts", "gauge", "Contexts (last pages) in this replica's online counts."),
    Family("precache_online_backlog", "gauge", "Online increments not yet acknowledged by Redis."),
    Family("precache_online_calibration_outcomes_total", "counter",
           "Outcomes (the session's next page view after an online answer) the online calibrator learned."),
    Family("precache_edge_refreshes_total", "counter",
           "Edge table refreshes with the online counts (result: published, unchanged, skipped: no table, "
           "not_leader: another replica publishes, failed).", ("result",)),
    Family("precache_drift_retrains_total", "counter",
           "Drift triggers (result: started, suppressed by the rate limit, busy: a job was running, failed).",
           ("result",)),
    Family("precache_drift_window_hr5", "gauge", "Live HR@5 over the drift tracker's last full window (-1: none)."),
)

def exported_series_names() -> set[str]:
    """Every series name a scrape can contain (histograms add ``_bucket``, ``_sum`` and ``_count``)."""
    names: set[str] = set()
    for family in FAMILIES:
        if family.kind == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names
