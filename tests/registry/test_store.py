"""The registry on real files: register, activate (backed up), rollback, prune, verify, tamper refusal."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from registry_helpers import save_markov

from conftest import shared_file
from precache.models.files import ModelFileError
from precache.registry import ActiveChangedError, ActiveModel, ModelRegistry, RegistryError

NASA_JUL = "nasa-http/NASA_access_log_small.gz"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    trace = shared_file(NASA_JUL)
    base = tmp_path_factory.mktemp("models")
    return [save_markov(trace, base / f"m{i}", fraction=f) for i, f in enumerate((0.5, 0.8, 1.0))]


def make_registry(tmp_path: Path, **kw: object) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", tmp_path / "backups", **kw)  # type: ignore[arg-type]


def test_register_activate_rollback_and_revision(tmp_path: Path, model_dirs: list[Path]) -> None:
    reg = make_registry(tmp_path)
    assert reg.revision() == 0 and reg.active("page-predictor") is None
    v1 = reg.register("page-predictor", model_dirs[0], metrics={"test_hr5": 0.3}, data_span={"sessions": 1})
    v2 = reg.register("page-predictor", model_dirs[1])
    assert (v1.version, v2.version) == ("v1", "v2") and v1.kind == "markov" and v1.files
    assert json.loads((v1.path / "registry.json").read_text())["data_span"] == {"sessions": 1}
    r = reg.revision()
    reg.activate("page-predictor", "v1")
    reg.activate("page-predictor", "v2")
    assert reg.revision() == r + 2
    assert reg.pointer("page-predictor")["version"] == "v2" and reg.pointer("page-predictor")["previous"] == "v1"
    # every activation left a verified copy in the backup root, which is outside the storage root
    assert (tmp_path / "backups/page-predictor/v1/manifest.json").is_file()
    assert (tmp_path / "backups/page-predictor/v2/manifest.json").is_file()
    assert reg.rollback("page-predictor").version == "v1"
    assert reg.pointer("page-predictor") | {} == {**reg.pointer("page-predictor"), "version": "v1", "previous": "v2"}
    with pytest.raises(RegistryError, match="no version"):
        reg.activate("page-predictor", "v9")
    with pytest.raises(RegistryError, match="unknown model name"):
        reg.versions("backup")


def test_activate_if_active_is_a_compare_and_swap(tmp_path: Path, model_dirs: list[Path]) -> None:
    reg = make_registry(tmp_path)
    for _ in range(3):
        reg.register("page-predictor", model_dirs[0])
    reg.activate("page-predictor", "v1", if_active=None)
    with pytest.raises(ActiveChangedError, match="active version is v1, not None"):
        reg.activate("page-predictor", "v2", if_active=None)  # gated when nothing was active: too late now
    reg.activate("page-predictor", "v2", if_active="v1")
    assert reg.pointer("page-predictor")["version"] == "v2"


def test_backup_inside_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not lie inside"):
        ModelRegistry(tmp_path / "models", tmp_path / "models" / "backup")


def test_rejected_needs_force(tmp_path: Path, model_dirs: list[Path]) -> None:
    reg = make_registry(tmp_path)
    info = reg.register("page-predictor", model_dirs[0], status="rejected", reason="HR@5 below target")
    assert reg.get("page-predictor", info.version).status == "rejected"
    with pytest.raises(RegistryError, match="rejected"):
        reg.activate("page-predictor", info.version)
    assert reg.activate("page-predictor", info.version, force=True).version == info.version


def test_prune_keeps_active_and_previous(tmp_path: Path, model_dirs: list[Path]) -> None:
    reg = make_registry(tmp_path, keep=2)
    for _ in range(5):
        reg.register("page-predictor", model_dirs[0])
    reg.activate("page-predictor", "v1")
    reg.activate("page-predictor", "v2")  # active v2, previous v1
    removed = reg.prune("page-predictor")
    assert removed == ["v3"]
    assert [v.version for v in reg.versions("page-predictor")] == ["v1", "v2", "v4", "v5"]


def test_tampered_file_refused_and_current_model_keeps_serving(tmp_path: Path, model_dirs: list[Path]) -> None:
    reg = make_registry(tmp_path)
    reg.register("page-predictor", model_dirs[0])
    reg.register("page-predictor", model_dirs[1])
    reg.activate("page-predictor", "v1")
    holder = ActiveModel(reg, "page-predictor")
    assert holder.refresh() and holder.version == "v1"
    before = holder.model.predict(["/"], 5)
    # corrupt v2 after registration, then point the registry at it behind the registry's back
    victim = next(p for p in reg.get("page-predictor", "v2").path.iterdir() if p.suffix in (".npz", ".json")
                  and p.name not in ("manifest.json", "registry.json"))
    victim.write_bytes(victim.read_bytes()[:-7])
    with pytest.raises(ModelFileError, match=r"corrupt|cannot read"):
        reg.activate("page-predictor", "v2")  # activation verifies first
    pointer = reg.root / "page-predictor" / "active.json"
    pointer.write_text(json.dumps({**json.loads(pointer.read_text()), "version": "v2"}))
    (reg.root / "revision.json").write_text(json.dumps({"revision": reg.revision() + 1}))
    assert not holder.refresh()
    assert holder.version == "v1" and holder.last_error and "v2" in holder.last_error
    assert holder.model.predict(["/"], 5) == before
    assert [(v, e is None) for v, e in reg.verify("page-predictor")] == [("v1", True), ("v2", False)]


def test_missing_file_is_refused_at_register(tmp_path: Path, model_dirs: list[Path]) -> None:
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(model_dirs[0], broken)
    next(p for p in broken.iterdir() if p.name != "manifest.json").unlink()
    reg = make_registry(tmp_path)
    with pytest.raises(ModelFileError, match="missing"):
        reg.register("page-predictor", broken)
    assert reg.versions("page-predictor") == [] and reg.revision() == 0


def _register_and_activate(root: str, backup: str, source: str, n: int, barrier: multiprocessing.synchronize.Barrier
                           ) -> None:
    reg = ModelRegistry(root, backup)
    barrier.wait()
    for _ in range(n):
        info = reg.register("page-predictor", source)
        reg.activate("page-predictor", info.version)


def test_two_processes_register_and_activate_at_once(tmp_path: Path, model_dirs: list[Path]) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    n = 6
    procs = [ctx.Process(target=_register_and_activate,
                         args=(str(tmp_path / "models"), str(tmp_path / "backups"), str(model_dirs[i]), n, barrier))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    reg = make_registry(tmp_path)
    versions = [v.version for v in reg.versions("page-predictor")]
    assert versions == [f"v{i}" for i in range(1, 2 * n + 1)]  # no number given twice, none lost
    assert reg.revision() == 4 * n  # every register and every activate counted exactly once
    pointer = reg.pointer("page-predictor")
    assert pointer["version"] in versions and pointer["previous"] in versions
    assert all(error is None for _, error in reg.verify("page-predictor"))
    assert not list((tmp_path / "models" / "page-predictor").glob(".staging-*"))


def test_pinned_versions_load_once_refuse_bad_ones_and_respect_the_limit(tmp_path: Path, model_dirs: list[Path]
                                                                        ) -> None:
    """What experiment arms pin (service and warmer): one verified load per version, even from concurrent
    threads; a missing or tampered version stays refused without being retried; at most ``limit`` held."""
    from concurrent.futures import ThreadPoolExecutor

    from precache.models import load_predictor
    from precache.registry.pinned import PinnedVersions

    reg = make_registry(tmp_path)
    v1, v2, v3 = (reg.register("page-predictor", d).version for d in model_dirs)
    loads: list[str] = []

    def load(path: Path, version: str) -> object:
        loads.append(version)
        return load_predictor(path)

    pinned: PinnedVersions[object] = PinnedVersions(reg, "page-predictor", load, limit=3)
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(pinned.get, [v1] * 16))
    assert loads == [v1] and first[0] is not None and all(m is first[0] for m in first)
    assert v1 in pinned and v2 not in pinned

    victim = next(p for p in reg.get("page-predictor", v2).path.iterdir() if p.name != "manifest.json")
    victim.write_bytes(victim.read_bytes() + b"x")  # fails its sha256
    assert pinned.get(v2) is None and pinned.get(v2) is None and loads.count(v2) == 1
    assert pinned.get("v999") is None  # missing: refused, and it takes the last slot
    assert pinned.get(v3) is None and v3 not in loads  # over the limit: not loaded
    assert pinned.loaded() == [first[0]]
