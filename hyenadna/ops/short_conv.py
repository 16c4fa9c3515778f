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

from hyenadna.ops import fused


def causal_short_conv_ref(z: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Reference path. z (..., C, L), weight (C, K), bias (C,) -> (..., C, L)."""
    taps, squeeze = weight.shape[1], z.dim() == 2
    out = F.conv1d(z[None] if squeeze else z, weight[:, None], bias, padding=taps - 1, groups=z.shape[-2])
    out = out[..., : z.shape[-1]]
    return out[0] if squeeze else out


def causal_short_conv(
    z: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor | None = None, out: Tensor | None = None
) -> Tensor:
    """Fast path, same contract as ``causal_short_conv_ref``; computes the FIR of ``z + input_bias`` in float32 (z may
    be bf16, as in_proj's output under autocast).

    Folding the in_proj bias in here saves a pass over the (3D x L) projections: without autograd the bias adds a
    per-channel constant, except at the first K-1 positions, whose missing taps read the causal zero padding. With
    autograd (and no ``out``) it runs through ``_ShortConv``: fused kernels forward and backward."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (z, weight, bias, input_bias)):
        if out is not None:
            raise ValueError("causal_short_conv: out= is for inference only")
        return _ShortConv.apply(z, weight, bias, input_bias)
    return _short_conv_forward(z.to(torch.promote_types(z.dtype, torch.float32)), weight, bias, input_bias, out)


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
    """The training path's short conv of ``z + input_bias``: the fused kernels of ops/fused.py on the channels-first
    view, so that z's (3D, B, L) memory order reaches them as contiguous rows and the output and z's gradient come
    back in it (gated_fftconv and in_proj's backward read them so)."""

    @staticmethod
    def forward(ctx, z: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(z, weight, input_bias)
        return fused.short_conv(z.movedim(-2, 0), weight, bias, input_bias).movedim(0, -2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        z, weight, input_bias = ctx.saved_tensors
        grad_z, grad_w, grad_b, grad_input_bias = fused.short_conv_grads(
            z.movedim(-2, 0), weight, grad.movedim(-2, 0), input_bias
        )
        return grad_z.movedim(0, -2), grad_w, grad_b, grad_input_bias
