"""The service's own settings (limits, retention, key names), read from ``PRECACHE_*`` environment variables.

Why a separate group from :class:`precache.config.Settings`: these only matter to ``precache serve`` and its
replicas, and keeping them here lets the service evolve its limits without touching the shared settings.
The shared ones (``REDIS_URL``, ``PRECACHE_API_TOKEN``, ``ML_TRAINING_API_KEY``, ``ML_ENABLED``,
``MODEL_STORAGE_PATH``, ``PRECACHE_SESSION_GAP_SECONDS``) are still read from ``precache.config``.

Retention (privacy): a session history lives ``PRECACHE_SESSION_GAP_SECONDS`` after its last page; the
per-key access records behind ``type: "cache"`` and the access-event stream are kept at most
``PRECACHE_EVENT_RETENTION_SECONDS`` (and the stream at most ``PRECACHE_EVENT_STREAM_MAXLEN`` entries).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from precache.config import ConfigError


def _env(name: str, field: str) -> AliasChoices:
    return AliasChoices(name, field)


class ServeSettings(BaseSettings):
    """Limits and names of the HTTP service. Every field has an environment variable (its first alias)."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", validate_default=True)

    insecure_local: bool = Field(False, validation_alias=_env("PRECACHE_INSECURE_LOCAL", "insecure_local"))
    model_dir: Path | None = Field(None, validation_alias=_env("PRECACHE_MODEL_DIR", "model_dir"))
    optimizer_dir: Path | None = Field(None, validation_alias=_env("PRECACHE_OPTIMIZER_DIR", "optimizer_dir"))
    redis_cluster: bool = Field(False, validation_alias=_env("PRECACHE_REDIS_CLUSTER", "redis_cluster"))
    redis_prefix: str = Field("precache:", max_length=64, validation_alias=_env("PRECACHE_REDIS_PREFIX",
                                                                              "redis_prefix"))
    redis_timeout_seconds: float = Field(0.25, gt=0, validation_alias=_env("PRECACHE_REDIS_TIMEOUT_SECONDS",
                                                                          "redis_timeout_seconds"))
    max_body_bytes: int = Field(1 << 20, ge=1024, validation_alias=_env("PRECACHE_MAX_BODY_BYTES",
                                                                       "max_body_bytes"))
    max_history: int = Field(50, ge=1, le=1000, validation_alias=_env("PRECACHE_MAX_HISTORY", "max_history"))
    fallback_sessions: int = Field(100_000, ge=1, validation_alias=_env("PRECACHE_FALLBACK_SESSIONS",
                                                                       "fallback_sessions"))
    events_per_second: float = Field(2000.0, gt=0, validation_alias=_env("PRECACHE_EVENTS_PER_SECOND",
                                                                        "events_per_second"))
    events_burst: int = Field(10_000, ge=1, validation_alias=_env("PRECACHE_EVENTS_BURST", "events_burst"))
    event_stream: str = Field("precache:events", min_length=1, max_length=128,
                              validation_alias=_env("PRECACHE_EVENT_STREAM", "event_stream"))
    event_stream_maxlen: int = Field(1_000_000, ge=1, validation_alias=_env("PRECACHE_EVENT_STREAM_MAXLEN",
                                                                           "event_stream_maxlen"))
    event_retention_seconds: float = Field(7 * 86400.0, gt=0, validation_alias=_env(
        "PRECACHE_EVENT_RETENTION_SECONDS", "event_retention_seconds"))
    client_hash_key: str | None = Field(None, validation_alias=_env("PRECACHE_CLIENT_HASH_KEY", "client_hash_key"))
    training_data_dir: Path | None = Field(None, validation_alias=_env("PRECACHE_TRAINING_DATA_DIR",
                                                                       "training_data_dir"))
    training_events_dir: Path | None = Field(None, validation_alias=_env("PRECACHE_TRAINING_EVENTS_DIR",
                                                                         "training_events_dir"))
    training_job_retention_seconds: float = Field(7 * 86400.0, gt=0, validation_alias=_env(
        "PRECACHE_TRAINING_JOB_RETENTION_SECONDS", "training_job_retention_seconds"))
    registry_poll_seconds: float = Field(2.0, gt=0, validation_alias=_env("PRECACHE_REGISTRY_POLL_SECONDS",
                                                                         "registry_poll_seconds"))
    # freeze the startup heap and models out of full collections (precache.serve.heap); off only to measure it
    gc_freeze: bool = Field(True, validation_alias=_env("PRECACHE_GC_FREEZE", "gc_freeze"))
    prediction_cache_size: int = Field(10_000, ge=0, validation_alias=_env("PRECACHE_PREDICTION_CACHE_SIZE",
                                                                          "prediction_cache_size"))
    # Edge inference (issue 19): forward page predictions to the Cloudflare Worker, local fallback.
    edge_inference_url: str | None = Field(None, pattern=r"^https?://", validation_alias=_env(
        "ML_EDGE_INFERENCE_URL", "edge_inference_url"))
    edge_inference_timeout_ms: float = Field(50.0, gt=0, le=10_000, validation_alias=_env(
        "ML_EDGE_INFERENCE_TIMEOUT_MS", "edge_inference_timeout_ms"))
    # a request's headers must be complete this long after its first byte (slowloris), else 408 and closed
    header_timeout_seconds: float = Field(10.0, gt=0, le=300, validation_alias=_env("PRECACHE_HEADER_TIMEOUT_SECONDS",
                                                                                     "header_timeout_seconds"))
    # GET /metrics: a bearer token of its own for Prometheus (the API token also works); unset: the API token
    metrics_token: str | None = Field(None, min_length=16, validation_alias=_env("PRECACHE_METRICS_TOKEN",
                                                                               "metrics_token"))
    edge_inference_token: str | None = Field(None, validation_alias=_env("ML_EDGE_INFERENCE_TOKEN",
                                                                         "edge_inference_token"))
    # peers (addresses or CIDR blocks, comma-separated) whose X-Forwarded-For and User-Agent name the visitor
    # (precache.serve.visitor); empty: no forwarded header is believed
    trusted_proxies: str = Field("", max_length=4096, validation_alias=_env("PRECACHE_TRUSTED_PROXIES",
                                                                          "trusted_proxies"))

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        from precache.serve.visitor import parse_networks

        parse_networks(value)  # raises ValueError naming the bad entry
        return value


def serve_env_names() -> set[str]:
    """Every environment variable :class:`ServeSettings` reads."""
    names = set()
    for field in ServeSettings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.add(str(alias.choices[0]))
    return names


def load_serve_settings(**overrides: object) -> ServeSettings:
    """Build the service settings, turning validation errors into one :class:`ConfigError` line."""
    try:
        return ServeSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}={e.get('input')!r}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid precache serve setting: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_serve_settings() -> ServeSettings:
    return load_serve_settings()
