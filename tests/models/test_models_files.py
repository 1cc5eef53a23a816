"""Model directories: round trips are exact, and damaged / foreign / newer directories are refused with
ModelFileError naming the problem. Loading baselines never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from precache.models import (
    FORMAT_VERSION,
    MarkovPredictor,
    ModelFileError,
    PPMPredictor,
    build_predictor,
    load_predictor,
)
from precache.models.base import write_npz
from precache.traces.model import Session

NAMES = ["popularity", "markov", "ppm", "sknn"]
HISTORIES = [[], ["/a"], ["/b", "/c"], ["/q", "/a", "/b"], ["/unknown"]]


def train_sessions() -> list[Session]:
    paths = [["/a", "/b", "/c"], ["/a", "/b", "/d"], ["/q", "/a", "/b", "/c"], ["/d", "/a"], ["/c", "/c", "/b"]]
    return [Session(str(i), "c", float(i), list(paths[i % len(paths)])) for i in range(60)]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    model = MarkovPredictor()
    model.fit(train_sessions())
    model.metrics["hr5"] = 0.5
    return model.save(tmp_path / "markov")


@pytest.mark.parametrize("name", NAMES)
def test_models_save_load_round_trip(tmp_path: Path, name: str) -> None:
    model = build_predictor(name)
    model.fit(train_sessions())
    model.save(tmp_path / name)
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["kind"] == name
    assert set(manifest) >= {"name", "created", "config", "metrics", "files"}
    assert all(len(digest) == 64 for digest in manifest["files"].values())
    loaded = load_predictor(tmp_path / name)
    assert type(loaded) is type(model)
    for history in HISTORIES:
        assert loaded.predict(history, 5) == model.predict(history, 5)


def test_models_manifest_keeps_metrics_and_config(saved: Path) -> None:
    loaded = load_predictor(saved)
    assert loaded.metrics == {"hr5": 0.5}
    ppm = PPMPredictor(max_order=2, escape=3.0, discount=0.25)
    ppm.fit(train_sessions())
    ppm.save(saved.parent / "ppm")
    back = load_predictor(saved.parent / "ppm")
    assert isinstance(back, PPMPredictor)
    assert (back.max_order, back.escape, back.discount) == (2, 3.0, 0.25)


def test_models_wrong_sha256_is_refused(saved: Path) -> None:
    vocab = saved / "vocabulary.json"
    data = json.loads(vocab.read_text())
    data["pages"][0], data["pages"][1] = data["pages"][1], data["pages"][0]
    vocab.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="corrupt or was modified"):
        load_predictor(saved)


def test_models_missing_file_is_refused(saved: Path) -> None:
    (saved / "counts.npz").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_predictor(saved)


def test_models_missing_manifest_or_directory_is_refused(saved: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_predictor(saved / "nope")
    (saved / "manifest.json").unlink()
    with pytest.raises(ModelFileError, match=r"manifest\.json is missing"):
        load_predictor(saved)


def test_models_newer_format_version_is_refused(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="newer than this precache supports"):
        load_predictor(saved)


def test_models_unknown_kind_and_wrong_class_are_refused(saved: Path) -> None:
    with pytest.raises(ModelFileError, match="not 'ppm'"):
        PPMPredictor.load(saved)
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["kind"] = "quantum"
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="unknown predictor 'quantum'"):
        load_predictor(saved)


def test_models_path_escape_in_manifest_is_refused(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"]["../evil.json"] = "0" * 64
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="bad file name"):
        load_predictor(saved)


def test_models_object_arrays_are_never_written(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="dtype object"):
        write_npz(tmp_path / "x.npz", {"bad": np.array([{"a": 1}], dtype=object)})


def test_models_loading_baselines_does_not_import_torch(saved: Path) -> None:
    code = (
        "import sys; from precache.models import load_predictor; "
        f"m = load_predictor({str(saved)!r}); m.predict(['/a'], 3); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
