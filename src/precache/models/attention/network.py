"""The SASRec-style causal transformer over page vectors (PyTorch; imported only for training and export).

Why the embeddings live *outside* the exported graph: the page table is most of the model (10,000
pages x 64 dims), and keeping it in numpy lets it be stored once, as int8 with one scale per page, for
both the input lookup and the tied output layer (an ONNX graph holding a tied table stores it twice,
and its int8 Gather lost accuracy). The graph, :class:`Encoder`, maps page vectors to the hidden state of
the last position; :class:`PageModel` adds what training needs around it: the page table, the
path-segment table, the entry-page input and the logits. The logits are::

    logits(x) = h . v(x) + bias(x) + alpha * M[last, x]

where ``v(x) = E[x] + S[segment(x)]`` (page + path-segment vector, tied input/output), ``bias`` starts at
log popularity and ``M`` is the sparse first-order Markov log-odds term (see ``markov_table``): with
``alpha`` = 1 and a near-zero ``h`` the network *starts* as a smoothed Markov model and only has to
learn what Markov misses.

Why a hand-written attention block instead of ``nn.TransformerEncoder``: sessions are *left-padded*
and the pad keys must be masked per row; here causal + padding masking is a plain additive mask with a
large *finite* negative, so fully padded rows stay finite (no NaN) and the graph exports to ONNX as
ordinary MatMul/Softmax nodes. Positions count from the first real page of the window, so a prefix gets
the same representation inside a long training window or alone at inference time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

PAD_ID = 0
OOV_ID = 1
_NEG = -1.0e9


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Shape of the network; stored in the manifest so a model can be rebuilt for parity checks."""

    vocab_size: int
    max_len: int = 30
    d_model: int = 64
    heads: int = 2
    layers: int = 2
    dropout: float = 0.2
    segments: int = 0  # path-segment table size (0: no segment input)
    entry: bool = True  # the session's entry page as an extra input

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Block(nn.Module):
    """Pre-norm self-attention + feed-forward, with an explicit additive mask."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError("d_model must be divisible by heads")
        self.heads = heads
        self.d_head = d_model // heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``last_only``: keys/values for every position but queries, projection and feed-forward for
        the last position only (``[b, 1, d]`` out) -- what the exported final block needs."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        if last_only:
            q, x, mask = q[:, -1:, :], x[:, -1:, :], mask[:, :, -1:, :]
        tq = q.shape[1]
        q = q.reshape(b, tq, self.heads, self.d_head).transpose(1, 2)
        k = k.reshape(b, t, self.heads, self.d_head).transpose(1, 2)
        v = v.reshape(b, t, self.heads, self.d_head).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head)) + mask
        att = self.drop(torch.softmax(scores, dim=-1))
        h = torch.matmul(att, v).transpose(1, 2).reshape(b, tq, d)
        x = x + self.drop(self.proj(h))
        out: torch.Tensor = x + self.drop(self.ff(self.norm2(x)))
        return out


class Encoder(nn.Module):
    """Page vectors ``[b, t, d]`` + real-page mask ``[b, t]`` (+ entry vector ``[b, d]``) -> hidden states.

    This is the part exported to ONNX (``last=True``: only the last position's state, ``[b, d]``)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.pos = nn.Embedding(config.max_len, d)
        self.entry = nn.Linear(d, d, bias=False) if config.entry else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(d, config.heads, config.dropout) for _ in range(config.layers))
        self.norm = nn.LayerNorm(d)
        nn.init.normal_(self.pos.weight, std=0.02)
        if self.entry is not None:
            nn.init.zeros_(self.entry.weight)  # starts without the input; learns whether it helps

    def forward(self, emb: torch.Tensor, real: torch.Tensor, entry: torch.Tensor, last: bool = False) -> torch.Tensor:
        positions = torch.clamp(torch.cumsum(real, dim=1) - 1, min=0).to(torch.int64)
        x = emb + self.pos(positions)
        if self.entry is not None:
            x = x + self.entry(entry).unsqueeze(1)
        x = self.drop(x)
        t = emb.shape[1]
        idx = torch.arange(t, device=emb.device)
        causal = (idx.unsqueeze(0) > idx.unsqueeze(1)).to(x.dtype) * _NEG  # [t, t]: key after query
        pad_keys = (1.0 - real).to(x.dtype).unsqueeze(1).unsqueeze(1) * _NEG  # [b, 1, 1, t]
        mask = causal.unsqueeze(0).unsqueeze(0) + pad_keys
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last and i == n - 1)
        h: torch.Tensor = self.norm(x)
        return h[:, -1, :] if last else h


class PageModel(nn.Module):
    """Training-time model: page + segment tables, the encoder and the logits of the module docstring.

    ``segment_of`` maps network page id -> segment id (0 = none); ``markov`` is added by the caller as
    dense rows (``alpha`` scales it), so this module stays independent of how the table is stored."""

    def __init__(self, config: NetworkConfig, segment_of: torch.Tensor | None, log_prior: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.item = nn.Embedding(config.vocab_size, d, padding_idx=PAD_ID)
        self.segment = nn.Embedding(max(1, config.segments), d, padding_idx=0) if config.segments else None
        self.register_buffer("segment_of", segment_of if segment_of is not None else torch.zeros(0, dtype=torch.int64))
        self.encoder = Encoder(config)
        self.out_bias = nn.Parameter(log_prior.clone().to(torch.float32))
        self.alpha = nn.Parameter(torch.ones(()))
        nn.init.normal_(self.item.weight, std=0.05)
        with torch.no_grad():
            self.item.weight[PAD_ID].zero_()
            if self.segment is not None:
                nn.init.normal_(self.segment.weight, std=0.02)
                self.segment.weight[0].zero_()

    def page_vectors(self) -> torch.Tensor:
        """``v(x) = E[x] + S[segment(x)]`` for every network id (row 0, PAD, is zero): the output layer."""
        table = self.item.weight
        if self.segment is not None:
            table = table + self.segment(self.segment_of)
        out: torch.Tensor = table
        return out

    def vectors(self, ids: torch.Tensor, segs: torch.Tensor) -> torch.Tensor:
        """Input vectors of pages given per position: an OOV page still carries its path segment."""
        out: torch.Tensor = self.item(ids)
        return out + self.segment(segs) if self.segment is not None else out

    def hidden(self, ids: torch.Tensor, segs: torch.Tensor, entry_ids: torch.Tensor, entry_segs: torch.Tensor,
               last: bool = False) -> torch.Tensor:
        emb = self.vectors(ids, segs)
        real = (ids != PAD_ID).to(emb.dtype)
        entry = self.vectors(entry_ids, entry_segs)
        hidden: torch.Tensor = self.encoder(emb, real, entry, last=last)
        return hidden

    def logits(self, h: torch.Tensor, markov: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.matmul(h, self.page_vectors().t()) + self.out_bias
        return out if markov is None else out + self.alpha * markov
