"""Model files tried as an attacker and an unlucky operator would (issue 9, "Model files").

Every finding of the issue is reproduced here first, then the rule that covers it: every kind reads its
files through one verified loader, so a file the manifest does not list is refused; every parse failure
is a ModelFileError; vocabulary, network and calibration must agree at load time; a relabelled directory
is refused; and a running engine keeps serving its previous model when a reload fails. A fuzz test then
damages directories of every kind at random and asserts each load either succeeds and predicts or
raises ModelFileError.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import random
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from conftest import hub_sessions
from precache.inference import InferenceEngine
from precache.models import ModelFileError, Prediction, build_predictor, load_predictor, register_predictor
from precache.models.auto import AutoPredictor
from precache.models.base import PagePredictorBase, write_json
from precache.models.combine import Gate
from precache.models.files import ModelFiles
from precache.traces.model import Session

KINDS = ["popularity", "markov", "ppm", "sknn", "attention", "auto"]
HISTORIES = [[], ["/hub"], ["/a1", "/hub"], ["/entry0", "/a2", "/hub"], ["/never-seen"]]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small saved model of every kind; auto blends attention and Markov through a learned gate
    and an isotonic map, so its load checks all run."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("fault-models")
    sessions = hub_sessions(1200)
    train, validation = sessions[:1000], sessions[1000:]
    dirs: dict[str, Path] = {}
    for kind in ("popularity", "markov", "ppm", "sknn"):
        model = build_predictor(kind)
        model.fit(train)
        dirs[kind] = model.save(root / kind)
    attention = build_predictor(
        "attention", epochs=2, batch_size=64, d_model=16, max_len=8, lr=5e-3, dropout=0.0, threads=1
    )
    attention.fit(train, validation)
    dirs["attention"] = attention.save(root / "attention")
    auto = AutoPredictor()
    auto.components = [load_predictor(dirs["attention"]), load_predictor(dirs["markov"])]
    auto.gate = Gate(np.zeros((8, 2)), np.zeros(8), np.ones(8))
    auto.choice, auto.fitted = "gate(attention+markov)", True
    auto.calibration_map = ("isotonic", ([0.0, 0.5, 1.0], [0.0, 0.4, 0.9]))
    dirs["auto"] = auto.save(root / "auto")
    return dirs


def read_vocabulary(directory: Path) -> Any:
    """An attention directory keeps its vocabulary gzipped (vocabulary.json.gz); baselines in plain JSON."""
    packed = directory / "vocabulary.json.gz"
    if packed.exists():
        return json.loads(gzip.decompress(packed.read_bytes()))
    return json.loads((directory / "vocabulary.json").read_text())


def write_vocabulary(directory: Path, vocabulary: Any) -> str:
    packed = directory / "vocabulary.json.gz"
    if packed.exists():
        packed.write_bytes(gzip.compress(json.dumps(vocabulary).encode()))
        return packed.name
    (directory / "vocabulary.json").write_text(json.dumps(vocabulary))
    return "vocabulary.json"


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_manifest(directory: Path, **changes: Any) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.update(changes)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def resign(directory: Path, name: str) -> None:
    """Update the manifest's sha256 of ``name``: what an operator 'fixing' a checksum error would do."""
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))


def flip_onnx_weight(path: Path) -> None:
    """Flip one bit in the weights near the end of the graph, where the protobuf stays parseable."""
    import onnxruntime as ort

    data = path.read_bytes()
    for position in range(len(data) - 64, 0, -997):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        try:
            ort.InferenceSession(bytes(flipped), providers=["CPUExecutionProvider"])
        except Exception:
            continue
        path.write_bytes(bytes(flipped))
        return
    raise AssertionError("no parseable single-bit flip found")


def assert_predicts(model: Any) -> None:
    for ranked in model.predict_batch(HISTORIES, 5):
        assert isinstance(ranked, list) and len(ranked) <= 5
        for page, probability in ranked:
            assert isinstance(page, str) and 0.0 <= probability <= 1.0 + 1e-6


