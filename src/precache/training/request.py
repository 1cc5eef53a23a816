"""What a training run is asked to do, in a JSON form the CLI, the scheduler and the HTTP API share.

The ``config`` names are the seed API's (``epochs``, ``batchSize``, ``targetAccuracy``); ``epochs`` and
``batchSize`` apply to the attention component of the ``auto`` page predictor. The rest is what our models
need: which predictor the page-predictor slot trains, the gate's tolerance, the test slice, the timeout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from precache.defaults import MODEL_NAMES, PAGE_PREDICTOR, SESSION_GAP_SECONDS

MODEL_TYPES: tuple[str, ...] = (*MODEL_NAMES, "all")

# seed/API name -> our field name
_CONFIG_NAMES = {
    "epochs": "epochs", "batchSize": "batch_size", "targetAccuracy": "target_accuracy",
    "predictor": "predictor", "tolerance": "tolerance", "testFraction": "test_fraction",
    "maxTestTransitions": "max_test_transitions", "optimizerTrees": "optimizer_trees",
    "timeoutSeconds": "timeout_seconds", "attentionMaxSeconds": "attention_max_seconds",
    "onlineSettings": "online_settings",
}


@dataclass(slots=True)
class TrainingConfig:
    """Knobs of one run. ``target_accuracy`` None: the gate only compares against the active model."""

    epochs: int | None = None
    batch_size: int | None = None
    target_accuracy: float | None = None
    predictor: str = "auto"
    tolerance: float = 0.01
    test_fraction: float = 0.2
    max_test_transitions: int | None = None
    optimizer_trees: int = 80
    timeout_seconds: float = 3600.0
    attention_max_seconds: float | None = None
    online_settings: bool = True  # choose the online layer's settings on validation, store them with the model

    def __post_init__(self) -> None:
        if self.target_accuracy is not None and not 0.0 <= self.target_accuracy <= 1.0:
            raise ValueError(f"targetAccuracy must be in [0, 1], got {self.target_accuracy}")
        if not 0.0 <= self.tolerance <= 1.0:
            raise ValueError(f"tolerance must be in [0, 1], got {self.tolerance}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"testFraction must be in (0, 1), got {self.test_fraction}")
        for name in ("epochs", "batch_size", "max_test_transitions"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.optimizer_trees < 1 or self.timeout_seconds <= 0:
            raise ValueError("optimizerTrees must be >= 1 and timeoutSeconds > 0")
        if self.attention_max_seconds is not None and self.attention_max_seconds <= 0:
            raise ValueError("attentionMaxSeconds must be > 0")
        if not isinstance(self.online_settings, bool):
            raise ValueError(f"onlineSettings must be true or false, got {self.online_settings!r}")

    @classmethod
    def from_api(cls, data: dict[str, Any] | None) -> TrainingConfig:
        """From the API's camelCase object; unknown names are an error (a typo must not be ignored)."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(_CONFIG_NAMES))
        if unknown:
            raise ValueError(f"unknown training config {', '.join(unknown)}; known: {', '.join(_CONFIG_NAMES)}")
        return cls(**{_CONFIG_NAMES[k]: v for k, v in data.items()})

    def as_api(self) -> dict[str, Any]:
        ours = asdict(self)
        return {api: ours[name] for api, name in _CONFIG_NAMES.items()}


@dataclass(slots=True)
class TraceSource:
    """A log or session file read through :mod:`precache.traces` with the options every command takes:
    ``options`` holds the other :class:`~precache.traces.options.ReadOptions` fields (log format, pattern,
    time format, bots ...) as JSON, so the worker process reads the trace exactly as the CLI was told."""

    path: str
    format: str = "auto"
    gap_seconds: float = SESSION_GAP_SECONDS
    keep_query: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def read_options(self) -> Any:
        """The :class:`precache.traces.options.ReadOptions` to read this source with (bad ones raise)."""
        from precache.traces.options import ReadOptions

        return ReadOptions(**{**self.options, "format": self.format})


@dataclass(slots=True)
class TrainRequest:
    """One run: which models, from which data (trace files and/or collected event files), with what config."""

    model_type: str = PAGE_PREDICTOR  # one of MODEL_TYPES (checked below)
    traces: list[TraceSource] = field(default_factory=list)
    events_dir: str | None = None
    config: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"unknown modelType {self.model_type!r}; known: {', '.join(MODEL_TYPES)}")
        if not self.traces and not self.events_dir:
            raise ValueError("a training run needs a trace file or an events directory")

    @property
    def names(self) -> list[str]:
        return list(MODEL_NAMES) if self.model_type == "all" else [self.model_type]

    def to_json(self) -> dict[str, Any]:
        return {"modelType": self.model_type, "traces": [asdict(t) for t in self.traces],
                "eventsDir": self.events_dir, "config": self.config.as_api()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainRequest:
        if not isinstance(data, dict):
            raise ValueError("a training request must be a JSON object")
        traces = [TraceSource(**t) for t in data.get("traces") or []]
        return cls(model_type=data.get("modelType", PAGE_PREDICTOR), traces=traces,
                   events_dir=data.get("eventsDir"), config=TrainingConfig.from_api(data.get("config")))
