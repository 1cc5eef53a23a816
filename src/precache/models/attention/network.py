"""The SASRec-style causal transformer over page ids (PyTorch; imported only for training and export).

Why a hand-written attention block instead of ``nn.TransformerEncoder``: sessions are *left-padded*
and the pad keys must be masked per row. The stock encoder needs ``is_causal=True`` to export (see
STACK-NOTES) and then may ignore a per-batch padding mask; here causal + padding masking is a plain
additive mask with a large *finite* negative, so fully padded rows stay finite (no NaN) and the graph
exports to ONNX as ordinary MatMul/Softmax nodes.

Positions count from the first real page of the window (0, 1, 2, ...), not from the window's left
edge: a prefix of a session then gets exactly the same representation whether it is seen inside a
long training window or alone at inference time, however much padding precedes it.
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
        the last position only (``[b, 1, d]`` out) -- what the exported final block needs; it removes
        about a third of the serving FLOPs and gives the same numbers as the full pass."""
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


class SASRec(nn.Module):
    """Page embeddings + positions -> causal blocks -> tied output layer.

    ``forward(ids)`` returns logits for *every* position ``[batch, seq, vocab]`` (training uses every
    prefix); ``last_logits(ids)`` returns only the last position ``[batch, vocab]`` (what is exported).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.item = nn.Embedding(config.vocab_size, config.d_model, padding_idx=PAD_ID)
        self.pos = nn.Embedding(config.max_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(config.d_model, config.heads, config.dropout) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.out_bias = nn.Parameter(torch.zeros(config.vocab_size))
        # GPT-2-style small init: with the default N(0, 1) positions would drown the page signal
        nn.init.normal_(self.item.weight, std=0.05)
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.item.weight[PAD_ID].zero_()

    def hidden(self, ids: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        real = (ids != PAD_ID).to(torch.int64)
        positions = torch.clamp(torch.cumsum(real, dim=1) - 1, min=0)
        x = self.item(ids) + self.pos(positions)
        x = self.drop(x)
        t = ids.shape[1]
        idx = torch.arange(t, device=ids.device)
        causal = (idx.unsqueeze(0) > idx.unsqueeze(1)).to(x.dtype) * _NEG  # [t, t]: key after query
        pad_keys = (1 - real).to(x.dtype).unsqueeze(1).unsqueeze(1) * _NEG  # [b, 1, 1, t]
        mask = causal.unsqueeze(0).unsqueeze(0) + pad_keys
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == n - 1)
        normed: torch.Tensor = self.norm(x)
        return normed

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Output layer tied to the page embeddings (halves the parameters; helps rare pages)."""
        return torch.matmul(h, self.item.weight.t()) + self.out_bias

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits(self.hidden(ids))

    def last_logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits(self.hidden(ids, last_only=True)[:, -1, :])


class LastLogits(nn.Module):
    """Export wrapper: ``ids`` [batch, seq] int64 (left-padded) -> logits of the last position."""

    def __init__(self, net: SASRec) -> None:
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net.last_logits(ids)
