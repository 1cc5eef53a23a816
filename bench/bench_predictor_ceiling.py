"""How far can a next-page model get on a trace? Ceilings for issue 18's "+2 HR@5" goal (count models only).

Same protocol as ``bench_predictor.py`` (:mod:`precache.evaluation`: time split, first 80% train with its last
10% validation, last 20% test; the first ``--max-test-transitions`` test transitions, history <= 50 pages).
The honest rows fit on train + validation, as the shipped baselines do. Every other row is an *upper
bound* that looks at the test part on purpose; none of them is a model anyone could ship:

* **shares**: test targets never seen in train + validation (no frozen model can rank them), test
  (last page -> target) pairs never seen (a count model reaches them only through its popularity fill),
  targets already in the session's history; per fifth of the test period too (a period shift shows as a
  rising share).
* **re-rank ceiling**: PPM's HR@10/20 -- the most a re-ranker of PPM's top 10/20 could reach at HR@5.
* **in-sample**: markov-count and PPM fitted on train + validation + the test sessions, scored on them
  (an optimistic bound for n-gram models: counts include the very transitions scored).
* **context oracle**: for contexts of the last 1/2/3 pages, the five most frequent next pages *in the
  scored test transitions themselves*: the best any function of that context can do (inflated for
  contexts seen <= 5 times, which are listed).
* **test-period counts**: back-off counts of order 1/2/3 over train + validation + *the other half* of the
  test sessions (every other session; both halves scored): what fresh data from the same period gives,
  without seeing the scored transitions.
* **online counts**: markov-count that adds each test session to its counts after scoring it (what
  continuous retraining would give; the protocol's models are frozen).

    PRECACHE_SHARED_DATA=../shared/data .venv/bin/python bench/bench_predictor_ceiling.py [--traces bms,msnbc]

Writes ``bench/results/predictor_ceiling.json``. Deterministic (no training, no timing); ~5 s for BMS,
~1 min for MSNBC (read included) on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from precache.evaluation import time_split
from precache.models.base import PagePredictorBase
from precache.models.kinds import build_predictor
from precache.traces import read_sessions
from precache.traces.model import Session
from shared_traces import SESSION_TRACES

ROOT = Path(__file__).resolve().parents[1]
Pair = tuple[list[str], str]


def scored_pairs(test: Sequence[Session], limit: int) -> list[tuple[int, int]]:
    """(session index, position) of the scored test transitions, in the protocol's order."""
    out: list[tuple[int, int]] = []
    for si, s in enumerate(test):
        for i in range(1, len(s.pages)):
            if len(out) >= limit:
                return out
            out.append((si, i))
    return out


def history(s: Session, i: int) -> list[str]:
    return s.pages[max(0, i - 50) : i]


def hits_at(model: PagePredictorBase, pairs: Sequence[Pair], k: int) -> list[bool]:
    return [t in [p for p, _ in model.predict(h, k)] for h, t in pairs]


