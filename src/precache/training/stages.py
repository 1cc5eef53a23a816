"""Features → train → evaluate for each model name, on the latest held-out time slice.

Run inside the training worker process (never on a service's event loop). Each function writes the
candidate's model directory and returns what the gate needs: the candidate's score and, when a model is
active, the active model's score on the very same slice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from precache.defaults import CACHE_OPTIMIZER, PAGE_PREDICTOR
from precache.training.collect import Collected
from precache.training.request import TrainingConfig

Progress = Callable[[str], None]


def _predictor_options(cfg: TrainingConfig) -> dict[str, Any]:
    """``epochs`` / ``batchSize`` / ``attentionMaxSeconds`` go to the attention network, directly or in ``auto``."""
    attention = {k: v for k, v in (("epochs", cfg.epochs), ("batch_size", cfg.batch_size),
                                   ("max_seconds", cfg.attention_max_seconds)) if v is not None}
    if not attention:
        return {}
    if cfg.predictor == "attention":
        return attention
    if cfg.predictor == "auto":
        return {"attention_options": attention}
    return {}


def score_active(name: str, active_dir: Path | None, progress: Progress, score: Callable[[Any], float]
                 ) -> tuple[float | None, str, float]:
    """The active model's score on the candidate's slice: ``(score or None, note, seconds)``. An active model
    that no longer loads (tampered, missing) is not compared against; the note says so."""
    from precache.registry.files import ModelFileError, load_model_dir

    if active_dir is None:
        return None, "", 0.0
    progress(f"{name}: scoring the active model on the same slice")
    started = time.perf_counter()
    try:
        return score(load_model_dir(active_dir)), "", time.perf_counter() - started
    except (ModelFileError, ValueError) as exc:
        return None, f"the active model could not be scored: {exc}", time.perf_counter() - started


def train_page_predictor(data: Collected, cfg: TrainingConfig, out: Path, active_dir: Path | None,
                         progress: Progress) -> dict[str, Any]:
    from precache.evaluation import evaluate, time_split
    from precache.models.kinds import build_predictor

    split = time_split(data.sessions, test_fraction=cfg.test_fraction)
    test_transitions = sum(max(0, len(s.pages) - 1) for s in split.test)
    if not any(len(s.pages) > 1 for s in split.train) or test_transitions == 0:
        raise ValueError("not enough sessions with two pages or more to train and evaluate a page predictor")
    model = build_predictor(cfg.predictor, **_predictor_options(cfg))
    progress(f"page-predictor: training {cfg.predictor} on {len(split.train):,} sessions")
    started = time.perf_counter()
    model.fit(split.train, split.validation)
    fit_seconds = time.perf_counter() - started
    progress(f"page-predictor: evaluating on {len(split.test):,} held-out sessions")
    scores = evaluate(model, split.test, model.vocabulary_size, max_transitions=cfg.max_test_transitions)
    scores.fit_seconds = fit_seconds
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in scores.as_dict().items() if k != "model"}
    model.metrics.update(metrics)
    model.save(out)
    online = _online_settings(cfg, split, out, progress)
    if online is not None:
        metrics["online"] = {k: v for k, v in online.items() if k in ("merge", "validation_hr5", "reason")}
    active, note, active_seconds = score_active(
        PAGE_PREDICTOR, active_dir, progress,
        lambda m: evaluate(m, split.test, m.vocabulary_size, max_transitions=cfg.max_test_transitions).hr5)
    return {
        "metric": "HR@5", "candidate": scores.hr5, "active": active, "note": note, "metrics": metrics,
        "seconds": {"fit": fit_seconds, "evaluate": scores.predict_seconds, "score_active": active_seconds,
                    "online_settings": online.get("seconds", 0.0) if online else 0.0},
        "slice": {"train_sessions": len(split.train), "validation_sessions": len(split.validation),
                  "test_sessions": len(split.test), "test_transitions": scores.transitions},
    }


def _online_settings(cfg: TrainingConfig, split: Any, out: Path, progress: Progress) -> dict[str, Any] | None:
    """Choose the online layer's merge and calibration map on the validation slice and store them with the
    model (:mod:`precache.online.stored`); None when ``onlineSettings`` is off."""
    if not cfg.online_settings:
        return None
    from precache.models.kinds import build_predictor
    from precache.online.stored import choose_for_training, write_stored

    progress("page-predictor: choosing the online settings on the validation slice (a copy fit on train alone)")
    payload = choose_for_training(lambda: build_predictor(cfg.predictor, **_predictor_options(cfg)), split.train,
                                  split.validation, cfg.max_test_transitions)
    write_stored(out, payload)
    merge = payload.get("merge")
    progress(f"page-predictor: online settings {merge}" if merge else f"page-predictor: {payload.get('reason')}")
    return payload


def _horizon(times: Any) -> float:
    duration = float(times[-1] - times[0]) if len(times) else 0.0
    return max(60.0, duration / 20.0)


def train_cache_optimizer(data: Collected, cfg: TrainingConfig, out: Path, active_dir: Path | None,
                          progress: Progress) -> dict[str, Any]:
    from precache.models.optimizer.labels import build_dataset, trace_from_requests
    from precache.models.optimizer.model import OptimizerModel, decision_metrics
    from precache.models.optimizer.train import TrainConfig, train

    trace = trace_from_requests(data.requests)
    n = len(trace)
    start = int(n * (1.0 - cfg.test_fraction))
    if n < 100 or start <= 0 or start >= n:
        raise ValueError(f"{n} cacheable requests are too few to train and evaluate the cache optimizer")
    horizon = _horizon(trace.times)
    progress(f"cache-optimizer: features for {n:,} requests (horizon {horizon:.0f} s)")
    started = time.perf_counter()
    d_train = build_dataset(trace, 0, start, horizon=horizon)
    d_test = build_dataset(trace, start, n, horizon=horizon)
    features_seconds = time.perf_counter() - started
    progress(f"cache-optimizer: training on {len(d_train.should_cache):,} rows")
    started = time.perf_counter()
    train(d_train, out, TrainConfig(n_estimators=cfg.optimizer_trees, seed=0))
    fit_seconds = time.perf_counter() - started
    progress("cache-optimizer: evaluating on the held-out slice")
    started = time.perf_counter()
    quality = decision_metrics(OptimizerModel.load(out), d_test)
    candidate = float(quality.get("should_cache", {}).get("accuracy", math.nan))
    evaluate_seconds = time.perf_counter() - started
    progress("cache-optimizer: choosing the shipped policy on the held-out slice")
    from precache.models.optimizer.shipped import choose_policy, record_choice

    shipped = choose_policy(OptimizerModel.load(out), trace, start)
    record_choice(out, shipped)

    def accuracy(model: Any) -> float:
        # the active model answers "reused within *its* horizon": label the same requests in its terms
        same = d_test if model.horizon == horizon else build_dataset(trace, start, n, horizon=model.horizon)
        return float(decision_metrics(model, same).get("should_cache", {}).get("accuracy", math.nan))

    active, note, active_seconds = score_active(CACHE_OPTIMIZER, active_dir, progress, accuracy)
    return {
        "metric": "decision accuracy", "candidate": candidate, "active": active, "note": note,
        "metrics": {"test": quality}, "shipped": shipped,
        "seconds": {"features": features_seconds, "fit": fit_seconds, "evaluate": evaluate_seconds,
                    "score_active": active_seconds},
        "slice": {"train_requests": start, "test_requests": n - start, "test_rows": len(d_test.should_cache),
                  "horizon_s": horizon},
    }


TRAINERS: dict[str, Callable[[Collected, TrainingConfig, Path, Path | None, Progress], dict[str, Any]]] = {
    PAGE_PREDICTOR: train_page_predictor,
    CACHE_OPTIMIZER: train_cache_optimizer,
}
