"""Settings for every precache component, read from environment variables or given in code.

The seed deployment used flat names (``ML_ENABLED``, ``MODEL_STORAGE_PATH`` ...); they are honoured as
they are, so an existing ``.env`` keeps working. A bad value fails at start-up with a message naming the
variable and the expected form, instead of surfacing later as an obscure runtime error.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from precache.defaults import SESSION_GAP_SECONDS, WARMING_TARGET_EFFICIENCY, WARMING_THRESHOLD


class ConfigError(ValueError):
    """A setting has a value precache cannot use; the message names the variable and the expected form."""


class TrainingSchedule(StrEnum):
    ONCE = "once"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def redact_url(url: str, *, hide_path: bool = False) -> str:
    """``url`` with its password (``redis://:secret@host``, ``user:secret@``) replaced by ``***``, for logs and
    ``precache config``; ``hide_path`` also hides path and query (a webhook URL often carries its secret
    there)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:***@" + netloc.rsplit("@", 1)[1]
    path, query = parts.path, parts.query
    if hide_path and (path not in ("", "/") or query):
        path, query = "/***", ""
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _http_url(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    assert value is not None
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value


class PredictiveSettings(BaseModel):
    """How aggressively the warmer preloads predicted pages."""

    warming_threshold: Probability = WARMING_THRESHOLD
    target_efficiency: Annotated[float, Field(gt=0.0, lt=1.0)] | None = WARMING_TARGET_EFFICIENCY
    """The warmer moves its threshold online so this share of its origin preloads gets used (None: fixed)."""
    max_preload_items: int = Field(50, ge=0)
    preload_budget_bytes: int = Field(100 * 1024 * 1024, ge=0)
    adaptive_ttl: bool = True
    origin_url: str | None = None
    """Where the warmer fetches predicted pages when the application gives no resolver (http/https)."""

    @field_validator("origin_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        return _http_url(value)


class AlertSettings(BaseModel):
    """Thresholds past which monitoring raises an alert (and calls the webhook, if one is set)."""

    accuracy_threshold: Probability = 0.75
    latency_threshold_ms: float = Field(10.0, gt=0)
    hit_rate_threshold: Probability = 0.95
    memory_threshold_mb: float = Field(90.0, gt=0)
    for_seconds: float = Field(300.0, ge=0)  # how long a condition must hold before the alert fires
    interval_seconds: float = Field(15.0, gt=0, le=3600)  # how often the alert leader evaluates


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """All of precache's settings. Environment variables win over defaults; code may pass values directly."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        populate_by_name=True,
        extra="ignore",
        validate_default=True,
    )

    ml_enabled: bool = Field(True, validation_alias=_env("ML_ENABLED", "ml_enabled"))
    ml_edge_inference_url: str | None = Field(
        None, validation_alias=_env("ML_EDGE_INFERENCE_URL", "ml_edge_inference_url")
    )
    ml_training_api_key: str | None = Field(
        None, validation_alias=_env("ML_TRAINING_API_KEY", "ml_training_api_key")
    )
    ml_auto_training_enabled: bool = Field(
        False, validation_alias=_env("ML_AUTO_TRAINING_ENABLED", "ml_auto_training_enabled")
    )
    ml_training_schedule: TrainingSchedule = Field(
        TrainingSchedule.WEEKLY, validation_alias=_env("ML_TRAINING_SCHEDULE", "ml_training_schedule")
    )
    model_storage_path: Path = Field(
        Path("models"), validation_alias=_env("MODEL_STORAGE_PATH", "model_storage_path")
    )
    # Not inside MODEL_STORAGE_PATH, where "backup" would look like a model name.
    model_backup_path: Path = Field(
        Path("model-backups"), validation_alias=_env("MODEL_BACKUP_PATH", "model_backup_path")
    )
    model_keep_versions: int = Field(
        5, ge=2, validation_alias=_env("MODEL_KEEP_VERSIONS", "model_keep_versions")
    )
    # Activating a page-predictor version writes the edge Workers' files beside it (precache.edge.publish).
    model_edge_publish: bool = Field(True, validation_alias=_env("MODEL_EDGE_PUBLISH", "model_edge_publish"))
    # Which edge Worker is deployed (table or ort): decides which component of an auto model is published.
    model_edge_worker: Literal["table", "ort"] = Field(
        "table", validation_alias=_env("MODEL_EDGE_WORKER", "model_edge_worker")
    )
    # Republish the edge tables with the online counts every this many seconds ("300", "5m"; off: unset/0),
    # only when the counts changed and the online layer is on (precache.serve.edge_refresh).
    model_edge_refresh: float | None = Field(
        None, validation_alias=_env("MODEL_EDGE_REFRESH", "model_edge_refresh")
    )
    ml_metrics_enabled: bool = Field(True, validation_alias=_env("ML_METRICS_ENABLED", "ml_metrics_enabled"))
    ml_alert_webhook: str | None = Field(None, validation_alias=_env("ML_ALERT_WEBHOOK", "ml_alert_webhook"))
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL", "redis_url"))
    api_token: str | None = Field(None, validation_alias=_env("PRECACHE_API_TOKEN", "api_token"))

    # How long a stopping service may take (SIGTERM to exit): in-flight requests get half, background loops
    # (metrics publisher, alerts, experiments) the rest; a loop still running then is abandoned (issue 28).
    shutdown_seconds: float = Field(
        10.0, gt=0, le=600, validation_alias=_env("PRECACHE_SHUTDOWN_SECONDS", "shutdown_seconds")
    )
    session_gap_seconds: float = Field(
        SESSION_GAP_SECONDS, gt=0, validation_alias=_env("PRECACHE_SESSION_GAP_SECONDS", "session_gap_seconds")
    )
    predictive: PredictiveSettings = Field(
        default_factory=PredictiveSettings, validation_alias=_env("PRECACHE_PREDICTIVE", "predictive")
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, validation_alias=_env("PRECACHE_ALERTS", "alerts")
    )

    @field_validator("ml_edge_inference_url", "ml_alert_webhook")
    @classmethod
    def _http_urls(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("model_edge_refresh", mode="before")
    @classmethod
    def _refresh_seconds(cls, value: object) -> float | None:
        return duration_seconds(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_seconds(value: object) -> float | None:
    """A duration in seconds from ``300``, ``"300"``, ``"300s"``, ``"5m"``, ``"1.5h"``, ``"250ms"``; None (off)
    for unset, empty, ``0`` or ``off``. Negative or malformed values are a ``ValueError``."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise ValueError("expected a duration such as 300 (seconds) or 5m, not a boolean")
        return None
    text = str(value).strip().lower()
    if text in ("", "0", "off", "false", "none"):
        return None
    unit = next((u for u in ("ms", "s", "m", "h", "d") if text.endswith(u)), "")
    try:
        seconds = float(text[: len(text) - len(unit)]) * _UNITS.get(unit, 1.0)
    except ValueError:
        raise ValueError(f"expected a duration such as 300 (seconds), 90s, 5m or 1h, got {value!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be >= 0 seconds, got {value!r}")
    return seconds or None


_VARIABLE_FOR_FIELD = {
    name: (field.validation_alias.choices[0] if isinstance(field.validation_alias, AliasChoices) else name)
    for name, field in Settings.model_fields.items()
}


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and ``overrides``), turning validation errors into ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            head = loc[0] if loc else "?"
            variable = _VARIABLE_FOR_FIELD.get(head, head)
            if len(loc) > 1:
                variable = f"{variable} ({'.'.join(loc[1:])})"
            shown = err.get("input")
            problems.append(f"{variable}={shown!r}: {err['msg']}")
        raise ConfigError("invalid precache setting: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
