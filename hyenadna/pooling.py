"""Mask-aware pooling of per-token hidden states: padding never leaks into a sequence's embedding."""

from __future__ import annotations

import torch
from torch import Tensor

POOLINGS = ("mean", "last", "max")


def masked_pool(hidden: Tensor, mask: Tensor, how: str = "mean") -> Tensor:
    """hidden: (B, L, D), mask: (B, L) bool with True on real tokens (right padding) -> (B, D)."""
    if how not in POOLINGS:
        raise ValueError(f"pooling={how!r}: choose one of {POOLINGS}")
    mask = mask.to(torch.bool)
    if how == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1)
    if how == "max":
        return hidden.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    last = (mask.sum(1) - 1).clamp_min(0)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