# -- finding 1: an attention manifest listing no files skipped every sha256 check ----------------------
def test_manifest_listing_no_files_is_refused_and_engine_keeps_its_model(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    bad = copy_model(model_dirs["attention"], tmp_path / "attention")
    edit_manifest(bad, files={})
    vocabulary = read_vocabulary(bad)
    vocabulary["pages"][0], vocabulary["pages"][1] = vocabulary["pages"][1], vocabulary["pages"][0]
    write_vocabulary(bad, vocabulary)
    flip_onnx_weight(bad / "model.onnx")
    with pytest.raises(ModelFileError, match="lists none"):
        load_predictor(bad)
    engine = InferenceEngine.load(model_dirs["attention"])
    before, model = engine.predict(["/a1", "/hub"], 3), engine.model
    with pytest.raises(ModelFileError):
        engine.reload(bad)
    assert engine.model is model and engine.predict(["/a1", "/hub"], 3) == before


@pytest.mark.parametrize("kind", KINDS)
def test_every_file_a_kind_reads_must_be_listed(model_dirs: dict[str, Path], tmp_path: Path, kind: str) -> None:
    listed = json.loads((model_dirs[kind] / "manifest.json").read_text())["files"]
    for name in listed:
        bad = copy_model(model_dirs[kind], tmp_path / f"{kind}-{name}")
        edit_manifest(bad, files={n: d for n, d in listed.items() if n != name})
        with pytest.raises(ModelFileError, match=f"does not list {name}|lists none"):
            load_predictor(bad)


def test_a_file_changed_after_the_manifest_check_is_caught_when_read(model_dirs: dict[str, Path]) -> None:
    """The readers check the sha256 of the bytes they parse, not only what read_manifest saw."""
    from precache.models.files import open_model_dir

    files = open_model_dir(model_dirs["ppm"])
    tampered = ModelFiles(files.root, {**files.manifest, "files": {**files.listed, "counts.npz": "0" * 64}})
    with pytest.raises(ModelFileError, match="corrupt or was modified"):
        tampered.read_npz("counts.npz")


# -- finding 2: a shortened vocabulary with its sha256 updated loaded, then every predict raised ---------
def test_shortened_vocabulary_is_refused_at_load_and_reload(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    bad = copy_model(model_dirs["attention"], tmp_path / "short")
    vocabulary = read_vocabulary(bad)
    vocabulary["pages"], vocabulary["counts"] = vocabulary["pages"][:-1], vocabulary["counts"][:-1]
    resign(bad, write_vocabulary(bad, vocabulary))
    with pytest.raises(ModelFileError, match="does not fit the vocabulary"):
        load_predictor(bad)
    engine = InferenceEngine.load(model_dirs["attention"])
    before = engine.predict([], 3)
    with pytest.raises(ModelFileError):
        engine.reload(bad)
    assert engine.predict([], 3) == before  # the broadcast error came on the empty-history path


@pytest.mark.parametrize("kind", ["popularity", "markov", "ppm", "sknn"])
def test_baselines_refuse_a_shortened_vocabulary(model_dirs: dict[str, Path], tmp_path: Path, kind: str) -> None:
    bad = copy_model(model_dirs[kind], tmp_path / kind)
    vocabulary = json.loads((bad / "vocabulary.json").read_text())
    vocabulary["pages"], vocabulary["counts"] = vocabulary["pages"][:-1], vocabulary["counts"][:-1]
    (bad / "vocabulary.json").write_text(json.dumps(vocabulary))
    resign(bad, "vocabulary.json")
    with pytest.raises(ModelFileError, match="vocabulary"):
        load_predictor(bad)


@pytest.mark.parametrize(("meta", "match"), [
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_len": 0}, "max_len"),
    ({"attention_format": 99}, "newer"),
])
def test_attention_description_must_fit(
    model_dirs: dict[str, Path], tmp_path: Path, meta: dict[str, Any], match: str
) -> None:
    bad = copy_model(model_dirs["attention"], tmp_path / "meta")
    data = json.loads((bad / "attention.json").read_text())
    (bad / "attention.json").write_text(json.dumps({**data, **meta}))
    resign(bad, "attention.json")
    with pytest.raises(ModelFileError, match=match):
        load_predictor(bad)


@pytest.mark.parametrize(("change", "match"), [
    ({"gate": {"theta": [[0.0, 0.0]], "mean": [0.0], "std": [1.0]}}, "gate"),
    ({"calibration": {"method": "isotonic", "params": [[0.0, 1.0], [0.0]]}}, "isotonic"),
    ({"calibration": {"method": "isotonic", "params": [[0.0, 1.0], [0.0, 7.0]]}}, "isotonic"),
    ({"calibration": {"method": "platt", "params": [1.0]}}, "calibration"),
    ({"gate": None, "weight": 3.0}, "blend weight"),
])
def test_auto_calibration_and_gate_must_fit_its_components(
    model_dirs: dict[str, Path], tmp_path: Path, change: dict[str, Any], match: str
) -> None:
    bad = copy_model(model_dirs["auto"], tmp_path / "auto")
    data = json.loads((bad / "auto.json").read_text())
    (bad / "auto.json").write_text(json.dumps({**data, **change}))
    resign(bad, "auto.json")
    with pytest.raises(ModelFileError, match=match):
        load_predictor(bad)


class _CannotPredict(PagePredictorBase):
    """Saves and loads cleanly, then fails every prediction: only the probe can catch it."""

    kind: ClassVar[str] = "test-cannot-predict"

    def fit(self, train: Sequence[Session], validation: Sequence[Session] | None = None) -> None:
        self.fitted = True

    @property
    def vocabulary_size(self) -> int:
        return 3

    def _predict(self, history: Sequence[str], k: int) -> Prediction:
        raise ValueError("could not broadcast input array")

    def _save_files(self, directory: Path) -> list[str]:
        write_json(directory / "state.json", {})
        return ["state.json"]

    def _load_files(self, files: ModelFiles) -> None:
        files.read_json("state.json")


def test_a_model_that_loads_but_cannot_predict_is_refused_and_never_served(
    model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from precache.models import kinds

    # The kinds table is process-wide: the test kind is registered in a copy that ends with the test, or
    # a later test in the same process (tests/core/test_core_registries.py under pytest-xdist) sees it.
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    register_predictor(_CannotPredict.kind, _CannotPredict)
    broken = _CannotPredict()
    broken.fit([])
    broken.save(tmp_path / "broken")
    with pytest.raises(ModelFileError, match="loads but cannot predict"):
        load_predictor(tmp_path / "broken")
    engine = InferenceEngine.load(model_dirs["markov"])
    before = engine.predict(["/hub"], 3)
    with pytest.raises(ModelFileError, match="cannot predict"):
        engine.reload(tmp_path / "broken")
    assert engine.predict(["/hub"], 3) == before


async def test_reload_under_load_never_fails_a_request(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Clients keep submitting while good and damaged directories are reloaded: every request is answered
    by one whole model (a batch never mixes the old model with the new one's memoised answers)."""
    bad = copy_model(model_dirs["ppm"], tmp_path / "bad")
    data = bytearray((bad / "counts.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "counts.npz").write_bytes(bytes(data))
    resign(bad, "counts.npz")
    engine = InferenceEngine.load(model_dirs["markov"], max_batch=8, max_wait_us=200)
    refused = 0

    async def client(i: int) -> list[Prediction]:
        return [await engine.submit(HISTORIES[(i + j) % len(HISTORIES)], 5) for j in range(40)]

    async def reloader() -> None:
        nonlocal refused
        for directory in [model_dirs["ppm"], bad, model_dirs["sknn"], bad, model_dirs["markov"]] * 2:
            try:
                engine.reload(directory)
            except ModelFileError:
                refused += 1
            await asyncio.sleep(0.001)

    try:
        *answers, _ = await asyncio.gather(*(client(i) for i in range(8)), reloader())
    finally:
        await engine.aclose()
    assert refused == 4 and sum(len(a) for a in answers) == 8 * 40
    for ranked in (r for a in answers for r in a):
        assert 0 < len(ranked) <= 5 and all(0.0 <= p <= 1.0 for _, p in ranked)
    assert engine.predict_batch(HISTORIES, 5) == load_predictor(model_dirs["markov"]).predict_batch(HISTORIES, 5)


# -- finding 3: damaged PPM/Markov data (sha256 updated) raised zipfile.BadZipFile ---------------------
@pytest.mark.parametrize(("kind", "name"), [("ppm", "counts.npz"), ("markov", "counts.npz"), ("sknn", "sessions.npz")])
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_arrays_with_updated_sha256_are_a_model_file_error(
    model_dirs: dict[str, Path], tmp_path: Path, kind: str, name: str, damage: str
) -> None:
    bad = copy_model(model_dirs[kind], tmp_path / kind)
    data = bytearray((bad / name).read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2 :]
    (bad / name).write_bytes(bytes(data))
    resign(bad, name)
    with pytest.raises(ModelFileError, match=f"cannot read .*{name}"):
        load_predictor(bad)


def _npz_with_raw_member(member: str, raw: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, raw)
    return buffer.getvalue()


def test_an_array_header_asking_for_terabytes_is_refused_before_allocating(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header = header.ljust(118) + "\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 64
    bad = copy_model(model_dirs["popularity"], tmp_path / "huge")
    (bad / "counts.npz").write_bytes(_npz_with_raw_member("unigram.npy", raw))
    resign(bad, "counts.npz")
    with pytest.raises(ModelFileError, match="does not match its"):
        load_predictor(bad)


def test_object_arrays_are_refused_on_read(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    bad = copy_model(model_dirs["popularity"], tmp_path / "pickled")
    (bad / "counts.npz").write_bytes(_npz_with_raw_member("unigram.npy", buffer.getvalue()))
    resign(bad, "counts.npz")
    with pytest.raises(ModelFileError, match="pickle"):
        load_predictor(bad)


# -- finding 4: a directory relabelled from ppm to markov loaded ------------------------------------------
@pytest.mark.parametrize(("source", "target"), [
    ("ppm", "markov"), ("markov", "ppm"), ("markov", "popularity"), ("popularity", "markov"),
    ("sknn", "ppm"), ("ppm", "sknn"), ("attention", "markov"), ("markov", "auto"),
])
@pytest.mark.parametrize("config", ["kept", "target's"])
def test_relabelled_directories_are_refused(
    model_dirs: dict[str, Path], tmp_path: Path, source: str, target: str, config: str
) -> None:
    bad = copy_model(model_dirs[source], tmp_path / f"{source}-as-{target}")
    changes: dict[str, Any] = {"kind": target}
    if config == "target's":  # a careful forger also copies the target kind's settings
        changes["config"] = json.loads((model_dirs[target] / "manifest.json").read_text())["config"]
    edit_manifest(bad, **changes)
    with pytest.raises(ModelFileError):
        load_predictor(bad)


# -- the fuzz test ---------------------------------------------------------------------------------------
def _files_of(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def _mutate(rng: random.Random, directory: Path) -> str:
    """One random damage; returns a description for the failure message. (A second damage may find a
    manifest the first one broke; then the edit that needs it is skipped.)"""
    try:
        return _damage(rng, directory)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        return f"skipped an edit of a broken manifest ({type(exc).__name__})"


def _damage(rng: random.Random, directory: Path) -> str:
    target = rng.choice(_files_of(directory))
    data = bytearray(target.read_bytes())
    action = rng.choice(["flip", "flip", "truncate", "append", "manifest", "manifest"])
    if action == "manifest":
        manifests = [p for p in _files_of(directory) if p.name == "manifest.json"]
        target = rng.choice(manifests)
        manifest = json.loads(target.read_text())
        edit = rng.choice(["kind", "drop", "empty", "version", "config-add", "config-drop", "config-value",
                           "sha", "escape", "metrics"])
        if edit == "kind":
            manifest["kind"] = rng.choice([k for k in KINDS if k != manifest["kind"]] + ["", 7])
        elif edit == "drop":
            manifest["files"].pop(rng.choice(sorted(manifest["files"])))
        elif edit == "empty":
            manifest["files"] = rng.choice([{}, [], None, "x"])
        elif edit == "version":
            manifest["format_version"] = rng.choice([0, 2, "1", None, True, 1.0])
        elif edit == "config-add":
            manifest.setdefault("config", {})["bogus"] = 1
        elif edit == "config-drop" and manifest.get("config"):
            manifest["config"].pop(rng.choice(sorted(manifest["config"])))
        elif edit == "config-value" and manifest.get("config"):
            key = rng.choice(sorted(manifest["config"]))
            manifest["config"][key] = rng.choice([-1, 0, 10**9, "x", None, [1], {"a": 1}, 0.5])
        elif edit == "sha":
            manifest["files"][rng.choice(sorted(manifest["files"]))] = "0" * 64
        elif edit == "escape":
            manifest["files"]["../outside.json"] = "0" * 64
        else:
            manifest["metrics"] = rng.choice([[1, 2], "x", None])
        target.write_text(json.dumps(manifest))
        return f"manifest {target.relative_to(directory)}: {edit}"
    if action == "flip" and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= rng.randint(1, 255)
    elif action == "truncate":
        del data[rng.randrange(max(1, len(data))) :]
    else:
        data += rng.randbytes(rng.randint(1, 64))
    target.write_bytes(bytes(data))
    resigned = target.name != "manifest.json" and rng.random() < 0.6
    if resigned:  # the whole chain, as far as auto's pinned component manifests go
        holder = target.parent
        resign(holder, target.name)
        if holder != directory and (holder.parent / "auto.json").is_file() and rng.random() < 0.7:
            auto = json.loads((holder.parent / "auto.json").read_text())
            for entry in auto["components"]:
                if entry["dir"] == holder.name:
                    entry["manifest_sha256"] = hashlib.sha256((holder / "manifest.json").read_bytes()).hexdigest()
            (holder.parent / "auto.json").write_text(json.dumps(auto))
            resign(holder.parent, "auto.json")
    return f"{action} {target.relative_to(directory)}{' (sha256 updated)' if resigned else ''}"


@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_model_directories_load_and_predict_or_raise_model_file_error(
    model_dirs: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    rng = random.Random(f"fuzz-{kind}")
    engine = InferenceEngine.load(model_dirs[kind])
    served, before = engine.model, engine.predict_batch(HISTORIES, 5)
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(60):
        directory = copy_model(model_dirs[kind], tmp_path / f"{trial}")
        damage = "; ".join(_mutate(rng, directory) for _ in range(rng.choice([1, 1, 2])))
        try:
            model = load_predictor(directory)
        except ModelFileError:
            outcomes["refused"] += 1
        except Exception as exc:
            raise AssertionError(f"trial {trial} ({damage}): {type(exc).__name__}: {exc}") from exc
        else:
            outcomes["loaded"] += 1
            assert_predicts(model)
        try:
            engine.reload(directory)
        except ModelFileError:
            assert engine.model is served, damage
            assert engine.predict_batch(HISTORIES, 5) == before, damage
        else:
            assert_predicts(engine.model)
            engine.reload(model_dirs[kind])
            served, before = engine.model, engine.predict_batch(HISTORIES, 5)
        shutil.rmtree(directory)
    assert outcomes["refused"] >= 30, outcomes  # most damage must be caught, not served


# -- the cache optimizer reads through the same ModelFiles ------------------------------------------------
@pytest.fixture(scope="module")
def optimizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from precache.models.optimizer.labels import build_dataset, trace_from_requests
    from precache.models.optimizer.train import TrainConfig, train
    from precache.traces.model import Request

    rng = random.Random(0)
    requests = [Request(time=1000.0 + i, client="c", path=f"/p{rng.randrange(30)}", size=1000) for i in range(1500)]
    trace = trace_from_requests(requests)
    out = tmp_path_factory.mktemp("optimizer")
    train(build_dataset(trace, 0, len(trace), horizon=60.0), out, TrainConfig(n_estimators=5))
    return out


@pytest.mark.parametrize("damage", ["escape", "unlisted", "truncated+resigned", "version", "features", "sha256"])
def test_cache_optimizer_damage_is_a_model_file_error(optimizer_dir: Path, tmp_path: Path, damage: str) -> None:
    from precache.models.optimizer.model import ModelIntegrityError, OptimizerModel

    OptimizerModel.load(optimizer_dir)
    bad = copy_model(optimizer_dir, tmp_path / "optimizer")
    manifest = json.loads((bad / "manifest.json").read_text())
    combined = manifest["combined"]
    if damage == "escape":  # the file names came from the manifest unchecked
        manifest["combined"] = "../" + combined
        manifest["sha256"]["../" + combined] = manifest["sha256"][combined]
    elif damage == "unlisted":
        del manifest["sha256"][combined]
    elif damage == "truncated+resigned":  # onnxruntime's own error type used to escape
        data = (bad / combined).read_bytes()[:100]
        (bad / combined).write_bytes(data)
        manifest["sha256"][combined] = hashlib.sha256(data).hexdigest()
    elif damage == "version":
        manifest["format_version"] = 99
    elif damage == "features":
        manifest["features"] = 7
    else:
        manifest["sha256"] = "x"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError) as caught:
        OptimizerModel.load(bad)
    assert isinstance(caught.value, ModelFileError) and isinstance(caught.value, RuntimeError)
