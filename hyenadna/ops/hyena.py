"""The Hyena operator's algorithms, each tested against ``hyena_ref``, the reference algorithm step for step.

``ops/execution.py`` chooses among them; ``modules/hyena.py`` holds the weights and calls the chosen one. They take the
operator module for its weights (in_proj, short_filter, filter_fn, out_proj), like functional forms of its forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hyenadna.ops.execution import ExecutionOptions
from hyenadna.ops.fftconv import fft_length, fftconv, fftconv_inplace, fftconv_padded, fftconv_ref, gated_fftconv
from hyenadna.ops.linear import linear, linear_channels_first, matmul_dtype
from hyenadna.ops.short_conv import (
    causal_short_conv,
    causal_short_conv_ref,
    causal_short_conv_tokens,
    in_proj_short_conv,
)
from hyenadna.utils.memory import reuse_freed_memory

if TYPE_CHECKING:
    from hyenadna.modules.hyena import HyenaOperator


def hyena_ref(op: HyenaOperator, u: Tensor) -> Tensor:
    """The plain reference path, the reference algorithm step for step: transposes, a padded depthwise conv1d, the
    filter recomputed and transformed at length 2L on every call."""
    seqlen = u.shape[1]
    z = op.in_proj(u).transpose(1, 2)
    z = causal_short_conv_ref(z, op.short_filter.weight[:, 0], op.short_filter.bias)
    x0, x1, v = z.split(op.d_model, dim=1)
    v = fftconv_ref(op.dropout(x1 * v), op.filter_fn.filter(seqlen), op.filter_fn.bias)
    return op.out_proj((x0 * v).transpose(1, 2))


# Tokens a decoding block: the history before the block reaches its outputs through one FFT convolution, made as the
# block starts, and the block's own tokens through a direct causal sum (benchmarks/generate_speed.py --blocks)
DECODE_BLOCK = 512


@dataclass
class HyenaState:
    """What one operator keeps to extend its sequences by a token: the last K - 1 in_proj outputs (the short conv's
    taps), every gated input x1 * v so far (the long convolution's), the filter's taps reversed, and what the history
    before the current block adds to the block's outputs (``carry``)."""

    z_tail: Tensor  # (B, 3D, K - 1) float32
    history: Tensor  # (D, B, capacity) float32
    taps_reversed: Tensor  # (D, capacity) float32: taps_reversed[:, -n:] is h[n - 1], ..., h[0]
    block: int = DECODE_BLOCK
    length: int = 0
    block_start: int = 0
    carry: Tensor | None = None  # (D, B, <= block): sum over s < block_start of h[t - s] x1v[s], t in the block

    @classmethod
    def empty(cls, op: HyenaOperator, batch: int, capacity: int, block: int = DECODE_BLOCK) -> HyenaState:
        weight = op.in_proj.weight
        with torch.no_grad(), torch.autocast(weight.device.type, enabled=False):
            taps = op.filter_fn.filter_channels_first(capacity).float()
        return cls(
            z_tail=weight.new_zeros(batch, 3 * op.d_model, op.short_filter.weight.shape[-1] - 1, dtype=torch.float32),
            history=weight.new_empty(op.d_model, batch, capacity, dtype=torch.float32),
            taps_reversed=taps.flip(-1).contiguous(),
            block=block,
        )


def hyena_decode(op: HyenaOperator, u: Tensor, state: HyenaState) -> Tensor:
    """Append the tokens u (B, L, D) to the sequences ``state`` holds and return their outputs (B, L, D), equal to
    the outputs at those positions of a forward over the whole sequences. Into an empty state the L tokens go at once
    (the prefill: in_proj, the short conv and one FFT convolution, keeping what later tokens need); then a token at a
    time. A token's long
    convolution is the carry from the history before its block (one FFT convolution a block of ``state.block``
    tokens) plus a direct causal sum over the block so far: O(block D + t log t D / block) for the t-th token, where
    rerunning the window costs O(t D^2 + t log t D) in every layer."""
    if state.length + u.shape[1] > state.history.shape[-1]:
        raise ValueError(
            f"the inference cache holds {state.history.shape[-1]} tokens, and {state.length} + {u.shape[1]} were asked "
            "for: start a new cache on the last tokens (the filter has no taps further back)"
        )
    if state.length == 0:
        return _hyena_prefill(op, u, state)
    return torch.stack([_hyena_step(op, u[:, i], state) for i in range(u.shape[1])], dim=1)


def _hyena_prefill(op: HyenaOperator, u: Tensor, state: HyenaState) -> Tensor:
    seqlen, taps = u.shape[1], state.z_tail.shape[-1]
    z = op.in_proj(u).transpose(1, 2)
    x0, x1, v = causal_short_conv_ref(z, op.short_filter.weight[:, 0], op.short_filter.bias).split(op.d_model, dim=1)
    gated = x1 * v
    state.history[:, :, :seqlen] = gated.float().transpose(0, 1)
    y = fftconv(gated, op.filter_fn.filter_channels_first(seqlen), op.filter_fn.bias)
    if taps:  # the short conv's next outputs read the last K - 1 inputs, zeros before the first
        z_tail = torch.cat([state.z_tail, z.float()], dim=-1)
        state.z_tail = z_tail[..., -taps:].contiguous()
    state.length, state.carry = seqlen, None
    return op.out_proj((x0 * y).transpose(1, 2))


def _hyena_step(op: HyenaOperator, u: Tensor, state: HyenaState) -> Tensor:
    """One token u (B, D) -> (B, D)."""
    t, d = state.length, op.d_model
    if state.carry is None or t - state.block_start >= state.block:
        _start_block(state, t)
    z = op.in_proj(u).float()
    window = torch.cat([state.z_tail, z[..., None]], dim=-1)  # (B, 3D, K): the conv's K taps, oldest first
    z = (window * op.short_filter.weight[:, 0].float()).sum(-1) + op.short_filter.bias.float()
    x0, x1, v = z.split(d, dim=-1)
    gated = x1 * v
    state.history[:, :, t] = gated.T
    start, n = state.block_start, t + 1 - state.block_start
    recent = torch.matmul(state.history[:, :, start : t + 1], state.taps_reversed[:, -n:, None])[..., 0]
    y = (state.carry[:, :, n - 1] + recent).T + gated * op.filter_fn.bias.float()
    state.z_tail = window[..., 1:]
    state.length = t + 1
    return op.out_proj((x0 * y).to(u.dtype))


def _start_block(state: HyenaState, start: int) -> None:
    """What the history before ``start`` adds to the outputs of the block from ``start`` on: one FFT convolution of
    that history, followed by zeros, with the filter's first start + block taps."""
    size = min(state.block, state.history.shape[-1] - start)
    taps = state.taps_reversed[:, state.taps_reversed.shape[-1] - (start + size) :].flip(-1)
    earlier = torch.nn.functional.pad(state.history[:, :, :start], (0, size))  # (D, B, start + size)
    zero = taps.new_zeros(taps.shape[0])
    state.carry = fftconv(earlier.transpose(0, 1), taps, zero)[..., start:].transpose(0, 1).contiguous()
    state.block_start = start


def hyena_batched(op: HyenaOperator, u: Tensor, k_f: Tensor | None = None, n: int | None = None) -> Tensor:
    """The whole batch at once, with or without autograd: channels-first projections as single matmuls over the
    batch's tokens (oneDNN forward and backward on the CPU, ops/linear.py), kept in (channels, batch, length) memory
    order, so in_proj's output needs no transposed copy; the short conv adding in_proj's bias, through fused kernels
    forward and backward when training on the CPU (ops/fused.py), where in_proj and the short conv are one node
    (``in_proj_short_conv``: in_proj reads zero tokens before each sequence, and the conv's taps read no padding);
    a smooth FFT length. Training (no ``k_f``) runs the gating and long convolution as one autograd node
    (``gated_fftconv``, unless the operator's dropout is on) on the channels-first filter, whose output out_proj reads
    channels first (``linear_channels_first``).
    Given the filter spectrum ``k_f`` at transform length ``n`` (inference), the filter is not recomputed."""
    batch, seqlen, d = u.shape
    tokens, short_w, short_b = u.reshape(batch * seqlen, d), op.short_filter.weight[:, 0], op.short_filter.bias
    z = None
    if k_f is None and torch.is_grad_enabled():  # in_proj_short_conv declines off the CPU
        z = in_proj_short_conv(tokens, op.in_proj.weight, short_w, short_b, op.in_proj.bias, batch)
    if z is None:
        z = linear(op.in_proj.weight, tokens)  # W_in @ u^T: (3D, B*L)
        # the short conv adds the in_proj bias and widens a bf16 z (under autocast) to float32 as it reads z
        z = causal_short_conv(z.view(3 * d, batch, seqlen).transpose(0, 1), short_w, short_b, op.in_proj.bias)
    if k_f is None and not (op.dropout.p > 0 and op.training):
        # z's gradient comes back with the zero columns after each row that the short conv's backward reads
        taps = op.short_filter.weight.shape[-1]
        y = gated_fftconv(z, op.filter_fn.filter_channels_first(seqlen), op.filter_fn.bias, grad_z_tail=taps - 1)
        y = y.transpose(0, 1).reshape(d, batch * seqlen)  # (D, B*L): a view, y keeps z's memory order
        return linear_channels_first(y, op.out_proj.weight, op.out_proj.bias).view(batch, seqlen, d)
    x0, x1, v = z.split(d, dim=1)
    if k_f is None:
        y = fftconv(op.dropout(x1 * v), op.filter_fn.filter_channels_first(seqlen), op.filter_fn.bias) * x0
    else:
        y = fftconv(x1 * v, None, op.filter_fn.bias, k_f=k_f, n=n) * x0
    y = y.transpose(0, 1).reshape(d, batch * seqlen)  # (D, B*L): a view when y kept z's memory order
    return linear(y.T, op.out_proj.weight, op.out_proj.bias).view(batch, seqlen, d)


def hyena_per_sequence(op: HyenaOperator, u: Tensor, k_f: Tensor, n: int) -> Tensor:
    """Without autograd, a sequence at a time (``hyena_sequence``): the CPU's inference path from
    ``ExecutionOptions.per_sequence_min_length`` tokens."""
    outs = [hyena_sequence(op, row, k_f, n) for row in u]
    return outs[0][None] if len(outs) == 1 else torch.stack(outs)


def hyena_sequence(op: HyenaOperator, u: Tensor, k_f: Tensor, n: int) -> Tensor:
    """(L, D) -> (L, D), given the filter spectrum at transform length n: in_proj as a channels-first matmul, the
    in_proj bias folded into a shift-and-add short conv, and the gating written token-major for out_proj. Under bf16
    autocast the two projections run in bf16; the short conv, gating and FFT always run in fp32."""
    seqlen, d = u.shape
    z = linear(op.in_proj.weight, u).float()  # W_in @ u^T: (3D, L)
    z = causal_short_conv(z, op.short_filter.weight[:, 0], op.short_filter.bias, op.in_proj.bias)
    x0, x1, v = z.split(d)
    padded = z.new_zeros(d, n)
    torch.mul(x1, v, out=padded[:, :seqlen])
    y = fftconv_padded(padded, seqlen, k_f, op.filter_fn.bias)
    gated = torch.empty(seqlen, d, dtype=torch.float32, device=u.device)
    torch.mul(y, x0, out=gated.T)  # the transpose out_proj needs, paid inside the gating
    return linear(gated, op.out_proj.weight, op.out_proj.bias)


@torch.no_grad()
def hyena_low_memory(
    op: HyenaOperator,
    u_at: Callable[[int, int], Tensor],
    seqlen: int,
    chunk: int,
    options: ExecutionOptions | None = None,
    channel_group: int | None = None,
    conv: Tensor | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """Inference on one long sequence in O(L*D) memory: yields ``(s, y[s:s + chunk])`` from the last chunk to the
    first, where ``u_at(s, e)`` returns input rows s..e-1 as (e - s, D).

    Three passes keep one (D, L) float32 tensor besides the caller's: (1) x1 * v for every channel, in token
    chunks; (2) the long convolution of that tensor in place, in channel groups; (3) per chunk, x0, the gating
    and out_proj. x0 is stored in pass 1 while (L, D) float32 fits in ``options.store_x0_bytes``, else recomputed in
    pass 3 (one in_proj third and the short conv again; at 1M tokens storing it would take 1 GB). Chunks are
    token-major, so the projections and the short conv run on contiguous rows and only x1 * v is transposed. A
    chunk reads input rows from s - K + 1 on, so once chunk s is yielded the caller may overwrite rows >= s (the
    block adds the output into the residual stream it normalises for ``u_at``). ``conv`` may pass in that (D, L)
    float32 tensor: the model reuses one for all layers, because first writes to fresh memory page-fault (at 1M
    tokens ~0.5 s per layer).
    """
    options = options or ExecutionOptions()
    d = op.d_model
    dtype = matmul_dtype(op.in_proj.weight)  # bf16 under CPU autocast: cast the weights once, not per chunk
    w_in, b_in = op.in_proj.weight.to(dtype), op.in_proj.bias.to(dtype)
    w_out, b_out = op.out_proj.weight.to(dtype), op.out_proj.bias.to(dtype)
    if conv is None:
        conv = torch.empty(d, seqlen, dtype=torch.float32, device=w_in.device)
    x0_all = None
    if seqlen * d * 4 <= options.store_x0_bytes:
        x0_all = torch.empty(seqlen, d, dtype=torch.float32, device=w_in.device)
    rows = slice(d if x0_all is None else 0, 3 * d)  # x1 and v, and x0 too if it is stored
    for s in range(0, seqlen, chunk):
        z = _short_conv_chunk(op, u_at, s, min(seqlen, s + chunk), w_in[rows], b_in[rows], rows)
        if x0_all is not None:
            x0_all[s : s + chunk] = z[:, :d]
            z = z[:, d:]
        conv[:, s : s + chunk].T.copy_(z[:, :d].mul_(z[:, d:]))
    # keeping freed FFT buffers is a glibc (CPU) matter; CUDA has its own caching allocator
    with reuse_freed_memory(options.reuse_freed_memory and conv.device.type == "cpu"):
        _long_conv_low_memory(op, conv, channel_group, options)
    for s in reversed(range(0, seqlen, chunk)):
        if x0_all is None:
            x0 = _short_conv_chunk(op, u_at, s, min(seqlen, s + chunk), w_in[:d], b_in[:d], slice(0, d))
        else:
            x0 = x0_all[s : s + chunk]
        yield s, linear(x0.mul_(conv[:, s : s + chunk].T), w_out, b_out)


def _short_conv_chunk(
    op: HyenaOperator,
    u_at: Callable[[int, int], Tensor],
    start: int,
    end: int,
    weight: Tensor,
    bias: Tensor,
    rows: slice,
) -> Tensor:
    """in_proj rows ``rows`` (given as ``weight``, ``bias``) and the short conv for tokens start..end-1, as
    float32 (tokens, channels). The chunk re-reads the K - 1 tokens before it, which the conv reaches back to."""
    first = max(0, start - op.short_filter.kernel_size[0] + 1)
    z = linear(u_at(first, end), weight, bias)
    w, b = op.short_filter.weight[rows, 0], op.short_filter.bias[rows]
    return causal_short_conv_tokens(z, w, b)[start - first :]


def _long_conv_low_memory(op: HyenaOperator, x: Tensor, channel_group: int | None, options: ExecutionOptions) -> None:
    """x (D, L) float32 <- fftconv(x), a channel group at a time, through one zero-padded buffer."""
    d, seqlen = x.shape
    cached = op.cached_spectrum(seqlen, options)
    n = fft_length(2 * seqlen - 1, x.device)
    if cached is None:
        hidden, t = op.filter_fn.features(seqlen)
    if channel_group is None:  # the buffer and three transforms of ~4n bytes per channel
        channel_group = max(1, min(16, options.group_buffer_bytes // (16 * n)))
    c = min(channel_group, d)
    work = torch.zeros(c, n, dtype=torch.float32, device=x.device)
    for g0 in range(0, d, c):
        g = slice(g0, min(d, g0 + c))
        cg = g.stop - g.start
        if cached is None:  # the filter goes through the same zero-padded buffer first
            op.filter_fn.filter_channels(hidden, t, g, out=work[:cg, : hidden.shape[0]])
            work[:cg, hidden.shape[0] :] = 0
            k_f = torch.fft.rfft(work[:cg])
        else:
            k_f = cached[0][g]
        fftconv_inplace(x[g], k_f, op.filter_fn.bias[g], work[:cg])
