"""``GET /metrics`` as Prometheus meets it (issue 28), on real ``precache serve --workers 2`` replicas sharing one
real redis-server: each replica reports its own workers summed (the replicas' sum equals the predictions made,
never double-counted), no counter goes backwards between scrapes, the exposition passes ``promtool check
metrics``, counters end in ``_total`` with real HELP text, and the auth is what the docs say (a metrics token,
the API token, or none on ``--metrics-port``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the service tests' process helpers
from serve_harness import TOKEN, running_service, running_services, service_env, train_model

from conftest import free_port

METRICS_TOKEN = "metrics-scrape-token-0123456789"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([-+0-9.eEinfINFNa]+)$")


def parse(text: str) -> dict[str, float]:
    """Series (name plus labels, as written) -> value, of a text exposition."""
    out = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def scrape(url: str, token: str | None = METRICS_TOKEN) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(headers=headers, timeout=10) as client:  # a new connection: any worker may answer
        response = client.get(url + "/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def _counters(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE") and line.endswith(" counter")}


@pytest.mark.slow
def test_two_replicas_of_two_workers_count_each_prediction_once(redis_server: Any, tmp_path: Path) -> None:
    model = train_model(tmp_path / "ppm")
    prefix = f"t{free_port()}:"  # one deployment: both replicas on the same Redis keys
    metrics_port = free_port()
    env = service_env(redis_server.url, model, PRECACHE_REDIS_PREFIX=prefix, PRECACHE_METRICS_TOKEN=METRICS_TOKEN)
    with running_services((env, ("--workers", "2", "--metrics-port", str(metrics_port))),
                          (env, ("--workers", "2"))) as replicas:
        made = [0, 0]
        previous: list[dict[str, float]] = [{}, {}]
        for round_ in range(6):
            for i, service in enumerate(replicas):
                for j in range(15):
                    with service.client() as api:  # new connections spread over the replica's workers
                        answer = api.post("/api/ml/predict", json={"sessionId": f"r{round_}-{i}-{j}", "type": "page",
                                                                   "context": {"currentPath": "/a3"}})
                    assert answer.status_code == 200, answer.text
                    made[i] += 1
                text = scrape(service.url)
                now = parse(text)
                for series in now:
                    name = series.split("{")[0]
                    if name in _counters(text) or name.endswith(("_total", "_bucket", "_count", "_sum")):
                        assert now[series] >= previous[i].get(series, 0.0), (series, previous[i][series], now[series])
                previous[i] = now
        time.sleep(1.5)  # every worker has written its latest counts (about once a second)
        totals = [parse(scrape(s.url)).get('precache_predictions_total{type="page"}', 0.0) for s in replicas]
        assert totals == made, (totals, made)  # each replica reports itself; the sum is the predictions made
        assert sum(totals) == sum(made)
        for service in replicas:  # each worker reports the version it serves
            info = [v for k, v in parse(scrape(service.url)).items() if k.startswith("precache_model_info")]
            assert info == [2.0], info
        text = scrape(replicas[0].url)
        for name in _counters(text):
            assert name.endswith("_total"), name
        helps = dict(line[7:].split(" ", 1) for line in text.splitlines() if line.startswith("# HELP "))
        assert all(len(h) > 12 and " " in h for h in helps.values()), helps
        assert "precache_http_requests_total" in helps and "precache_events_received_total" in helps
        # auth: nothing or a wrong token is refused; the API token works; the metrics port needs nothing
        with httpx.Client(timeout=10) as anonymous:
            assert anonymous.get(replicas[0].url + "/metrics").status_code == 401
            assert anonymous.get(replicas[0].url + "/metrics",
                                 headers={"Authorization": "Bearer wrong-token"}).status_code == 401
            port_text = anonymous.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert parse(scrape(replicas[0].url, TOKEN))
        assert parse(port_text).get('precache_predictions_total{type="page"}') == made[0]
        promtool = shutil.which("promtool")
        if promtool is not None:
            check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                                   timeout=60)
            assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), \
                check.stdout + check.stderr


@pytest.mark.slow
def test_every_metric_the_grafana_dashboard_queries_is_in_a_scrape_after_traffic(redis_server: Any,
                                                                                 tmp_path: Path) -> None:
    import json

    from precache.monitoring.families import FAMILIES

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/precache-dashboard.json")
                           .read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queried = {name for expr in exprs for name in re.findall(r"\b(precache_[a-z0-9_]+)", expr)}
    env = service_env(redis_server.url, train_model(tmp_path / "ppm"), PRECACHE_METRICS_TOKEN=METRICS_TOKEN)
    with running_service(env) as service, service.client() as api:
        for i in range(20):
            session = f"s{i}"
            assert api.post("/api/ml/predict", json={"sessionId": session, "type": "page",
                                                     "context": {"currentPath": "/a3"}}).status_code == 200
            events = [{"sessionId": session, "page": "/hub", "time": time.time()},
                      {"sessionId": session, "key": f"/k{i}", "tier": "l1" if i % 2 else "origin",
                       "latency": 0.001, "size": 100, "time": time.time()}]
            assert api.post("/api/ml/events", json={"events": events}).status_code == 200
        time.sleep(1.2)  # the per-second sample feeds the rolling windows (online accuracy)
        text = scrape(service.url)
    series = {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}
    missing = queried - series  # a sample, not just a declared family
    assert not missing, f"dashboard panels without data: {sorted(missing)}"
    declared = {f.name for f in FAMILIES} | {f.name + "_bucket" for f in FAMILIES if f.kind == "histogram"}
    assert queried <= declared
