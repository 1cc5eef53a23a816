"""Training loop for the attention model (PyTorch; never imported by serving code).

Every prefix of every training window is a training example (one forward pass yields a prediction at
each position), with a full-softmax cross-entropy over the vocabulary. Early stopping looks at the
validation slice only (the end of the training part; never the test part). Windows are bucketed by
length so short sessions (most of MSNBC) do not pay for padding. ``max_seconds`` bounds wall time so
that training on large traces fits a budget; the report says when it cut training short.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from precache.models.attention.network import OOV_ID, PAD_ID, NetworkConfig, SASRec
from precache.traces.model import Session

RESERVED = 2  # PAD_ID, OOV_ID
SMALL_TRACE_WINDOWS = 100_000


@dataclass(slots=True)
class TrainConfig:
    """Hyper-parameters; all stored in the manifest."""

    vocab_size: int = 1000
    max_len: int = 30
    d_model: int = 64
    heads: int = 2
    layers: int = 2
    dropout: float = 0.2
    epochs: int = 20
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.01
    patience: int = 2
    seed: int = 0
    threads: int = 2
    max_seconds: float | None = None
    max_train_windows: int | None = None  # subsample (most recent windows kept) for huge traces
    max_validation_transitions: int = 50_000

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def network(self, vocab_size: int) -> NetworkConfig:
        return NetworkConfig(
            vocab_size=vocab_size, max_len=self.max_len, d_model=self.d_model, heads=self.heads,
            layers=self.layers, dropout=self.dropout,
        )


@dataclass(slots=True)
class TrainResult:
    net: SASRec
    pages: list[str]
    counts: list[int]
    epochs_run: int
    best_epoch: int
    seconds: float
    stopped_by_time: bool
    train_windows: int
    validation_rows: list[list[int]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)


def build_vocabulary(sessions: Sequence[Session], size: int) -> tuple[list[str], list[int]]:
    """The ``size`` most frequent pages of the training sessions and their counts (ties broken by
    name, the same order as :class:`precache.models.vocabulary.Vocabulary`)."""
    counts = Counter(page for s in sessions for page in s.pages)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    return [page for page, _ in ranked], [count for _, count in ranked]


def encode(pages: Sequence[str], index: dict[str, int]) -> list[int]:
    return [index.get(p, OOV_ID) for p in pages]


def windows(sessions: Sequence[Session], index: dict[str, int], max_len: int) -> list[list[int]]:
    """Cut sessions into windows of at most ``max_len + 1`` ids overlapping by one id, so that every
    transition is a target exactly once; sessions with a single page carry no transition."""
    out: list[list[int]] = []
    for s in sessions:
        ids = encode(s.pages, index)
        for start in range(0, max(len(ids) - 1, 0), max_len):
            chunk = ids[start : start + max_len + 1]
            if len(chunk) >= 2:
                out.append(chunk)
    return out


def left_pad(rows: Sequence[Sequence[int]], width: int | None = None) -> np.ndarray:
    width = width or max(len(r) for r in rows)
    arr = np.full((len(rows), width), PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        r = r[-width:]
        if r:
            arr[i, width - len(r) :] = r
    return arr


def _batches(rows: list[list[int]], batch_size: int, rng: random.Random) -> list[np.ndarray]:
    """Length-bucketed batches: sort by length, cut, shuffle the batch order."""
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), rng.random()))
    batches = [left_pad([rows[i] for i in order[j : j + batch_size]]) for j in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def transition_logits(
    net: SASRec, rows: list[list[int]], batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and targets of every transition of ``rows`` (eval mode, no grad): the validation
    material for early stopping, calibration and the auto model's blend weights."""
    net.eval()
    out_logits: list[np.ndarray] = []
    out_targets: list[np.ndarray] = []
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    with torch.no_grad():
        for j in range(0, len(order), batch_size):
            batch = left_pad([rows[i] for i in order[j : j + batch_size]])
            x = torch.from_numpy(batch[:, :-1])
            y = batch[:, 1:]
            logits = net(x).numpy()
            keep = (y != PAD_ID) & (batch[:, :-1] != PAD_ID)
            out_logits.append(logits[keep])
            out_targets.append(y[keep])
    if not out_logits:
        return np.zeros((0, net.config.vocab_size), np.float32), np.zeros(0, np.int64)
    return np.concatenate(out_logits), np.concatenate(out_targets)


