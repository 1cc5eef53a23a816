"""Settings: the seed's environment variable names are honoured; bad values fail early with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from precache.config import ConfigError, Settings, TrainingSchedule, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ML_ENABLED", "ML_TRAINING_SCHEDULE", "MODEL_STORAGE_PATH", "REDIS_URL", "PRECACHE_API_TOKEN",
                 "ML_ALERT_WEBHOOK", "ML_EDGE_INFERENCE_URL", "PRECACHE_PREDICTIVE__WARMING_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_specification() -> None:
    settings = load_settings()
    assert settings.predictive.warming_threshold == 0.7
    assert settings.predictive.max_preload_items == 50
    assert settings.predictive.preload_budget_bytes == 100 * 1024 * 1024
    assert settings.predictive.adaptive_ttl is True
    assert settings.alerts.accuracy_threshold == 0.75
    assert settings.alerts.latency_threshold_ms == 10.0
    assert settings.alerts.hit_rate_threshold == 0.95
    assert settings.alerts.memory_threshold_mb == 90.0
    assert settings.session_gap_seconds == 1800.0


def test_seed_environment_names_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ML_ENABLED", "false")
    monkeypatch.setenv("ML_TRAINING_SCHEDULE", "daily")
    monkeypatch.setenv("MODEL_STORAGE_PATH", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/2")
    monkeypatch.setenv("PRECACHE_API_TOKEN", "s3cret")
    monkeypatch.setenv("PRECACHE_PREDICTIVE__WARMING_THRESHOLD", "0.5")
    settings = load_settings()
    assert settings.ml_enabled is False
    assert settings.ml_training_schedule is TrainingSchedule.DAILY
    assert settings.model_storage_path == tmp_path
    assert settings.redis_url.endswith(":6390/2")
    assert settings.api_token == "s3cret"
    assert settings.predictive.warming_threshold == 0.5


@pytest.mark.parametrize(
    ("variable", "value", "expected_in_message"),
    [
        ("ML_TRAINING_SCHEDULE", "hourly", "ML_TRAINING_SCHEDULE"),
        ("ML_ENABLED", "maybe", "ML_ENABLED"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL"),
        ("ML_ALERT_WEBHOOK", "ftp://x", "ML_ALERT_WEBHOOK"),
        ("PRECACHE_PREDICTIVE__WARMING_THRESHOLD", "1.5", "warming_threshold"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected_in_message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert expected_in_message in str(info.value)
    assert repr(value) in str(info.value)


def test_code_overrides_win() -> None:
    assert load_settings(redis_url="redis://10.0.0.1:1/0").redis_url == "redis://10.0.0.1:1/0"
    assert isinstance(load_settings(), Settings)


def test_cli_reports_bad_setting_in_one_line_without_traceback() -> None:
    env = {"ML_TRAINING_SCHEDULE": "hourly", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", "from precache.cli import main; import sys; sys.argv=['precache','config'];main()"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "ML_TRAINING_SCHEDULE" in proc.stderr
