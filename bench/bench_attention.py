"""Benchmark of the attention model's inputs and vocabulary: context ablation, a 5,000+-page site, parity.

Run:  .venv/bin/python bench/bench_attention.py [--traces nasa-jul,nasa-aug,bms] [--synthetic-pages 8000]
      [--synthetic-requests 1000000] [--out bench/results/attention.json]

1. **Inputs, with and without** (real traces): the attention model as shipped (Markov term + path segments
   + entry page), without the context inputs (segments and entry page off), without the Markov term, and
   the issue-4 model (1,000-page ceiling, no Markov term, no context), each against count Markov on the
   same split (test HR@5; protocol of :mod:`precache.evaluation`). Path segments exist only where pages
   are paths (NASA); BMS pages are opaque ids, so there the "context" variant differs by the entry page only.
2. **A 5,000+-page site** (``SyntheticWorkload``, sessionized like a log): the shipped model vs the
   1,000-page-ceiling model and the Markov baselines, overall and on transitions whose target is not among
   the 1,000 most frequent training pages (where a 1,000-page vocabulary must miss).
3. **Serving**: size on disk, top-5 agreement of the served runtime (int8 page table, ONNX encoder) with
   the torch network, and ``InferenceEngine`` batch-1 p50/p99 on the saved model.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from precache.evaluation import Split, evaluate, time_split, transitions
from precache.inference import InferenceEngine
from precache.models.attention import AttentionPredictor
from precache.models.attention.train import make_batch
from precache.models.base import PagePredictorBase
from precache.models.kinds import build_predictor
from precache.traces import SyntheticWorkload, read_sessions
from precache.traces.sessionize import Sessionizer
from shared_traces import SESSION_TRACES

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, Any]] = {
    "attention (shipped: Markov term + segments + entry)": {},
    "without context (no segments, no entry page)": {"segments": False, "entry": False},
    "without the Markov term": {"markov": False},
    "issue-4 model (1,000 pages, no Markov term, no context)": {"vocab_size": 1000, "markov": False,
                                                                "segments": False, "entry": False},
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fit_and_score(model: PagePredictorBase, split: Split, max_transitions: int) -> dict[str, Any]:
    started = time.perf_counter()
    model.fit(split.train, split.validation)
    fit = time.perf_counter() - started
    scores = evaluate(model, split.test, model.vocabulary_size, max_transitions=max_transitions)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        size = model.size_bytes(tmp)
    return {"hr5": scores.hr5, "mrr5": scores.mrr5, "ece": scores.ece, "fit_seconds": round(fit, 1),
            "size_bytes": size, "pages": model.vocabulary_size}


def ablation(name: str, split: Split, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for baseline in ("markov-count", "markov"):
        out[baseline] = fit_and_score(build_predictor(baseline), split, args.max_test_transitions)
    for label, options in VARIANTS.items():
        model = AttentionPredictor(threads=1, seed=0, **options)
        out[label] = fit_and_score(model, split, args.max_test_transitions)
        log(f"[{name}] {label}: HR@5 {out[label]['hr5']:.4f} (markov-count {out['markov-count']['hr5']:.4f})")
    return out


def synthetic(args: argparse.Namespace) -> dict[str, Any]:
    workload = SyntheticWorkload(args.synthetic_requests, seed=0, n_pages=args.synthetic_pages)
    sessions = list(Sessionizer()(workload.requests()))
    split = time_split(sessions)
    counts = Counter(p for s in split.train for p in s.pages)
    top = {p for p, _ in counts.most_common(1000)}
    tail = [s for s in split.test]
    out: dict[str, Any] = {"site_pages": args.synthetic_pages, "requests": args.synthetic_requests,
                           "sessions": len(sessions), "train_pages_seen": len(counts),
                           "train_pages_seen_twice": sum(1 for c in counts.values() if c >= 2),
                           "test_transitions": sum(max(0, len(s.pages) - 1) for s in split.test), "models": {}}
    models: dict[str, PagePredictorBase] = {
        "markov-count": build_predictor("markov-count"), "markov": build_predictor("markov"),
        "ppm": build_predictor("ppm"),
        "attention (shipped)": AttentionPredictor(threads=1, seed=0),
        "issue-4 model (1,000 pages)": AttentionPredictor(threads=1, seed=0, **VARIANTS[
            "issue-4 model (1,000 pages, no Markov term, no context)"]),
    }
    for label, model in models.items():
        row = fit_and_score(model, split, args.max_test_transitions)
        hits = total = 0
        for history, target in transitions(tail, 50):
            if target in top:
                continue
            total += 1
            hits += target in [p for p, _ in model.predict(history, 5)]
        row["hr5_beyond_top_1000"] = hits / max(total, 1)
        row["transitions_beyond_top_1000"] = total
        out["models"][label] = row
        log(f"[synthetic] {label}: HR@5 {row['hr5']:.4f}, beyond the top 1,000 pages {row['hr5_beyond_top_1000']:.4f}"
            f" ({row['pages']} pages, {row['size_bytes'] / 1000:.0f} KB)")
        if label == "attention (shipped)":
            assert isinstance(model, AttentionPredictor)
            out["serving"] = serving(model, split)
    return out


def serving(model: AttentionPredictor, split: Split) -> dict[str, Any]:
    """Size, served-vs-torch top-5 agreement and InferenceEngine batch-1 latency of a fitted model."""
    assert model.runtime is not None and model.tables is not None
    histories = [h for h, _ in transitions(split.test, 50)][:3000]
    runtime, net = model.runtime, model.net
    same: list[bool] = []
    for i in range(0, len(histories), 256):
        chunk = histories[i : i + 256]
        rows = []
        for h in chunk:
            ids, segs = runtime.index.encode(h[-runtime.max_len :])
            entry_ids, entry_segs = runtime.index.encode(h[:1])
            rows.append((ids, segs, entry_ids[0], entry_segs[0]))
        batch = make_batch(rows)
        with torch.no_grad():
            hidden = net.hidden(torch.from_numpy(batch.ids), torch.from_numpy(batch.segs),
                                torch.from_numpy(batch.entry_ids), torch.from_numpy(batch.entry_segs), last=True)
            markov = model.tables.markov
            extra = torch.from_numpy(markov.rows(batch.ids[:, -1])) if markov is not None else None
            reference = net.logits(hidden, extra).numpy()
        served = runtime.logits(runtime.encode(chunk))
        for a, b in zip(np.argsort(-reference[:, 2:], axis=1)[:, :5], np.argsort(-served[:, 2:], axis=1)[:, :5],
                        strict=True):
            same.append(set(a) == set(b))
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        size = model.size_bytes(tmp)
        engine = InferenceEngine.load(tmp)
        for h in histories[:50]:
            engine.predict(h, 10)
        samples, cpu = [], []
        for h in histories[:2000]:
            started, started_cpu = time.perf_counter(), time.thread_time()
            engine.predict(h, 10)
            samples.append(time.perf_counter() - started)
            cpu.append(time.thread_time() - started_cpu)
    samples.sort()
    cpu.sort()
    return {"size_bytes": size, "pages": model.vocabulary_size, "d_model": model.metrics["training"]["d_model"],
            "quantized_encoder": model.quantized, "top5_identical_to_torch": float(np.mean(same)),
            "engine_p50_us": samples[len(samples) // 2] * 1e6,
            "engine_p99_us": samples[min(len(samples) - 1, int(0.99 * len(samples)))] * 1e6,
            "engine_cpu_p99_us": cpu[min(len(cpu) - 1, int(0.99 * len(cpu)))] * 1e6}


def markdown(results: dict[str, Any]) -> str:
    lines = ["| trace | markov-count | " + " | ".join(VARIANTS) + " |", "|---" * (len(VARIANTS) + 2) + "|"]
    for name, r in results["ablation"].items():
        lines.append(f"| {name} | {r['markov-count']['hr5']:.3f} | "
                     + " | ".join(f"{r[v]['hr5']:.3f}" for v in VARIANTS) + " |")
    syn = results.get("synthetic")
    if syn:
        lines += ["", f"Synthetic site: {syn['site_pages']:,} pages, {syn['train_pages_seen']:,} seen in training "
                  f"({syn['train_pages_seen_twice']:,} twice), {syn['test_transitions']:,} test transitions", "",
                  "| model | pages | HR@5 | HR@5 beyond the top 1,000 pages | size KB | fit s |",
                  "|---|---|---|---|---|---|"]
        for label, m in syn["models"].items():
            lines.append(f"| {label} | {m['pages']:,} | {m['hr5']:.3f} | {m['hr5_beyond_top_1000']:.3f} "
                         f"| {m['size_bytes'] / 1000:,.0f} | {m['fit_seconds']} |")
        s = syn.get("serving", {})
        if s:
            lines += ["", f"Served model: {s['pages']:,} pages, d={s['d_model']}, {s['size_bytes'] / 1000:,.0f} KB, "
                      f"top-5 identical to torch {s['top5_identical_to_torch']:.3f}, InferenceEngine batch-1 "
                      f"p50/p99 {s['engine_p50_us']:.0f}/{s['engine_p99_us']:.0f} µs (CPU-time p99 "
                      f"{s['engine_cpu_p99_us']:.0f} µs)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", default="nasa-jul,nasa-aug,bms")
    parser.add_argument("--synthetic-pages", type=int, default=8000)
    parser.add_argument("--synthetic-requests", type=int, default=1_000_000)
    parser.add_argument("--max-test-transitions", type=int, default=50_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "attention.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    results: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cores": 2,
                    "note": "2 cores shared with other jobs while measured"},
        "command": " ".join(["bench/bench_attention.py", *sys.argv[1:]]), "ablation": {},
    }
    for name in [t for t in args.traces.split(",") if t]:
        split = time_split(read_sessions(SESSION_TRACES[name]))
        results["ablation"][name] = ablation(name, split, args)
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    if args.synthetic_pages > 0:
        results["synthetic"] = synthetic(args)
    results["markdown"] = markdown(results)
    Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    print(results["markdown"])


if __name__ == "__main__":
    main()
