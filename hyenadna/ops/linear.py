"""Dense projections for inference: ``y = act(x @ W^T + b)``, with act the identity or tanh-GELU.

``linear_ref`` is plain ``F.linear`` (torch's CPU fp32 matmul is MKL's sgemm). ``linear`` is the fast path: oneDNN's
fused linear + post-op, which torch ships for its own compiler. On these AMD EPYC machines it ran fp32 projections at
~2x MKL's speed and the MLP's fc1 + GELU at ~2x (benchmarks/matmul.py), because MKL does not use its AVX-512 kernels
there. It has no autograd, so the training paths keep ``F.linear``. Where the op is missing (a torch built without
oneDNN), off the CPU, or for dtypes other than fp32/bf16, ``linear`` falls back to ``linear_ref``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

# Tests switch the fast path off to compare it with the reference on the same inputs.
USE_ONEDNN = True


def linear_ref(x: Tensor, weight: Tensor, bias: Tensor | None = None, gelu: bool = False) -> Tensor:
    """Reference path: ``F.linear``, then tanh-GELU if asked."""
    y = F.linear(x, weight, bias)
    return F.gelu(y, approximate="tanh") if gelu else y


@functools.cache
def onednn_available() -> bool:
    """The fused op exists and runs here (checked once on a tiny input)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    try:
        x, w = torch.ones(2, 3), torch.ones(4, 3)
        return torch.equal(torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], ""), x @ w.T)
    except (RuntimeError, NotImplementedError):
        return False


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, gelu: bool = False) -> Tensor:
    """Fast path, same contract as ``linear_ref``, for inference (no autograd). Under CPU autocast it computes in
    bf16 like ``F.linear`` would, since the oneDNN op is outside autocast's reach."""
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    if not _fast_path_applies(x, weight, bias):
        return linear_ref(x, weight, bias, gelu)
    if gelu:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh")
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _fast_path_applies(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return (
        USE_ONEDNN
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and all(t.dtype == x.dtype for t in tensors)
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
        and onednn_available()
    )
