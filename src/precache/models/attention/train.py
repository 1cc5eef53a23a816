"""Training loop for the attention model (PyTorch; never imported by serving code).

Every prefix of every training window is a training example (one forward pass yields a prediction at
each position), with a full-softmax cross-entropy over *every* page seen at least ``min_count`` times in
training (no fixed vocabulary ceiling; the output layer is tied to the page table, so a page costs one
row). The first-order Markov term (:class:`~precache.models.attention.features.MarkovTerm`) is added
to the logits with the transition being predicted left out of its counts. Early stopping looks at the
validation slice only (the end of the training part; never the test part). Windows are bucketed by
length so short sessions do not pay for padding, and the batch shrinks as the vocabulary grows so a
batch's logits stay bounded in memory. ``max_seconds`` bounds wall time; the report says when it cut
training short.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from precache.models.attention.features import PAD_ID, MarkovTerm, PageIndex, build_segments
from precache.models.attention.network import NetworkConfig, PageModel
from precache.traces.model import Session

SMALL_TRACE_WINDOWS = 100_000
LOGIT_ELEMENTS = 6_000_000  # max batch positions x vocabulary per step (memory of the logits and their grad)

Window = tuple[list[int], list[int], int, int]  # ids, segments, entry id, entry segment


@dataclass(slots=True)
class TrainConfig:
    """The training loop's hyper-parameters. Their defaults are :class:`AttentionPredictor`'s signature, the
    one place they are written: build one with ``AttentionPredictor(...).train_config()``."""

    vocab_size: int | None  # optional ceiling; None: every page seen ``min_count`` times
    min_count: int
    max_len: int
    d_model: int
    heads: int
    layers: int
    dropout: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    seed: int
    threads: int
    max_seconds: float | None
    max_train_windows: int | None  # subsample (most recent windows kept) for huge traces
    segments: bool
    entry: bool
    markov: bool
    size_budget: int | None  # bytes on disk; the page table's width shrinks to fit
    max_validation_transitions: int = 50_000  # not a predictor parameter
    markov_entries: int | None = None  # None: as many as fit a fifth of ``size_budget``

    def budget_d_model(self, vocab: int) -> int:
        """``d_model``, narrowed so the int8 page table (1 byte per page and dimension, plus a scale and a
        bias per page) takes at most 60% of the 1 MB budget: 64 up to ~8,500 pages, 48 at 10,000, 16 from
        ~27,000; past ~40,000 pages even 16 dimensions overflow it (auto then refuses the model)."""
        if self.size_budget is None:
            return self.d_model
        step = 8 * self.heads // math.gcd(8, self.heads)
        fit = int(0.6 * self.size_budget / max(vocab, 1)) - 6
        return max(16 if 16 % self.heads == 0 else self.heads, min(self.d_model, fit // step * step))

    def budget_markov_entries(self) -> int | None:
        """Transition pairs kept: about 4 bytes each (uint16 column and count) in a fifth of the budget."""
        if self.markov_entries is not None or self.size_budget is None:
            return self.markov_entries
        return self.size_budget // 5 // 4

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class TrainResult:
    model: PageModel
    index: PageIndex
    segments: list[str]
    counts: list[int]
    term: MarkovTerm | None
    epochs_run: int
    best_epoch: int
    seconds: float
    stopped_by_time: bool
    train_windows: int
    history: list[dict[str, float]] = field(default_factory=list)


def build_vocabulary(sessions: Sequence[Session], size: int | None, min_count: int = 1) -> tuple[list[str], list[int]]:
    """Pages seen at least ``min_count`` times (at most ``size``, most frequent first; ties by name, the
    order of :class:`precache.models.vocabulary.Vocabulary`). Falls back to ``min_count`` 1 when the
    threshold would leave no page (tiny traces)."""
    counts = Counter(page for s in sessions for page in s.pages)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = [(p, c) for p, c in ranked if c >= min_count] or ranked
    if size is not None:
        kept = kept[:size]
    return [page for page, _ in kept], [count for _, count in kept]


def windows(sessions: Sequence[Session], index: PageIndex, max_len: int) -> list[Window]:
    """Cut sessions into windows of at most ``max_len + 1`` pages overlapping by one, so that every
    transition is a target exactly once; each window carries its session's entry page."""
    out: list[Window] = []
    for s in sessions:
        ids, segs = index.encode(s.pages)
        for start in range(0, max(len(ids) - 1, 0), max_len):
            chunk = ids[start : start + max_len + 1]
            if len(chunk) >= 2:
                out.append((chunk, segs[start : start + max_len + 1], ids[0], segs[0]))
    return out


