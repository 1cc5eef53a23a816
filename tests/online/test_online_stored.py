"""Online settings stored with the model: the training pipeline chooses and writes them (``online.json``,
sha256 in the manifest), the service's online layer follows the active model's, ``ML_ONLINE_*`` overrides."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from pathlib import Path

import pytest

from precache.config import load_settings
from precache.models.files import ModelFileError
from precache.online import MergeParams
from precache.online.settings import load_online_settings
from precache.online.stored import ONLINE_FILE, read_stored, resolve, write_stored
from precache.registry import ModelRegistry
from precache.registry.files import verify_model_dir
from precache.serve.settings import load_serve_settings
from precache.serve.state import build_state
from precache.training import TraceSource, TrainingConfig, TrainRequest, run_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_harness import train_model


def drifting_seq(path: Path, n: int = 1500) -> Path:
    """MSNBC-style sessions (page numbers): after 1 comes 2 early on, 3 later (a site that changes)."""
    rng = random.Random(0)
    lines = []
    for i in range(n):
        after = "2" if rng.random() < (0.9 if i < n * 0.6 else 0.1) else "3"
        lines.append(" ".join(["1", after, str(rng.choice([4, 5, 6])), "7"]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model version registered by the real training pipeline (worker process, gate, registry)."""
    root = tmp_path_factory.mktemp("registry")
    trace = drifting_seq(root / "drift.seq")
    registry = ModelRegistry(root / "models", root / "backups")
    request = TrainRequest("page-predictor", [TraceSource(str(trace))],
                           config=TrainingConfig(predictor="markov-count"))
    (outcome,) = run_pipeline(request, registry).outcomes
    assert outcome.status == "activated", outcome
    info = registry.active("page-predictor")
    assert info is not None
    return info.path


def test_a_trained_models_manifest_carries_the_online_settings(trained: Path) -> None:
    manifest = verify_model_dir(trained)  # the registry's check: online.json's sha256 included
    assert ONLINE_FILE in manifest["files"]
    payload = json.loads((trained / ONLINE_FILE).read_text())
    assert payload["format"] == 1 and payload["merge"]["weight"] > 0  # the drift makes live counts worth it
    assert payload["validation_transitions"] > 100 and payload["calibration"]["method"] in ("none", "platt", "isotonic")
    stored = read_stored(trained)
    assert stored == MergeParams.from_dict(payload["merge"])
    registered = json.loads((trained / "registry.json").read_text())
    assert registered["metrics"]["online"]["merge"] == payload["merge"]


