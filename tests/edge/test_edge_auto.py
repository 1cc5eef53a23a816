"""An ``auto`` page predictor at the edge (issue 18): activation publishes its best servable component.

A real auto model (fitted on NASA 1 Aug through ``AutoPredictor.fit``, its components and gate as the
pipeline ships them) is registered and activated through the registry the settings open; the table Worker
in workerd syncs the published files from a real HTTP origin and must answer exactly what the Python
component -- loaded through the verified loader from the auto directory -- answers. An auto without any
n-gram component publishes its edge fallback (the n-gram baseline auto ships for the edge), which the table
Worker serves exactly; one without a fallback either publishes nothing and says why; with the ORT Worker
configured it publishes its attention component.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from edge_harness import Origin, build_worker, post, require_edge_tools, running, settled

from conftest import hub_sessions, shared_file
from precache.edge.build import export_model
from precache.edge.manifest import EDGE_MANIFEST
from precache.evaluation import time_split, transitions
from precache.models import build_predictor, load_predictor
from precache.models.auto import AutoPredictor
from precache.models.ppm import NgramPredictor
from precache.traces import read_sessions

TOKEN = "test-sync-token"
K = 10
NAME = "page-predictor"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from precache.cli import main; sys.argv[0] = 'precache'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))


SIMPLEST_FIRST = ["popularity", "markov-count", "markov", "ppm"]


def best_table_component(auto: AutoPredictor) -> tuple[int, str]:
    """The spec, independently: among the n-gram components, the simplest whose recorded validation HR@5 is
    within one standard error, sqrt(p (1 - p) / n), of the best one's."""
    scores = auto.metrics["validation"]
    tables = [(i, c.kind) for i, c in enumerate(auto.components) if isinstance(c, NgramPredictor)]
    leader = max(tables, key=lambda t: scores[t[1]]["hr5"])[1]
    p, n = scores[leader]["hr5"], scores[leader]["transitions"]
    near = [t for t in tables if scores[t[1]]["hr5"] >= p - (p * (1 - p) / n) ** 0.5 - 1e-12]
    return min(near, key=lambda t: (SIMPLEST_FIRST.index(t[1]), -scores[t[1]]["hr5"], t[0]))


def table_worker_answers(version_dir: Path, nasa: Any, tmp_path: Path) -> tuple[dict[str, Any], list[list[str]],
                                                                              list[list[tuple[str, float]]]]:
    """The table Worker (workerd) syncs ``version_dir``'s edge files from a real HTTP origin and answers 1,504
    NASA test histories (empty, unknown and very long ones included): its ``GET /model``, the histories and
    the answers."""
    dist, _ = build_worker("table", tmp_path / "dist")
    histories = [h for h, _ in transitions(nasa.test)][:1500]
    histories += [[], ["/never/seen"], ["/never/seen", histories[0][-1]], histories[1] * 30]
    with Origin(version_dir, TOKEN) as origin, running(dist, "table", {
            "MODEL_MANIFEST_URL": origin.manifest_url, "MODEL_SYNC_TOKEN": TOKEN}) as worker:
        status, model = settled(worker.url)
        assert status == 200, model
        got = []
        for i in range(0, len(histories), 200):
            status, body = post(worker.url + "/predict/batch", {
                "requests": [{"context": {"history": h}} for h in histories[i : i + 200]], "options": {"topK": K}})
            assert status == 200, body
            got += [[(p["page"], p["probability"]) for p in r["predictions"]] for r in body["results"]]
    return model, histories, got


@pytest.fixture(scope="module")
def nasa() -> Any:
    return time_split(read_sessions(shared_file("nasa-http/nasa_19950801.tsv.gz")))


def fitted_and_saved(auto: Any, nasa: Any, parent: Path) -> Path:
    """``auto`` fitted on NASA 1 Aug's training and validation slices, saved under ``parent``."""
    auto.fit(nasa.train, nasa.validation)
    directory = parent / "auto"
    auto.save(directory)
    return directory


