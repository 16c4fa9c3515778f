"""The Hyena operator's short filter: a depthwise causal FIR of K taps along L, ``y[c, t] = b_c + sum_j w[c, j]
z[c, t - K + 1 + j]`` with zeros before the start.

``causal_short_conv_ref`` runs it as the reference does (a padded depthwise ``conv1d``). ``causal_short_conv`` is the
fast path: K shifted multiply-adds on the channels-first tensor, with no padded copy, an optional output buffer, an
optional input bias folded in, and a matching hand-written backward for training. ``causal_short_conv_tokens`` is the
same FIR on a token-major (L, C) tensor, for the long-sequence path, whose projections come out token-major.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def causal_short_conv_ref(z: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Reference path. z (..., C, L), weight (C, K), bias (C,) -> (..., C, L)."""
    taps, squeeze = weight.shape[1], z.dim() == 2
    out = F.conv1d(z[None] if squeeze else z, weight[:, None], bias, padding=taps - 1, groups=z.shape[-2])
    out = out[..., : z.shape[-1]]
    return out[0] if squeeze else out


def causal_short_conv(
    z: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor | None = None, out: Tensor | None = None
) -> Tensor:
    """Fast path, same contract as ``causal_short_conv_ref``; computes the FIR of ``z + input_bias``.

    Folding the in_proj bias in here saves a pass over the (3D x L) projections: the bias adds a per-channel
    constant, except at the first K-1 positions, whose missing taps read the causal zero padding. With autograd (and
    no ``out`` / ``input_bias``) it runs through ``_ShortConv``, whose backward is the same shifts transposed."""
    if torch.is_grad_enabled() and (z.requires_grad or weight.requires_grad or bias.requires_grad):
        if out is not None or input_bias is not None:
            raise ValueError("causal_short_conv: out= and input_bias are for inference only")
        return _ShortConv.apply(z, weight, bias)
    return _short_conv_forward(z, weight, bias, input_bias, out)


def _short_conv_forward(z: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor | None, out: Tensor | None):
    taps, seqlen = weight.shape[1], z.shape[-1]
    const = bias if input_bias is None else bias + input_bias * weight.sum(1)
    # mul then add: addcmul with two broadcast operands runs on a slow path
    out = torch.mul(z, weight[:, -1:], out=out).add_(const[:, None])
    for j in range(1, min(taps, seqlen)):
        out[..., j:].addcmul_(z[..., :-j], weight[:, -1 - j : -j])
    if input_bias is not None:
        for t in range(min(taps - 1, seqlen)):
            out[..., t] -= input_bias * weight[:, : taps - 1 - t].sum(1)
    return out


def causal_short_conv_tokens(z: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Inference on a token-major z (L, C) -> (L, C), in the dtype of ``weight`` (a bf16 z is widened first: mixed
    dtype multiply-adds take a slow path). Each shift moves whole rows, so every multiply-add runs on contiguous
    memory."""
    taps, seqlen = weight.shape[1], z.shape[0]
    z = z.to(weight.dtype)
    out = torch.mul(z, weight[:, -1]).add_(bias)
    for j in range(1, min(taps, seqlen)):
        out[j:].addcmul_(z[:-j], weight[:, -1 - j])
    return out


class _ShortConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(z, weight)
        return _short_conv_forward(z, weight, bias, None, None)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z, weight = ctx.saved_tensors
        taps, seqlen = weight.shape[1], z.shape[-1]
        batch_dims = (*range(z.dim() - 2), z.dim() - 1)  # every dim but the channels
        grad_z = grad * weight[:, -1:]
        grad_w = torch.zeros_like(weight)
        grad_w[:, -1] = (grad * z).sum(batch_dims)
        for j in range(1, min(taps, seqlen)):  # tap -1-j reads z shifted by j: its gradient reads grad shifted back
            grad_z[..., :-j].addcmul_(grad[..., j:], weight[:, -1 - j : -j])
            grad_w[:, -1 - j] = (grad[..., j:] * z[..., :-j]).sum(batch_dims)
        return grad_z, grad_w, grad.sum(batch_dims)