def ranking_metrics(logits: np.ndarray, targets: np.ndarray, k: int = 5) -> dict[str, float]:
    """HR@k / MRR@k as the evaluation protocol counts them: PAD and OOV are never recommended, so a
    transition to an out-of-vocabulary page is a miss."""
    if len(targets) == 0:
        return {"hr5": 0.0, "mrr5": 0.0, "nll": math.nan}
    masked = logits.copy()
    masked[:, :RESERVED] = -np.inf
    target_score = masked[np.arange(len(targets)), targets]
    rank = (masked > target_score[:, None]).sum(axis=1) + 1
    hit = (rank <= k) & (targets >= RESERVED)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logz = np.log(np.exp(shifted).sum(axis=1))
    nll = float(np.mean(logz - shifted[np.arange(len(targets)), targets]))
    return {
        "hr5": float(hit.mean()),
        "mrr5": float(np.where(hit, 1.0 / rank, 0.0).mean()),
        "nll": nll,
    }


def train_network(
    train: Sequence[Session],
    validation: Sequence[Session] | None,
    config: TrainConfig,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit a :class:`SASRec` on ``train``; early-stop on ``validation`` HR@5 (or the last 10% of
    ``train`` windows when no validation slice is given). Seeded; ``config.threads`` intra-op threads."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    pages, counts = build_vocabulary(train, config.vocab_size)
    index = {p: i + RESERVED for i, p in enumerate(pages)}
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
    # Both cores only where it pays: on small traces the batches are small and a second intra-op
    # thread made training 10-20x *slower* on a busy 2-core machine (thread hand-off dominates).
    threads = max(1, config.threads) if len(train_rows) >= SMALL_TRACE_WINDOWS else 1
    torch.set_num_threads(threads)
    net = SASRec(config.network(len(pages) + RESERVED))
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD_ID)
    best_state = copy.deepcopy(net.state_dict())
    best_score, best_epoch, bad, epochs_run = -1.0, 0, 0, 0
    stopped_by_time = False
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        net.train()
        total, count = 0.0, 0
        batches = _batches(train_rows, config.batch_size, rng)
        for batch in batches:
            x = torch.from_numpy(batch[:, :-1])
            y = torch.from_numpy(batch[:, 1:].copy())
            y[x == PAD_ID] = PAD_ID  # a first real page is not a target of the pad before it
            logits = net(x)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(batch)
            count += len(batch)
            if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
                stopped_by_time = True
                break
        epochs_run = epoch
        metrics = ranking_metrics(*transition_logits(net, val_rows))
        metrics.update(epoch=float(epoch), train_loss=total / max(count, 1),
                       seconds=time.perf_counter() - started)
        history.append(metrics)
        if log:
            log(f"epoch {epoch}: train_loss={metrics['train_loss']:.4f} val_hr5={metrics['hr5']:.4f} "
                f"val_nll={metrics['nll']:.4f} ({metrics['seconds']:.0f}s)")
        if metrics["hr5"] > best_score + 1e-4:
            best_score, best_epoch, bad = metrics["hr5"], epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            bad += 1
        if bad >= config.patience or stopped_by_time:
            break
    net.load_state_dict(best_state)
    net.eval()
    return TrainResult(
        net=net, pages=pages, counts=counts, epochs_run=epochs_run, best_epoch=best_epoch,
        seconds=time.perf_counter() - started, stopped_by_time=stopped_by_time,
        train_windows=len(train_rows), validation_rows=val_rows, history=history,
    )


def _cap_rows(rows: list[list[int]], max_transitions: int) -> list[list[int]]:
    """Keep the first rows up to ``max_transitions`` transitions (validation cost stays bounded)."""
    out: list[list[int]] = []
    n = 0
    for r in rows:
        if n >= max_transitions:
            break
        out.append(r)
        n += len(r) - 1
    return out
