"""bench/check_claims.py: a figure quoted in the docs must be the one in its bench/results JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "bench" / "check_claims.py"
RESULTS = ROOT / "bench" / "results"


def run(*docs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, docs)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_the_docs_quote_their_json() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = int(proc.stdout.split("check_claims: ")[1].split()[0])
    assert checked >= 20, proc.stdout  # the README's results table and the benchmark report are checked


def test_drifted_figures_fail_naming_file_line_and_both_values(tmp_path: Path) -> None:
    doc = tmp_path / "drift.md"
    doc.write_text(
        "# figures that drifted from their JSON (issue 29)\n"
        f"Trace reading: [423k lines/s](<{RESULTS}/traces.json#/results/built-in CLF reader, synthetic combined"
        " (1,000,000)/per_s_cpu>).\n"
        f"Service: [~3,500 req/s]({RESULTS}/service.json#/runs/workers=2,mode=closed,concurrency=64/throughput_rps)"
        " with 2 workers.\n"
        f"Edge ORT batch, best vs best: [7.3x]({RESULTS}/edge.json#/workers/ort/batch64_best_vs_best_single).\n"
        f"Right: [3.6x]({RESULTS}/edge.json#/workers/ort/batch64_best_vs_best_single), "
        f"[588 MB]({RESULTS}/memory.json#/peak_rss_mb), [45.6 per mille]({RESULTS}/cache_metrics.json#/slowdown "
        f'"*1000"), [0.55%]({RESULTS}/experiments.json#/sequential/false_positive_rate).\n'
    )
    proc = run(doc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    assert lines[0].startswith(f"{doc}:2: quoted '423k'") and "472133.2" in lines[0], lines[0]
    peak = json.loads((RESULTS / "service.json").read_text())["runs"]  # the service's figure moves with re-runs
    c64 = next(r for r in peak if r["workers"] == 2 and r["mode"] == "closed" and r.get("concurrency") == 64)
    assert lines[1].startswith(f"{doc}:3: quoted '3,500'") and f"is {c64['throughput_rps']}" in lines[1], lines[1]
    assert lines[2].startswith(f"{doc}:4: quoted '7.3'") and "is 3.61" in lines[2], lines[2]
    assert "3 of 7 quoted figures differ" in proc.stderr


def test_a_claim_that_cannot_be_checked_fails(tmp_path: Path) -> None:
    doc = tmp_path / "bad.md"
    doc.write_text(
        f"[12 ms]({RESULTS}/service.json#/runs/workers=9/p99)\n"
        f"[fast]({RESULTS}/memory.json#/peak_rss_mb)\n"
        f"[1.0]({RESULTS}/nothing.json#/x)\n"
        f"[588]({RESULTS}/memory.json#/command)\n"
        f"[423k](bench/results/traces.json#/results/built-in CLF reader/per_s_cpu)\n"
    )
    proc = run(doc)
    assert proc.returncode == 1
    out = proc.stdout
    assert "matches 0 list items" in out and "no number in the link text" in out
    assert "nothing.json does not exist" in out and "not a number" in out
    assert f"{doc}:5: a link to a result that does not parse" in out


def test_docs_that_quote_nothing_fail(tmp_path: Path) -> None:
    """README.md and docs/*.md with no linked figure at all: the links were lost, not the figures checked."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("Fast. [The JSON](bench/results/memory.json).\n")
    (tmp_path / "docs" / "benchmarks.md").write_text("Peak RSS 588 MB.\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--root", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "no quoted figure found" in proc.stdout
    assert run(tmp_path / "docs" / "benchmarks.md").returncode == 0  # one named file may quote nothing


def test_fix_requotes_drifted_figures_as_they_were_written(tmp_path: Path) -> None:
    """After a benchmark re-run, ``--fix`` rewrites each drifted figure from its JSON, keeping its decimals,
    separators, sign and suffix, and leaves the text around it alone; the doc then checks clean."""
    results = RESULTS / f"_fix_test_{tmp_path.name}.json"  # check_claims reads JSON under bench/results only
    results.write_text(json.dumps({"rps": 2930.4, "delta": -0.01234, "share": 0.2127, "n": 1273, "ok": 0.5}))
    try:
        doc = tmp_path / "fix.md"
        link = f"{RESULTS}/{results.name}"
        doc.write_text(
            f"Served [~3,500 req/s]({link}#/rps) and [+0.0100]({link}#/delta) worse; [21.9%]({link}#/share) of"
            f" misses, [−359 req]({link}#/n), [0.50]({link}#/ok) as it was.\n")
        assert run(doc).returncode == 1
        proc = subprocess.run([sys.executable, str(SCRIPT), "--fix", str(doc)], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "4 figures re-quoted" in proc.stdout, proc.stdout
        text = doc.read_text()
        for quoted in ("[~2,930 req/s]", "[-0.0123]", "[21.3%]", "[1,273 req]", "[0.50]", "worse;", "as it was."):
            assert quoted in text, text
        assert run(doc).returncode == 0
    finally:
        results.unlink()
