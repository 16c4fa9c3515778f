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
from hyenadna.ops.linear import _linear_grads, _matmul_operands, _onednn_linear, onednn_trains


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


def in_proj_short_conv(
    u: Tensor, w_in: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor | None, batch: int
) -> Tensor | None:
    """Training on the CPU: in_proj without its bias, ``W_in @ u^T`` for the batch's tokens u (B*L, D), then the
    causal short conv of that plus the in_proj bias, as one autograd node (``_InProjShortConv``). Returns the short
    conv's output (B, 3D, L) in float32 and (3D, B, L) memory order, as ``causal_short_conv`` on in_proj's output, or
    None where the fast ops do not apply (off the CPU, compiled kernels or oneDNN off).

    in_proj reads u with K-1 zero tokens before each sequence, so its output has K-1 zero columns before each row and
    the conv's taps read plain shifted slices of it; the padding otherwise compiled to masked loads at every tap."""
    if input_bias is None:
        return None
    w_in, u, _ = _matmul_operands(w_in, u, None)
    if not (fused.USE_COMPILED and onednn_trains(w_in, u, None)):
        return None
    return _InProjShortConv.apply(u, w_in, weight, bias, input_bias, batch)


class _InProjShortConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, w_in: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor, batch: int) -> Tensor:
        taps, (tokens, d) = weight.shape[1], u.shape
        seqlen = tokens // batch
        u_pad = u.new_empty(batch, taps - 1 + seqlen, d)
        u_pad[:, : taps - 1] = 0
        u_pad[:, taps - 1 :] = u.view(batch, seqlen, d)
        z_pad = _onednn_linear(w_in, u_pad.view(-1, d), None).view(-1, batch, taps - 1 + seqlen)  # (3D, B, K-1+L)
        # the in_proj bias reaches every tap as a constant, except the taps that read the zero padding
        const = bias + input_bias * weight.sum(1)
        out = fused.short_conv_padded(z_pad, weight, const)
        for t in range(min(taps - 1, seqlen)):
            out[..., t] -= (input_bias * weight[:, : taps - 1 - t].sum(1))[:, None]
        ctx.save_for_backward(u, w_in, z_pad, weight, input_bias)
        return out.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        u, w_in, z_pad, weight, input_bias = ctx.saved_tensors
        taps = weight.shape[1]
        z = z_pad[..., taps - 1 :]  # in_proj's output without the padding, (3D, B, L)
        grad_z, grad_w, grad_b, grad_input_bias = fused.short_conv_grads(z, weight, grad.movedim(-2, 0), input_bias)
        needs = ctx.needs_input_grad
        grad_w_in, grad_u, _ = _linear_grads(
            (needs[1], needs[0], False), grad_z.reshape(z.shape[0], -1), w_in, u, False
        )
        return grad_u, grad_w_in, grad_w, grad_b, grad_input_bias, None
