"""``precache edge build`` (no Node needed): refusals with exit 2, deterministic output, the manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import hub_sessions
from precache.edge.build import export_predictor
from precache.edge.manifest import EDGE_MANIFEST
from precache.models import build_predictor


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys; from precache.cli import main; sys.argv[0] = 'precache'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def saved(kind: str, directory: Path) -> Path:
    model = build_predictor(kind)
    model.fit(hub_sessions(200))
    model.save(directory)
    return directory


def test_non_table_kind_exits_2_pointing_at_the_ort_worker(tmp_path: Path) -> None:
    proc = run_cli("edge", "build", "--model", str(saved("sknn", tmp_path / "knn")), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert "cannot be exported as tables" in proc.stderr and "--worker ort" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    assert run_cli("edge", "build", "--model", str(tmp_path / "missing")).returncode == 2
    proc = run_cli("edge", "build", "--model", str(saved("ppm", tmp_path / "ppm")), "--worker", "ort")
    assert proc.returncode == 2 and "attention" in proc.stderr


def test_build_prints_model_and_hr_and_is_deterministic(tmp_path: Path) -> None:
    model_dir = saved("ppm", tmp_path / "ppm")
    outs = []
    for name in ("a", "b"):
        proc = run_cli("edge", "build", "--model", str(model_dir), "--out", str(tmp_path / name), "--k", "4")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("exported  ppm") and "validation HR@5" in proc.stdout
        assert "active" in proc.stdout
        outs.append((tmp_path / name / EDGE_MANIFEST).read_bytes())
    assert outs[0] == outs[1]  # same model, same manifest, same ETag: Workers download nothing
    manifest = json.loads(outs[0])
    assert manifest["kind"] == "table" and manifest["model_kind"] == "ppm" and manifest["k"] == 4
    assert set(manifest["files"]) == {"edge-table.bin", "edge-vocabulary.json"}
    assert manifest["probes"][0]["history"] == [] and len(manifest["probes"]) >= 3


def test_k_is_capped_at_the_vocabulary(tmp_path: Path) -> None:
    model = build_predictor("markov")
    model.fit(hub_sessions(50))
    export = export_predictor(model, "v", "table", 100)
    assert export.k == model.vocabulary_size
    sizes = export.params["contexts"]
    assert sizes[0] == 1 and len(sizes) == 2

    def pad8(n: int) -> int:
        return (n + 7) // 8 * 8

    expected = sum(pad8(c * export.k * 8) + pad8(c * export.k * 4) + pad8(c * n * 4) for n, c in enumerate(sizes))
    assert len(export.files["edge-table.bin"]) == expected


def test_build_from_the_registry_active_version_and_publish(tmp_path: Path) -> None:
    """No --model/--trace: the registry's active page-predictor is exported; --publish writes the edge files
    next to it (what the service's model-file endpoint serves), and the registry still verifies it."""
    from precache.registry import ModelRegistry

    model = build_predictor("ppm")
    model.fit(hub_sessions(200))
    model.metrics = {"test_hr5": 0.5}
    model.save(tmp_path / "src")
    registry = ModelRegistry(tmp_path / "store", tmp_path / "backup")
    version = registry.register("page-predictor", tmp_path / "src").version
    registry.activate("page-predictor", version)
    env = {"MODEL_STORAGE_PATH": str(tmp_path / "store"), "MODEL_BACKUP_PATH": str(tmp_path / "backup")}
    proc = run_cli("edge", "build", "--out", str(tmp_path / "out"), "--publish", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["exported", "ppm"] and f"page-predictor {version}" in lines[1]
    assert "held-out HR@5" in lines[1] and "0.500" in lines[1]
    published = registry.active("page-predictor")
    assert published is not None and (published.path / EDGE_MANIFEST).is_file()
    assert json.loads((published.path / EDGE_MANIFEST).read_text())["version"] == version
    assert registry.verify("page-predictor") == [(version, None)]