def test_a_tampered_online_file_is_refused(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    payload = json.loads((copy / ONLINE_FILE).read_text())
    payload["merge"]["weight"] = 1.0
    (copy / ONLINE_FILE).write_text(json.dumps(payload))
    with pytest.raises(ModelFileError, match=r"online\.json"):
        verify_model_dir(copy)
    with pytest.raises(ModelFileError):
        read_stored(copy, verified=True)


def _state(monkeypatch: pytest.MonkeyPatch, model_dir: Path, **env: str) -> object:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never contacted: nothing is started here
    monkeypatch.setenv("MODEL_STORAGE_PATH", str(model_dir.parent / "registry-unused"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    state = build_state(load_settings(), load_serve_settings())
    state.models.load(model_dir)  # the service's own load path: verified, installed, listeners told
    return state


def test_the_service_follows_the_active_models_settings_and_env_overrides_win(
        trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = read_stored(trained)
    assert stored is not None
    state = _state(monkeypatch, trained)  # by default the layer learns its own map: the stored one is not used
    assert state.online is not None and state.online.params == dataclasses.replace(  # type: ignore[attr-defined]
        stored, calibration=None)
    monkeypatch.setenv("ML_ONLINE_CALIBRATE", "stored")
    assert _state(monkeypatch, trained).online.params == stored  # type: ignore[attr-defined]

    monkeypatch.setenv("ML_ONLINE_WEIGHT", "0.05")  # an explicit override wins; the map was fit for the
    state = _state(monkeypatch, trained)  # stored merge, so it is dropped
    params = state.online.params  # type: ignore[attr-defined]
    assert params.weight == 0.05 and params.evidence == stored.evidence and params.half_life == stored.half_life
    assert params.calibration is None
    monkeypatch.delenv("ML_ONLINE_WEIGHT")

    old = train_model(tmp_path / "old-ppm")  # a model saved before settings were stored: the env defaults
    assert read_stored(old) is None
    state = _state(monkeypatch, old)
    assert state.online.params == load_online_settings().merge_params()  # type: ignore[attr-defined]


def test_resolve_names_where_each_value_came_from(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stored = MergeParams(0.35, 25.0, 600.0, ("platt", (0.9, -0.1)))
    assert resolve(stored, load_online_settings()) == (dataclasses.replace(stored, calibration=None), {
        "weight": "model", "evidence": "model", "half_life": "model", "calibration": "online"})
    monkeypatch.setenv("ML_ONLINE_CALIBRATE", "stored")
    assert resolve(stored, load_online_settings()) == (stored, {"weight": "model", "evidence": "model",
                                                                "half_life": "model", "calibration": "model"})
    monkeypatch.setenv("ML_ONLINE_HALF_LIFE_SECONDS", "0")
    params, source = resolve(stored, load_online_settings())
    assert params == MergeParams(0.35, 25.0, None, None) and source["half_life"] == "env"
    monkeypatch.delenv("ML_ONLINE_HALF_LIFE_SECONDS")
    monkeypatch.setenv("ML_ONLINE_CALIBRATE", "false")  # the off switch of any map
    params, source = resolve(stored, load_online_settings())
    assert params == MergeParams(0.35, 25.0, 600.0, None) and source["weight"] == "model"
    assert source["calibration"] == "none"
    monkeypatch.delenv("ML_ONLINE_CALIBRATE")
    monkeypatch.setenv("ML_ONLINE_HALF_LIFE_SECONDS", "0")
    params, source = resolve(None, load_online_settings())
    assert params == MergeParams(0.5, 5.0, None) and source == {"weight": "default", "evidence": "default",
                                                                 "half_life": "env", "calibration": "online"}
    model = train_model(tmp_path / "ppm")
    write_stored(model, {"format": 1, "merge": None, "reason": "nothing to walk"})
    assert read_stored(model) is None and ONLINE_FILE in verify_model_dir(model)["files"]


def test_the_library_stack_uses_the_models_stored_settings(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from precache.stack import build_stack
    from precache.warming.resolver import MappingResolver

    stack = build_stack(load_settings(), model_dir=trained, resolver=MappingResolver({}), l2=False)
    stored = read_stored(trained)
    assert stored is not None and stack.online is not None  # the stored merge; the map is learned online
    assert stack.online.params == dataclasses.replace(stored, calibration=None)


def test_online_settings_can_be_switched_off_for_a_training_run(tmp_path: Path) -> None:
    from precache.serve.schemas import TrainConfigIn

    api = {k: v for k, v in TrainConfigIn(onlineSettings=False, predictor="markov-count").model_dump().items()
           if v is not None}
    config = TrainingConfig.from_api(api)
    assert config.online_settings is False and TrainingConfig.from_api(config.as_api()) == config
    with pytest.raises(ValueError, match="onlineSettings"):
        TrainingConfig(online_settings="yes")  # type: ignore[arg-type]
    registry = ModelRegistry(tmp_path / "models", tmp_path / "backups")
    request = TrainRequest("page-predictor", [TraceSource(str(drifting_seq(tmp_path / "d.seq", 600)))], config=config)
    (outcome,) = run_pipeline(request, registry).outcomes
    info = registry.get("page-predictor", outcome.version or "")
    assert ONLINE_FILE not in verify_model_dir(info.path)["files"] and read_stored(info.path) is None
