"""No vocabulary ceiling: the attention model covers every page seen twice in training (here 1,500), and
predicts pages far down the frequency ranking; pages seen once are pruned from its vocabulary."""

from __future__ import annotations

import random

import pytest
import torch

from precache.models.attention import AttentionPredictor
from precache.traces.model import Session

torch.set_num_threads(1)
PAGES = 1500


def chain_sessions(n: int, seed: int) -> list[Session]:
    """Page i is always followed by page (7 i + 3) mod 1500: a deterministic site larger than 1,000 pages."""
    rng = random.Random(seed)
    out = []
    for s in range(n):
        page = rng.randrange(PAGES)
        pages = []
        for _ in range(4):
            pages.append(f"/d{page % 30}/p{page}")
            page = (7 * page + 3) % PAGES
        out.append(Session(str(s), f"c{s}", float(s), pages))
    return out


@pytest.mark.slow
def test_attention_covers_every_page_seen_twice_past_one_thousand() -> None:
    sessions = chain_sessions(2400, seed=3)
    once = Session("x", "x", 1e9, ["/rare/once", "/rare/also-once"])
    model = AttentionPredictor(epochs=1, d_model=16, max_len=4, batch_size=64, dropout=0.0, threads=1, lr=3e-3)
    model.fit([*sessions[:2000], once], sessions[2000:2200])
    assert model.vocabulary is not None and model.vocabulary_size > 1000
    assert "/rare/once" not in model.vocabulary  # pruned: never seen twice
    assert model.metrics["training"]["segments"] == 30  # /d0 ... /d29 path segments
    test = [s for s in chain_sessions(300, seed=4)]
    ranks = {page: i for i, page in enumerate(model.vocabulary.pages)}
    hits = total = 0
    for s in test:
        for i in range(1, len(s.pages)):
            if ranks.get(s.pages[i], 0) > 1000:  # targets beyond the old 1,000-page vocabulary
                total += 1
                hits += model.predict(s.pages[:i], 1)[0][0] == s.pages[i]
    assert total > 50 and hits / total >= 0.9, (hits, total)