def left_pad(rows: Sequence[Sequence[int]], width: int | None = None) -> np.ndarray:
    width = width or max(len(r) for r in rows)
    arr = np.full((len(rows), width), PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        r = r[-width:]
        if r:
            arr[i, width - len(r) :] = r
    return arr


@dataclass(slots=True)
class Batch:
    ids: np.ndarray
    segs: np.ndarray
    entry_ids: np.ndarray
    entry_segs: np.ndarray


def make_batch(rows: Sequence[Window]) -> Batch:
    return Batch(left_pad([r[0] for r in rows]), left_pad([r[1] for r in rows]),
                 np.array([r[2] for r in rows], dtype=np.int64), np.array([r[3] for r in rows], dtype=np.int64))


def _batches(rows: list[Window], batch_size: int, rng: random.Random) -> list[Batch]:
    """Length-bucketed batches: sort by length, cut, shuffle the batch order."""
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i][0]), rng.random()))
    batches = [make_batch([rows[i] for i in order[j : j + batch_size]]) for j in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def step_logits(model: PageModel, term: MarkovTerm | None, batch: Batch,
                leave_one_out: bool) -> tuple[torch.Tensor, np.ndarray]:
    """Logits ``[positions, vocab]`` of every position of the batch and the targets (PAD where none)."""
    x, y = batch.ids[:, :-1], batch.ids[:, 1:].copy()
    y[x == PAD_ID] = PAD_ID  # a first real page is not a target of the pad before it
    h = model.hidden(torch.from_numpy(x), torch.from_numpy(batch.segs[:, :-1]), torch.from_numpy(batch.entry_ids),
                     torch.from_numpy(batch.entry_segs))
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    markov = None
    if term is not None:
        rows = term.rows(flat_x)
        if leave_one_out:
            rows[np.arange(len(flat_y)), flat_y] -= term.leave_one_out(flat_x, flat_y)
        markov = torch.from_numpy(rows)
    return model.logits(h.reshape(-1, h.shape[-1]), markov), flat_y


def validation_chunks(model: PageModel, term: MarkovTerm | None, rows: list[Window],
                      batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(logits, targets) of every real transition of ``rows``, chunk by chunk (eval mode, no grad)."""
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    with torch.no_grad():
        for j in range(0, len(order), batch_size):
            logits, targets = step_logits(model, term, make_batch([rows[i] for i in order[j : j + batch_size]]), False)
            keep = targets != PAD_ID
            yield logits.numpy()[keep], targets[keep]


def ranking_metrics(chunks: Iterator[tuple[np.ndarray, np.ndarray]], k: int = 5) -> dict[str, float]:
    """HR@k / MRR@k / NLL as the evaluation protocol counts them: PAD and OOV are never recommended,
    so a transition to an out-of-vocabulary page is a miss."""
    n = 0
    hits = rr = nll = 0.0
    for logits, targets in chunks:
        if not len(targets):
            continue
        rows = np.arange(len(targets))
        masked = logits.copy()
        masked[:, :2] = -np.inf
        rank = (masked > masked[rows, targets][:, None]).sum(axis=1) + 1
        hit = (rank <= k) & (targets >= 2)
        shifted = logits - logits.max(axis=1, keepdims=True)
        nll += float((np.log(np.exp(shifted).sum(axis=1)) - shifted[rows, targets]).sum())
        hits += float(hit.sum())
        rr += float(np.where(hit, 1.0 / rank, 0.0).sum())
        n += len(targets)
    if n == 0:
        return {"hr5": 0.0, "mrr5": 0.0, "nll": math.nan}
    return {"hr5": hits / n, "mrr5": rr / n, "nll": nll / n}


def train_network(
    train: Sequence[Session],
    validation: Sequence[Session] | None,
    config: TrainConfig,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit a :class:`PageModel` on ``train``; early-stop on ``validation`` HR@5 (or the last 10% of
    ``train`` windows when no validation slice is given). Seeded; ``config.threads`` intra-op threads."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    pages, counts = build_vocabulary(train, config.vocab_size, config.min_count)
    segments = build_segments(pages) if config.segments else []
    index = PageIndex(pages, segments)
    train_rows = windows(train, index, config.max_len)
    if config.max_train_windows is not None and len(train_rows) > config.max_train_windows:
        train_rows = train_rows[-config.max_train_windows :]  # keep the most recent (time-ordered input)
    if validation:
        val_rows = windows(validation, index, config.max_len)
    else:
        cut = max(1, len(train_rows) // 10)
        train_rows, val_rows = train_rows[:-cut], train_rows[-cut:]
    if not train_rows:
        raise ValueError("no training transitions: every session has a single page")
    val_rows = _cap_rows(val_rows, config.max_validation_transitions)
    term = (MarkovTerm.from_sequences((r[0] for r in train_rows), index.size, config.budget_markov_entries())
            if config.markov else None)
    counts_only = term or MarkovTerm.from_sequences((r[0] for r in train_rows), index.size, 0)
    popularity = counts_only.popularity
    log_prior = torch.from_numpy(np.log(np.maximum(popularity, 1e-12)).astype(np.float32))
    # Both cores only where it pays: on small traces a second intra-op thread made training 10-20x
    # *slower* on a busy 2-core machine (thread hand-off dominates).
    threads = max(1, config.threads) if len(train_rows) >= SMALL_TRACE_WINDOWS else 1
    torch.set_num_threads(threads)
    net_config = NetworkConfig(vocab_size=index.size, max_len=config.max_len, d_model=config.budget_d_model(index.size),
                               heads=config.heads, layers=config.layers, dropout=config.dropout,
                               segments=len(segments) + 1 if segments else 0, entry=config.entry)
    model = PageModel(net_config, torch.from_numpy(index.segment_of) if segments else None, log_prior)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD_ID)
    batch_size = max(8, min(config.batch_size, LOGIT_ELEMENTS // (config.max_len * index.size)))
    best_state = copy.deepcopy(model.state_dict())
    best_score, best_epoch, bad, epochs_run = -1.0, 0, 0, 0
    stopped_by_time = False
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        deadline = None if config.max_seconds is None else started + config.max_seconds
        total, count, stopped_by_time = _train_epoch(model, term, train_rows, batch_size, rng, optimizer, loss_fn,
                                                     deadline)
        epochs_run = epoch
        metrics = ranking_metrics(validation_chunks(model, term, val_rows, batch_size))
        metrics.update(epoch=float(epoch), train_loss=total / max(count, 1), seconds=time.perf_counter() - started,
                       alpha=float(model.alpha.detach()))
        history.append(metrics)
        if log:
            log(f"epoch {epoch}: train_loss={metrics['train_loss']:.4f} val_hr5={metrics['hr5']:.4f} "
                f"val_nll={metrics['nll']:.4f} alpha={metrics['alpha']:.2f} ({metrics['seconds']:.0f}s)")
        if metrics["hr5"] > best_score + 1e-4:
            best_score, best_epoch, bad = metrics["hr5"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        if bad >= config.patience or stopped_by_time:
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model, index=index, segments=segments, counts=counts, term=term, epochs_run=epochs_run,
        best_epoch=best_epoch, seconds=time.perf_counter() - started, stopped_by_time=stopped_by_time,
        train_windows=len(train_rows), history=history,
    )


def _train_epoch(model: PageModel, term: MarkovTerm | None, rows: list[Window], batch_size: int,
                 rng: random.Random, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                 deadline: float | None) -> tuple[float, int, bool]:
    """One pass over ``rows`` in shuffled batches; returns the summed loss, the windows seen and whether
    the ``deadline`` (``time.perf_counter`` seconds) cut the pass short."""
    model.train()
    total, count = 0.0, 0
    for batch in _batches(rows, batch_size, rng):
        logits, targets = step_logits(model, term, batch, leave_one_out=True)
        loss = loss_fn(logits, torch.from_numpy(targets))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total += loss.item() * len(batch.ids)
        count += len(batch.ids)
        if deadline is not None and time.perf_counter() > deadline:
            return total, count, True
    return total, count, False


def _cap_rows(rows: list[Window], max_transitions: int) -> list[Window]:
    """Keep the first rows up to ``max_transitions`` transitions (validation cost stays bounded)."""
    out: list[Window] = []
    n = 0
    for r in rows:
        if n >= max_transitions:
            break
        out.append(r)
        n += len(r[0]) - 1
    return out