def mean(values: Sequence[bool] | Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else float("nan")


def fifths(values: Sequence[bool]) -> list[float]:
    n = len(values)
    return [mean(values[j * n // 5 : (j + 1) * n // 5]) for j in range(5)]


def fitted(kind: str, sessions: Sequence[Session]) -> PagePredictorBase:
    model = build_predictor(kind)
    model.fit(sessions)
    return model


def backoff_hits(fit: Sequence[Session], test: Sequence[Session], scored: Sequence[tuple[int, int]],
                 order: int) -> list[bool]:
    """Top-5 by back-off counts: the longest context (<= ``order`` pages) first, then shorter ones, then
    popularity, until five pages are listed."""
    contexts: list[defaultdict[tuple[str, ...], Counter[str]]] = [defaultdict(Counter) for _ in range(order)]
    popularity: Counter[str] = Counter()
    for s in fit:
        pages = s.pages
        for i in range(1, len(pages)):
            popularity[pages[i]] += 1
            for k in range(1, min(order, i) + 1):
                contexts[k - 1][tuple(pages[i - k : i])][pages[i]] += 1
    fill = [p for p, _ in popularity.most_common(10)]
    out = []
    for si, i in scored:
        pages = test[si].pages
        ranked: list[str] = []
        for k in range(min(order, i), 0, -1):
            successors = contexts[k - 1].get(tuple(pages[i - k : i]))
            if successors:
                ranked += [p for p, _ in successors.most_common(5) if p not in ranked]
            if len(ranked) >= 5:
                break
        ranked += [p for p in fill if p not in ranked]
        out.append(pages[i] in ranked[:5])
    return out


def online_hits(fit: Sequence[Session], test: Sequence[Session], scored: Sequence[tuple[int, int]]) -> list[bool]:
    """First-order back-off counts that take in each test session after it has been scored."""
    pairs: defaultdict[str, Counter[str]] = defaultdict(Counter)
    popularity: Counter[str] = Counter()

    def add(s: Session) -> None:
        for a, b in zip(s.pages, s.pages[1:], strict=False):
            pairs[a][b] += 1
            popularity[b] += 1

    for s in fit:
        add(s)
    wanted: defaultdict[int, list[int]] = defaultdict(list)
    for si, i in scored:
        wanted[si].append(i)
    out: list[bool] = []
    last = max(wanted, default=-1)
    for si, s in enumerate(test[: last + 1]):
        fill = [p for p, _ in popularity.most_common(10)]
        for i in wanted.get(si, []):
            ranked = [p for p, _ in pairs[s.pages[i - 1]].most_common(5)] if s.pages[i - 1] in pairs else []
            ranked += [p for p in fill if p not in ranked]
            out.append(s.pages[i] in ranked[:5])
        add(s)
    return out


def context_oracle(pairs: Sequence[Pair], order: int) -> tuple[float, int, int]:
    """HR@5 of the best fixed top 5 per context (the last ``order`` pages), taken from the scored pairs' own
    counts: an upper bound on any model whose answer depends on that context alone (tested). Also the number
    of contexts, and of those with <= 5 transitions (where the bound is loose: it memorises them)."""
    groups: defaultdict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for h, t in pairs:
        groups[tuple(h[-order:])][t] += 1
    best = sum(sum(c for _, c in g.most_common(5)) for g in groups.values())
    return best / max(1, len(pairs)), len(groups), sum(1 for g in groups.values() if g.total() <= 5)


def ceiling(key: str, limit: int, console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    split = time_split(read_sessions(SESSION_TRACES[key]))
    fit = split.train_and_validation
    scored = scored_pairs(split.test, limit)
    pairs: list[Pair] = [(history(split.test[si], i), split.test[si].pages[i]) for si, i in scored]
    seen_pages = {p for s in fit for p in s.pages}
    seen_pairs = {(a, b) for s in fit for a, b in zip(s.pages, s.pages[1:], strict=False)}
    unseen_target = [t not in seen_pages for _, t in pairs]
    unseen_pair = [(h[-1], t) not in seen_pairs for h, t in pairs]
    r: dict[str, Any] = {
        "trace": str(SESSION_TRACES[key]), "test_transitions_scored": len(pairs),
        "share_target_unseen": mean(unseen_target), "share_pair_unseen": mean(unseen_pair),
        "share_target_in_history": mean([t in h for h, t in pairs]),
        "share_target_unseen_by_fifth": fifths(unseen_target), "share_pair_unseen_by_fifth": fifths(unseen_pair),
    }
    honest: dict[str, list[bool]] = {}
    for kind in ("markov-count", "ppm"):
        model = fitted(kind, fit)
        ranked = [[p for p, _ in model.predict(h, 20)] for h, _ in pairs]
        honest[kind] = [t in lst[:5] for lst, (_, t) in zip(ranked, pairs, strict=True)]
        r[f"{kind}_hr5"] = mean(honest[kind])
        r[f"{kind}_hr5_by_fifth"] = fifths(honest[kind])
        r[f"{kind}_hr5_on_seen_pairs"] = mean([h for h, u in zip(honest[kind], unseen_pair, strict=True) if not u])
        for k in (10, 20):
            r[f"{kind}_hr{k}"] = mean([t in lst[:k] for lst, (_, t) in zip(ranked, pairs, strict=True)])
    test_sessions = split.test[: scored[-1][0] + 1] if scored else []
    for kind in ("markov-count", "ppm"):
        r[f"in_sample_{kind}_hr5"] = mean(hits_at(fitted(kind, [*fit, *test_sessions]), pairs, 5))
    for order in (1, 2, 3):
        hr5, contexts, sparse = context_oracle(pairs, order)
        r[f"context_oracle_order{order}_hr5"] = round(hr5, 4)
        r[f"context_oracle_order{order}_contexts"] = contexts
        r[f"context_oracle_order{order}_sparse_contexts"] = sparse
        frozen = backoff_hits(fit, split.test, scored, order)
        fresh: list[bool] = []
        for half in (0, 1):
            other = [s for j, s in enumerate(split.test) if j % 2 != half]
            mine = [(si, i) for si, i in scored if si % 2 == half]
            fresh += backoff_hits([*fit, *other], split.test, mine, order)
        r[f"backoff_order{order}_hr5"] = mean(frozen)
        r[f"test_period_backoff_order{order}_hr5"] = mean(fresh)
    r["online_markov_hr5"] = mean(online_hits(fit, split.test, scored))
    r["seconds"] = round(time.perf_counter() - started, 1)
    console.print(f"{key}: {len(pairs):,} test transitions, {r['seconds']:.0f} s")
    return r


def print_table(results: dict[str, dict[str, Any]], console: Console) -> None:
    table = Table(title="HR@5 ceilings (rows after the first two look at the test part on purpose)")
    table.add_column("row")
    for key in results:
        table.add_column(key, justify="right")
    rows = [
        ("honest markov-count (train+val)", "markov-count_hr5"), ("honest ppm (train+val)", "ppm_hr5"),
        ("share: target never seen", "share_target_unseen"), ("share: (last -> target) unseen", "share_pair_unseen"),
        ("share: target already in history", "share_target_in_history"),
        ("markov-count on seen pairs only", "markov-count_hr5_on_seen_pairs"),
        ("re-rank ceiling: ppm HR@10", "ppm_hr10"), ("re-rank ceiling: ppm HR@20", "ppm_hr20"),
        ("in-sample markov-count", "in_sample_markov-count_hr5"), ("in-sample ppm", "in_sample_ppm_hr5"),
        *[(f"context oracle, last {o} page(s)", f"context_oracle_order{o}_hr5") for o in (1, 2, 3)],
        *[(f"back-off order {o}, train+val", f"backoff_order{o}_hr5") for o in (1, 2, 3)],
        *[(f"back-off order {o}, + other half of test", f"test_period_backoff_order{o}_hr5") for o in (1, 2, 3)],
        ("online markov-count (counts each test session)", "online_markov_hr5"),
    ]
    for label, field in rows:
        table.add_row(label, *[f"{r[field]:.4f}" for r in results.values()])
    console.print(table)
    for key, r in results.items():
        console.print(f"{key} by fifth of test: target unseen {r['share_target_unseen_by_fifth']}, "
                      f"markov-count HR@5 {r['markov-count_hr5_by_fifth']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", default="bms,msnbc")
    parser.add_argument("--max-test-transitions", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "predictor_ceiling.json")
    args = parser.parse_args()
    console = Console(width=150)
    results: dict[str, dict[str, Any]] = {}
    for key in [t.strip() for t in args.traces.split(",") if t.strip()]:
        if not SESSION_TRACES[key].exists():
            console.print(f"[yellow]skipping {key}: {SESSION_TRACES[key]} not found[/yellow]")
            continue
        results[key] = ceiling(key, args.max_test_transitions, console)
    print_table(results, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "command": " ".join(["bench/bench_predictor_ceiling.py", *sys.argv[1:]]),
               "max_test_transitions": args.max_test_transitions, "results": results}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