@pytest.fixture(scope="module")
def auto_dir(nasa: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Auto as the pipeline fits it, minus the attention candidate (its training is tested elsewhere)."""
    auto = build_predictor("auto", candidates=("markov-count", "markov", "ppm", "sknn"),
                           blend_with=("markov-count", "ppm", "sknn"),
                           gates=("markov-count+ppm+sknn", "markov-count+markov+ppm+sknn"))
    return fitted_and_saved(auto, nasa, tmp_path_factory.mktemp("auto"))


@pytest.mark.realdata
def test_activating_auto_publishes_its_best_table_component_and_the_worker_serves_it_exactly(
        nasa: Any, auto_dir: Path, tmp_path: Path) -> None:
    from precache.registry import RegistrySettings
    from precache.serve.registry_routes import servable_files

    require_edge_tools()
    registry = RegistrySettings(tmp_path / "store", tmp_path / "backup").open()
    version = registry.register(NAME, auto_dir).version
    info = registry.activate(NAME, version)
    auto = load_predictor(info.path)
    assert isinstance(auto, AutoPredictor)
    index, kind = best_table_component(auto)
    manifest = json.loads((info.path / EDGE_MANIFEST).read_text())
    assert manifest["kind"] == "table" and manifest["version"] == version
    assert (manifest["served"], manifest["of"], manifest["model_kind"]) == (kind, "auto", kind)
    scores = auto.metrics["validation"]
    assert manifest["metrics"]["validation_hr5"] == scores[kind]["hr5"]
    assert manifest["metrics"]["auto_validation_hr5"] == scores[auto.choice]["hr5"]
    assert manifest["source"]["component"] == f"component-{index}" and manifest["source"]["of_choice"] == auto.choice
    if len(auto.components) > 1:  # a gate: the reason names the component scores and auto's
        assert "cannot run at the edge" in manifest["source"]["reason"]
    # the service's model-file endpoint serves the edge manifest and its files; the registry still verifies
    assert {"edge-manifest.json", "edge-table.bin", "edge-vocabulary.json"} <= set(servable_files(info.path))
    assert registry.verify(NAME) == [(version, None)]

    component = load_predictor(info.path / f"component-{index}")  # the verified loader, sha256 checked
    assert component.kind == kind
    model, histories, got = table_worker_answers(info.path, nasa, tmp_path)
    assert (model["version"], model["served"], model["of"], model["modelKind"]) == (version, kind, "auto", kind)
    want = [component.predict(h, K) for h in histories]
    mismatches = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not mismatches, f"{len(mismatches)} of {len(histories)} differ, first {histories[mismatches[0]]}"
    if len(auto.components) == 1:  # the single component: auto's own ranking, exactly
        assert [[p for p, _ in r] for r in got[:200]] == [[p for p, _ in r] for r in auto.predict_batch(
            histories[:200], K)]


@pytest.mark.realdata
def test_edge_build_on_an_auto_directory_takes_the_same_path(auto_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("edge", "build", "--model", str(auto_dir), "--out", str(tmp_path / "out"), "--k", str(K))
    assert proc.returncode == 0, proc.stderr
    auto = load_predictor(auto_dir)
    assert isinstance(auto, AutoPredictor)
    _, kind = best_table_component(auto)
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["exported", kind] and lines[1].split()[:2] == ["of", "auto"], proc.stdout
    built = json.loads((tmp_path / "out" / EDGE_MANIFEST).read_text())
    direct, _ = export_model(auto, k=K, version=built["version"], source={"model_dir": str(auto_dir)},
                             manifest=json.loads((auto_dir / "manifest.json").read_text()))
    assert built == direct.manifest()  # one code path: the CLI's manifest is the library's
    assert built["version"].startswith(f"auto-{kind}-") and built["served"] == kind
    # the ORT worker serves tables too: without an attention component, the same table is exported
    ort, served = export_model(auto, worker="ort", k=K, version=built["version"],
                               source={"model_dir": str(auto_dir)},
                               manifest=json.loads((auto_dir / "manifest.json").read_text()))
    assert served.kind == kind and served.worker == "table" and "the ort Worker can run" in served.reason
    assert {**ort.manifest(), "source": built["source"]} == built
    bad = run_cli("edge", "build", "--model", str(auto_dir), "--out", str(tmp_path / "bad"), "--worker", "bogus")
    assert bad.returncode == 2 and "--worker must be table or ort" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def attention_sknn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gate of attention + session-kNN (forced: the only candidate), tiny attention on synthetic sessions."""
    sessions = hub_sessions(300)
    auto = build_predictor("auto", candidates=(), blend_with=("attention", "sknn"), weights=(),
                           gates=("attention+sknn",), min_calibration_transitions=0,
                           attention_options={"epochs": 1, "d_model": 16, "layers": 1, "max_len": 4, "threads": 1,
                                              "dropout": 0.0})
    auto.fit(sessions[:250], sessions[250:])
    assert isinstance(auto, AutoPredictor) and auto.choice == "gate(attention+sknn)"
    directory = tmp_path_factory.mktemp("auto-attention") / "auto"
    auto.save(directory)
    return directory


def test_auto_without_an_ngram_component_publishes_nothing_and_says_why(
        attention_sknn_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing for the table Worker, a log line with the reason, no edge files; with the ORT Worker
    (MODEL_EDGE_WORKER=ort) its attention component is published."""
    from precache.edge.publish import publish_version
    from precache.registry import RegistrySettings

    registry = RegistrySettings(tmp_path / "store", tmp_path / "backup").open()
    version = registry.register(NAME, attention_sknn_dir).version
    with caplog.at_level(logging.INFO, logger="precache.edge.publish"):
        info = registry.activate(NAME, version)
    assert not (info.path / EDGE_MANIFEST).exists()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "no edge files published" in said and "attention, sknn" in said and "ORT Worker" in said, said
    proc = run_cli("edge", "build", "--model", str(info.path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "no component the table Worker can serve" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()

    line = publish_version(info, worker="ort")  # the ORT Worker deployed: the attention component
    assert "published the onnx edge files of auto's attention" in line, line
    manifest = json.loads((info.path / EDGE_MANIFEST).read_text())
    assert (manifest["kind"], manifest["served"], manifest["of"]) == ("onnx", "attention", "auto")
    attention = load_predictor(info.path / manifest["source"]["component"])
    for probe in manifest["probes"]:  # the Worker checks these: they are the component's own answers
        assert [p for p, _ in probe["top"]] == [p for p, _ in attention.predict(probe["history"], len(probe["top"]))]
    assert registry.verify(NAME) == [(version, None)]
    assert RegistrySettings(tmp_path / "store", tmp_path / "backup", edge_worker="ort").open().on_activate is not None


@pytest.mark.parametrize(("attention_hr5", "ort_serves"),
                         [(None, "markov-count"), (0.604, "ppm"), (0.606, "attention")])
def test_the_simplest_component_within_one_standard_error_is_served(
        attention_sknn_dir: Path, attention_hr5: float | None, ort_serves: str) -> None:
    """The rule on recorded scores (10,000 validation transitions: one standard error at 0.600 is 0.0049).
    Table Worker: markov-count (0.598) is within it of ppm (0.600) and simpler. ORT Worker: attention at
    0.604 is the best, ppm is within 0.0049 of it and simpler, markov-count is not; at 0.606 only attention
    is; unscored, it is not considered."""
    from precache.edge.served import served_form

    sessions = hub_sessions(300)
    auto = AutoPredictor()
    auto.components = [load_predictor(attention_sknn_dir / "component-0")]
    for kind in ("ppm", "markov-count"):
        model = build_predictor(kind)
        model.fit(sessions)
        auto.components.append(model)
    auto.choice = "gate(attention+ppm+markov-count)"
    scores: dict[str, Any] = {kind: {"hr5": hr5, "transitions": 10_000.0} for kind, hr5 in (
        ("ppm", 0.600), ("markov-count", 0.598), (auto.choice, 0.61), ("attention", attention_hr5))}
    auto.metrics = {"validation": {k: v for k, v in scores.items() if v["hr5"] is not None}}
    assert auto.components[0].kind == "attention"
    served = served_form(auto, "ort")
    assert (served.kind, served.worker) == (ort_serves, "ort" if ort_serves == "attention" else "table")
    assert served.component == ["attention", "ppm", "markov-count"].index(ort_serves)
    assert served.of_validation_hr5 == 0.61 and "one standard error (0.0049)" in served.reason
    assert served_form(auto, "table").kind == "markov-count"


@pytest.mark.slow
def test_the_ort_worker_syncs_and_serves_the_attention_component(attention_sknn_dir: Path, tmp_path: Path) -> None:
    """MODEL_EDGE_WORKER=ort end to end: activation publishes auto's attention component, the ORT Worker in
    workerd syncs it from the version directory and answers within 1e-5 of the Python component."""
    from precache.registry import RegistrySettings

    require_edge_tools()
    registry = RegistrySettings(tmp_path / "store", tmp_path / "backup", edge_worker="ort").open()
    version = registry.register(NAME, attention_sknn_dir).version
    info = registry.activate(NAME, version)
    manifest = json.loads((info.path / EDGE_MANIFEST).read_text())
    assert (manifest["kind"], manifest["served"]) == ("onnx", "attention")
    attention = load_predictor(info.path / manifest["source"]["component"])
    histories = [s.pages[:i] for s in hub_sessions(40, seed=1) for i in range(1, len(s.pages))] + [[], ["/never"]]
    dist, _ = build_worker("ort", tmp_path / "dist")
    with Origin(info.path, TOKEN) as origin, running(dist, "ort", {
            "MODEL_MANIFEST_URL": origin.manifest_url, "MODEL_SYNC_TOKEN": TOKEN}) as worker:
        status, model = settled(worker.url)
        assert status == 200 and (model["version"], model["served"], model["of"]) == (version, "attention", "auto")
        status, body = post(worker.url + "/predict/batch", {
            "requests": [{"context": {"history": h}} for h in histories], "options": {"topK": 5}})
        assert status == 200, body
    for result, history in zip(body["results"], histories, strict=True):
        got = [(p["page"], p["probability"]) for p in result["predictions"]]
        want = attention.predict(history, 5)
        assert max(abs(g[1] - w[1]) for g, w in zip(got, want, strict=True)) < 1e-5, history


@pytest.fixture(scope="module")
def sknn_auto_dir(nasa: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Auto forced to a choice without an n-gram component (session-kNN, the only candidate; the n-gram models
    are fitted as blend partners), as on DIGINETICA: it ships an edge fallback."""
    auto = build_predictor("auto", candidates=("sknn",), blend_with=("markov-count", "markov", "ppm"), weights=(),
                           gates=())
    directory = fitted_and_saved(auto, nasa, tmp_path_factory.mktemp("auto-sknn"))
    assert isinstance(auto, AutoPredictor) and auto.choice == "sknn" and auto.edge_fallback is not None
    return directory


@pytest.mark.realdata
def test_an_auto_without_an_ngram_component_publishes_its_edge_fallback_and_the_worker_serves_it_exactly(
        nasa: Any, sknn_auto_dir: Path, tmp_path: Path) -> None:
    """The table Worker syncs the fallback auto shipped and answers exactly its Python predictions; the edge
    manifest says it is auto's edge fallback; auto stays within its size budget."""
    from precache.models.auto import EDGE_FALLBACK_DIR
    from precache.registry import RegistrySettings
    from precache.serve.registry_routes import servable_files

    require_edge_tools()
    registry = RegistrySettings(tmp_path / "store", tmp_path / "backup").open()
    version = registry.register(NAME, sknn_auto_dir).version
    info = registry.activate(NAME, version)
    auto = load_predictor(info.path)
    assert isinstance(auto, AutoPredictor) and auto.edge_fallback is not None
    record = auto.metrics["edge_fallback"]
    kind = record["kind"]
    assert auto.edge_fallback.kind == kind and auto.size_bytes(sknn_auto_dir) <= 1_000_000
    manifest = json.loads((info.path / EDGE_MANIFEST).read_text())
    assert (manifest["kind"], manifest["served"], manifest["of"], manifest["model_kind"]) == ("table", kind, "auto",
                                                                                             kind)
    assert manifest["source"]["component"] == EDGE_FALLBACK_DIR and manifest["source"]["of_choice"] == "sknn"
    assert manifest["source"]["reason"].startswith("edge fallback: auto's choice has no n-gram component")
    assert manifest["metrics"]["validation_hr5"] == record["validation_hr5"]
    assert manifest["metrics"]["auto_validation_hr5"] == auto.metrics["validation"]["sknn"]["hr5"]
    assert registry.verify(NAME) == [(version, None)]
    # the model-file endpoint reaches the fallback like a component, pinned by auto.json's sha256
    pinned = json.loads((info.path / "auto.json").read_text())["edge_fallback"]["manifest_sha256"]
    assert servable_files(info.path)[f"{EDGE_FALLBACK_DIR}/manifest.json"] == pinned

    fallback = load_predictor(info.path / EDGE_FALLBACK_DIR)  # the verified loader, sha256 checked
    model, histories, got = table_worker_answers(info.path, nasa, tmp_path)
    assert (model["version"], model["served"], model["of"], model["modelKind"]) == (version, kind, "auto", kind)
    want = fallback.predict_batch(histories, K)
    assert want == auto.edge_fallback.predict_batch(histories, K)
    mismatches = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not mismatches, f"{len(mismatches)} of {len(histories)} differ, first {histories[mismatches[0]]}"
    # auto itself still answers with session-kNN (the fallback is the edge's, not auto's)
    sknn = load_predictor(info.path / "component-0")
    assert [[p for p, _ in r] for r in auto.predict_batch(histories[:200], K)] == [
        [p for p, _ in r] for r in sknn.predict_batch(histories[:200], K)]


@pytest.mark.parametrize(("attention_hr5", "ort_serves"), [(0.55, "markov-count"), (0.62, "attention")])
def test_the_edge_fallback_competes_like_a_component(
        attention_sknn_dir: Path, attention_hr5: float, ort_serves: str) -> None:
    """An auto of attention + session-kNN with a markov-count edge fallback (validation HR@5 0.560 on 1,000
    transitions: one standard error 0.0157). Table Worker: the fallback. ORT Worker: the fallback unless
    attention is more than one standard error better (0.62), by the same rule as components."""
    from precache.edge.served import served_form

    auto = load_predictor(attention_sknn_dir)
    assert isinstance(auto, AutoPredictor) and [c.kind for c in auto.components] == ["attention", "sknn"]
    fallback = build_predictor("markov-count")
    fallback.fit(hub_sessions(300))
    assert isinstance(fallback, NgramPredictor)
    auto.edge_fallback = fallback
    auto.metrics = {**auto.metrics, "edge_fallback": {"kind": "markov-count", "validation_hr5": 0.56,
                                                      "transitions": 1000.0}}
    auto.metrics["validation"] = {**auto.metrics["validation"], "attention": {"hr5": attention_hr5,
                                                                              "transitions": 1000.0}}
    table = served_form(auto, "table")
    assert (table.kind, table.part, table.component, table.validation_hr5) == ("markov-count", "edge-fallback",
                                                                                None, 0.56)
    assert table.reason.startswith("edge fallback: auto's choice has no n-gram component (gate(attention+sknn))")
    ort = served_form(auto, "ort")
    assert (ort.kind, ort.part) == (ort_serves, "edge-fallback" if ort_serves == "markov-count" else "component-0")
    assert "markov-count (edge fallback) 0.5600" in ort.reason and "one standard error (0.01" in ort.reason


@pytest.mark.realdata
async def test_the_online_refresh_of_an_auto_table_is_served_exactly_by_the_worker(
        nasa: Any, auto_dir: Path, redis_url: str, tmp_path: Path) -> None:
    """Issue 25 on a real model: the refresh of auto's published component, with the online counts of NASA's
    first test transitions, keeps ``served``/``of``; the table Worker verifies it and answers what
    :class:`OnlineTable` answers (the service's merge per context), and the live counts changed answers."""
    import uuid

    from redis.asyncio import Redis

    from precache.edge.online_table import OnlineTable
    from precache.online.layer import OnlineLayer
    from precache.online.merge import MergeParams
    from precache.registry import RegistrySettings
    from precache.serve.edge_refresh import EdgeRefresher

    require_edge_tools()
    registry = RegistrySettings(tmp_path / "store", tmp_path / "backup").open()
    info = registry.activate(NAME, registry.register(NAME, auto_dir).version)
    params = MergeParams(0.5, 5.0, None)
    layer = OnlineLayer(params)  # in process: the refresher reads its local rows
    for history, page in transitions(nasa.test[:300]):
        layer.observe(history[-1], page)
    client = Redis.from_url(redis_url)
    refresher = EdgeRefresher(registry, client, layer, 1.0, f"t{uuid.uuid4().hex[:8]}:")
    assert await refresher.tick() == "published"
    await client.aclose()
    base = json.loads((info.path / EDGE_MANIFEST).read_text())
    model, histories, got = table_worker_answers(info.path / "edge-refresh", nasa, tmp_path)
    assert model["version"] == f"{info.version}+online-1" and (model["served"], model["of"]) == (base["served"], "auto")
    component = load_predictor(info.path / base["source"]["component"])
    rows = {c: dict(r.successors) for c, r in layer.local.rows.items()}
    table = OnlineTable(component, rows, params, 0.0)
    assert table.updated > 50
    want = [table.predict(h, K) for h in histories]
    assert got == want
    assert sum(g != component.predict(h, K) for g, h in zip(got, histories, strict=True)) > 0
