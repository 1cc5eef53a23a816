"""The shipped Prometheus files work as shipped (issue 28): ``promtool test rules`` runs the unit tests of every
alert (firing and quiet cases, the memory alert in bytes against MiB in bytes), ``promtool check rules`` and
``promtool check config`` accept the rules and the scrape configuration. Skipped without promtool, except in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed (CI installs Debian's prometheus package)")
        pytest.skip("promtool is not installed (Debian's prometheus package)")
    return path


def _run(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_every_alert_has_promtool_unit_tests_and_they_pass() -> None:
    rules = yaml.safe_load((DEPLOY / "precache-alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    tests = yaml.safe_load((DEPLOY / "precache-alerts.test.yml").read_text())
    tested = {case["alertname"] for t in tests["tests"] for case in t.get("alert_rule_test", [])}
    assert alerts and alerts <= tested, f"alerts without a unit test: {sorted(alerts - tested)}"
    for alert in alerts:  # each one is seen firing at least once
        assert any(case["alertname"] == alert and case["exp_alerts"] for t in tests["tests"]
                   for case in t.get("alert_rule_test", [])), alert
    out = _run("test", "rules", "precache-alerts.test.yml")
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    out = _run("check", "rules", "precache-alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_scrape_configuration_passes_promtool(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "precache")
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    # the full check needs the token file the config names: a copy pointing at a real one
    token = tmp_path / "token"
    token.write_text("a-scrape-token-of-its-own\n")
    job["authorization"]["credentials_file"] = str(token)
    shutil.copy(DEPLOY / "precache-alerts.yml", tmp_path / "precache-alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = _run("check", "config", "prometheus.yml", cwd=tmp_path)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
