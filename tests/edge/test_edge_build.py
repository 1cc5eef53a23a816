"""``precache edge build`` (no Node needed): refusals with exit 2, deterministic output, the manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

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
    assert manifest["version"].startswith("ppm-") and manifest["version"].endswith("-k4")
    # another --k is another table: another version label (a Worker must not take it for the same model)
    proc = run_cli("edge", "build", "--model", str(model_dir), "--out", str(tmp_path / "k6"), "--k", "6")
    assert proc.returncode == 0, proc.stderr
    other = json.loads((tmp_path / "k6" / EDGE_MANIFEST).read_bytes())
    assert other["version"] == manifest["version"].removesuffix("-k4") + "-k6"


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


def test_activation_writes_the_edge_files_once_and_only_for_servable_kinds(tmp_path: Path) -> None:
    """The registry opened from the settings publishes on activation: tables for an n-gram model (in the
    version's directory, so the service's model-file endpoint serves them; the backup has them too), nothing
    for a kind no Worker serves, nothing again on a rollback; MODEL_EDGE_PUBLISH=false turns it off."""
    from precache.edge.publish import publish_version, published_version
    from precache.registry import RegistrySettings

    registry = RegistrySettings(tmp_path / "store", tmp_path / "backup").open()
    ppm = registry.register("page-predictor", saved("ppm", tmp_path / "ppm")).version
    sknn = registry.register("page-predictor", saved("sknn", tmp_path / "sknn")).version
    first = registry.activate("page-predictor", ppm)
    manifest = json.loads((first.path / EDGE_MANIFEST).read_text())
    assert manifest["version"] == ppm and manifest["kind"] == "table" and manifest["model_kind"] == "ppm"
    assert manifest["source"] == {"registry": f"page-predictor {ppm}"}
    assert published_version(tmp_path / "backup" / "page-predictor" / ppm) == ppm
    written = (first.path / EDGE_MANIFEST).stat().st_mtime_ns
    second = registry.activate("page-predictor", sknn)
    assert published_version(second.path) is None
    assert "cannot be served at the edge" in publish_version(second)
    registry.rollback("page-predictor")
    assert (first.path / EDGE_MANIFEST).stat().st_mtime_ns == written  # already published: left alone
    assert "already published" in publish_version(first)
    assert registry.verify("page-predictor") == [(ppm, None), (sknn, None)]
    assert RegistrySettings(tmp_path / "store", tmp_path / "backup", edge_publish=False).open().on_activate is None


def test_attention_exports_for_the_ort_worker_with_its_tables(tmp_path: Path) -> None:
    """Attention format 2: the encoder graph, the vocabulary and edge-attention.bin, whose layout covers the
    int8 page table, scales, bias, segment table and Markov rows the Worker needs."""
    sessions = hub_sessions(300)
    model = build_predictor("attention", epochs=1, d_model=16, layers=1, max_len=4, threads=1, dropout=0.0)
    model.fit(sessions[:250], sessions[250:])
    export = export_predictor(model, "att-1", "ort", 10)
    assert export.kind == "onnx" and set(export.files) == {"edge-model.onnx", "edge-vocabulary.json",
                                                           "edge-attention.bin"}
    params, n = export.params, model.vocabulary_size + 2
    arrays = params["arrays"]
    assert params["attention_format"] == 2 and params["max_len"] == 4 and params["d_model"] == 16
    assert arrays["page_q"] == {"dtype": "int8", "shape": [n, 16], "offset": 0}
    assert arrays["markov_indptr"]["shape"] == [n + 1]
    end = max(a["offset"] + int(np.prod(a["shape"])) * np.dtype(a["dtype"]).itemsize for a in arrays.values())
    assert len(export.files["edge-attention.bin"]) == end + (-end % 8)
    assert export.probes and export.probes[0]["history"] == [] and len(export.probes[0]["top"]) == 10
