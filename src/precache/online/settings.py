"""The online layer's settings, read from ``ML_ONLINE_*`` environment variables (or given in code).

| variable | default | meaning |
|---|---|---|
| ``ML_ONLINE_ENABLED`` | true | the off switch (``ML_ENABLED=false`` switches the online layer off too) |
| ``ML_ONLINE_HALF_LIFE_SECONDS`` | 86400 | time decay of the live counts; 0 = no decay |
| ``ML_ONLINE_WEIGHT`` | 0.5 | the most the live counts may take of an answer (0..1) |
| ``ML_ONLINE_EVIDENCE`` | 5 | decayed row count at which the live share is half of the weight |
| ``ML_ONLINE_CALIBRATE`` | online | how online answers are calibrated: ``online`` (a map learned from the answers' |
|  |  | outcomes on this replica: :class:`precache.online.calibration.OnlineCalibrator`; ``true`` means this too), |
|  |  | ``stored`` (the map the training pipeline fit on its validation walk), ``false`` (unmapped) |
| ``ML_ONLINE_MAX_CONTEXTS`` | 100000 | contexts kept (least recently updated evicted) |
| ``ML_ONLINE_MAX_SUCCESSORS`` | 64 | successors kept per context (the lightest evicted) |
| ``ML_ONLINE_MAX_PER_SESSION`` | 50 | transitions one session may teach |
| ``ML_ONLINE_MAX_PER_CLIENT`` | 200 | transitions one client may teach per window |
| ``ML_ONLINE_CLIENT_WINDOW_SECONDS`` | 3600 | the per-client window (repeats of a pair in it count once) |
| ``ML_ONLINE_FLUSH_MS`` | 100 | how often a replica sends its batched increments to Redis |
| ``ML_ONLINE_REFRESH_MS`` | 250 | how old a replica's copy of a Redis row may be before a read refreshes it |
| ``ML_ONLINE_REDIS_PREFIX`` | ``precache:online:`` | key prefix in Redis |
| ``ML_ONLINE_DRIFT_RETRAIN`` | true | retrain when live HR@5 stays low (needs ``PRECACHE_TRAINING_EVENTS_DIR``) |
| ``ML_ONLINE_DRIFT_MARGIN`` | 0.05 | how far below the active model's held-out HR@5 counts as drift |
| ``ML_ONLINE_DRIFT_WINDOW`` | 2000 | scored predictions the live HR@5 is measured over |
| ``ML_ONLINE_DRIFT_MIN_INTERVAL_SECONDS`` | 21600 | at most one drift retrain per this many seconds |

Weight, evidence and half-life (and the ``stored`` calibration map) are chosen by the training pipeline on its
validation slice and stored with the model; the service uses the active model's values, and a weight, evidence or
half-life variable *set* in the environment overrides them (:mod:`precache.online.stored`; the defaults
above apply to a model that stores none). ``precache evaluate --protocol prequential`` prints the values it
chooses for your own log.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from precache.config import ConfigError, Settings
from precache.online.calibration import OnlineCalibrator
from precache.online.guards import ContributionGuard
from precache.online.merge import MergeParams

CALIBRATE_MODES = ("online", "stored", "false")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", "none"}


def _env(name: str, field: str) -> AliasChoices:
    return AliasChoices(name, field)


class OnlineSettings(BaseSettings):
    """See the module doc; every field's environment variable is its first alias."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", validate_default=True)

    enabled: bool = Field(True, validation_alias=_env("ML_ONLINE_ENABLED", "enabled"))
    half_life_seconds: float = Field(86_400.0, ge=0, validation_alias=_env("ML_ONLINE_HALF_LIFE_SECONDS",
                                                                            "half_life_seconds"))
    weight: float = Field(0.5, ge=0, le=1, validation_alias=_env("ML_ONLINE_WEIGHT", "weight"))
    evidence: float = Field(5.0, gt=0, validation_alias=_env("ML_ONLINE_EVIDENCE", "evidence"))
    calibrate: Literal["online", "stored", "false"] = Field("online", validation_alias=_env("ML_ONLINE_CALIBRATE",
                                                                                          "calibrate"))
    max_contexts: int = Field(100_000, ge=1, validation_alias=_env("ML_ONLINE_MAX_CONTEXTS", "max_contexts"))
    max_successors: int = Field(64, ge=1, validation_alias=_env("ML_ONLINE_MAX_SUCCESSORS", "max_successors"))
    max_per_session: int = Field(50, ge=1, validation_alias=_env("ML_ONLINE_MAX_PER_SESSION", "max_per_session"))
    max_per_client: int = Field(200, ge=1, validation_alias=_env("ML_ONLINE_MAX_PER_CLIENT", "max_per_client"))
    client_window_seconds: float = Field(3600.0, gt=0, validation_alias=_env("ML_ONLINE_CLIENT_WINDOW_SECONDS",
                                                                              "client_window_seconds"))
    flush_ms: float = Field(100.0, gt=0, validation_alias=_env("ML_ONLINE_FLUSH_MS", "flush_ms"))
    refresh_ms: float = Field(250.0, ge=0, validation_alias=_env("ML_ONLINE_REFRESH_MS", "refresh_ms"))
    drift_retrain: bool = Field(True, validation_alias=_env("ML_ONLINE_DRIFT_RETRAIN", "drift_retrain"))
    drift_margin: float = Field(0.05, ge=0, lt=1, validation_alias=_env("ML_ONLINE_DRIFT_MARGIN", "drift_margin"))
    drift_window: int = Field(2000, ge=1, validation_alias=_env("ML_ONLINE_DRIFT_WINDOW", "drift_window"))
    drift_min_interval_seconds: float = Field(21_600.0, ge=0, validation_alias=_env(
        "ML_ONLINE_DRIFT_MIN_INTERVAL_SECONDS", "drift_min_interval_seconds"))
    redis_prefix: str = Field("precache:online:", max_length=64,
                              validation_alias=_env("ML_ONLINE_REDIS_PREFIX", "redis_prefix"))

    @field_validator("calibrate", mode="before")
    @classmethod
    def _calibrate_mode(cls, value: Any) -> Any:
        """``true`` (the default way to calibrate) is ``online``; ``false``/``0``/``off`` is ``false``."""
        text = str(value).strip().lower()
        return "online" if text in _TRUE else "false" if text in _FALSE else text

    def calibrator(self) -> OnlineCalibrator | None:
        """The online calibrator a layer runs (``ML_ONLINE_CALIBRATE=online``), refit off the request path."""
        return OnlineCalibrator(inline=False) if self.calibrate == "online" else None

    @property
    def half_life(self) -> float | None:
        return self.half_life_seconds or None

    def merge_params(self) -> MergeParams:
        return MergeParams(self.weight, self.evidence, self.half_life)

    def guard(self) -> ContributionGuard:
        from precache.traces.bots import BotFilter

        try:
            bots = BotFilter()
        except Exception:  # a declared dependency; without it, no filter
            bots = None
        return ContributionGuard(self.max_per_session, self.max_per_client, self.client_window_seconds,
                                 bot_filter=bots)

    def active(self, settings: Settings) -> bool:
        """On only when both switches are: ``ML_ENABLED`` and ``ML_ONLINE_ENABLED``."""
        return settings.ml_enabled and self.enabled


def load_online_settings(**overrides: object) -> OnlineSettings:
    try:
        return OnlineSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            info = OnlineSettings.model_fields.get(field)
            alias = info.validation_alias if info is not None else None
            name = alias.choices[0] if isinstance(alias, AliasChoices) else field
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise ConfigError("invalid online setting: " + "; ".join(problems)) from None
