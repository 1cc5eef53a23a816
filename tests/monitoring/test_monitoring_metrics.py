"""Metrics from a real cache, rendered through prometheus-client and validated by ``promtool``."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from precache.cache import PredictiveCache
from precache.monitoring.exposition import render_prometheus
from precache.monitoring.families import FAMILIES, exported_series_names
from precache.monitoring.monitor import Monitor, watch_cache
from precache.monitoring.snapshot import Snapshot, merge, parse_series_key, series_key

ROOT = Path(__file__).resolve().parents[2]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: `make test` installs Debian's prometheus package")
    return path


async def _traffic(cache: PredictiveCache) -> None:
    async def load() -> str:
        return "v"

    for i in range(20):
        await cache.get(f"k{i % 5}", loader=load)  # 5 misses then 15 L1 hits


def _parse_exposition(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values[series] = float(value)
    return values


async def _exposition_after_traffic() -> tuple[str, PredictiveCache]:
    cache = PredictiveCache()
    monitor = Monitor(watch_cache(cache))
    await _traffic(cache)
    monitor.set_model("page-predictor", "v3")
    monitor.record_prediction(0.0004, session_id="s1", pages=["/a", "/b"], model_version="v3")
    monitor.record_page_view("s1", "/b")  # a hit at 5, a miss at 1
    return render_prometheus(monitor.snapshot()).decode(), cache


def test_cache_counts_reach_the_exposition_and_pass_promtool() -> None:
    text, cache = asyncio.run(_exposition_after_traffic())
    check = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr

    values = _parse_exposition(text)
    stats = cache.stats
    assert values['precache_cache_requests_total{result="hit",tier="l1"}'] == stats.l1_hits == 15
    assert values['precache_cache_requests_total{result="miss",tier="l1"}'] == stats.misses + stats.l2_hits == 5
    assert values["precache_cache_hit_ratio"] == pytest.approx(15 / 20)
    assert values['precache_model_info{name="page-predictor",version="v3"}'] == 1
    assert values['precache_prediction_hits_total{k="5",model_version="v3"}'] == 1
    assert values['precache_prediction_hits_total{k="1",model_version="v3"}'] == 0
    assert values['precache_prediction_accuracy{k="5",window="1m"}'] == 1.0
    assert values['precache_prediction_latency_seconds_bucket{le="0.0005"}'] == 1
    assert values["precache_prediction_latency_seconds_count"] == 1
    assert values['precache_memory_bytes{component="l1"}'] > 0


def test_no_family_uses_a_high_cardinality_label() -> None:
    banned = {"key", "page", "session", "session_id", "path", "url", "client"}
    for family in FAMILIES:
        assert family.name.startswith("precache_")
        assert not banned & set(family.labels), family.name
        if family.kind == "counter":
            assert family.name.endswith("_total"), family.name


def test_snapshots_of_two_workers_sum_and_ratios_are_recomputed() -> None:
    a, b = Monitor(), Monitor()
    for m, (n, lat) in ((a, (3, 0.002)), (b, (1, 0.02))):
        for _ in range(n):
            m.record_prediction(lat)
    merged = merge([Snapshot.from_dict(json.loads(json.dumps(m.snapshot().as_dict()))) for m in (a, b)])
    assert merged.values[series_key("precache_predictions_total", {"type": "page"})] == 4
    hist = merged.histograms["precache_prediction_latency_seconds"]
    assert sum(hist[:-1]) == 4 and hist[-1] == pytest.approx(3 * 0.002 + 0.02)
    assert parse_series_key('precache_x{a=1,b=2}') == ("precache_x", {"a": "1", "b": "2"})
    with pytest.raises(ValueError):
        Snapshot.from_dict({"values": {"x": "not a number"}})


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "precache-dashboard.json").read_text())
    exported = exported_series_names()
    seen = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"\bprecache_[a-z0-9_]+", target["expr"]):
                assert name in exported, f"panel {panel['title']!r} queries {name}, which precache does not export"
                seen.add(name)
    assert len(seen) >= 15


def test_alerting_rules_pass_promtool_and_name_exported_metrics() -> None:
    rules = ROOT / "deploy" / "prometheus" / "precache-alerts.yml"
    check = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "4 rules found" in check.stdout
    exported = exported_series_names()
    for name in re.findall(r"\bprecache_[a-z0-9_]+", rules.read_text()):
        assert name in exported, name
