"""Training a block in token chunks, for windows whose activations would not fit (1M tokens).

Gradient checkpointing keeps only a block's inputs but still recomputes the whole block at once in the backward, so one
block's activations over the full window remain: about 150 bytes per token and channel in fp32, 38 GB for a d256 block
at 1M tokens. Here the block is one autograd node that keeps its input alone and runs every step but the long
convolution in token chunks, forward and backward; the long convolution and its gradients run a channel group at a
time. Its working memory is a few (L, D) float32 tensors whatever the window, and each chunk's position-wise steps go
through autograd on the chunk (``_front`` and ``_back``, the same functions forward and backward), so their gradients
are autograd's own. The one-node form is tested against the plain reference path's gradients.

The operator's dropout (on x1 * v) and the block's (on the mixer's output) are redrawn in the backward, so their
masks are a function of where they fall, not of the order the chunks run in: each block call draws one seed from
torch's generator, and the masks of each ``MASK_POSITIONS`` positions of a sequence come from a generator seeded by
(that seed, sequence, which dropout, position block). Any chunking draws the same masks. They are not the training
path's masks (which come from whole-tensor draws), as two training paths with dropout never share masks.

Layout of one sequence: r (L, D) is the residual stream entering the block (after its input dropout);
(x0, x1, v) = short_conv(in_proj(norm1(r))); s = x1 * v; c = h * s + D s (the long convolution);
res = out_proj(x0 * c) + r; out = mlp(norm2(res)). The block returns (out, res), as ``Block.forward`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyenadna.ops.fftconv import _correlation_grads, fft_length
from hyenadna.ops.linear import linear, matmul_dtype, mlp
from hyenadna.ops.short_conv import causal_short_conv_tokens

if TYPE_CHECKING:
    from hyenadna.modules.block import Block

# token chunks on the CPU; a GPU takes larger ones (GPU_LOW_MEMORY_CHUNK), where kernel launches dominate small ones
CPU_TRAINING_CHUNK = 8192
# the filter's skip term D in ``block_params``
CONV_BIAS = 6
# positions drawn together for a dropout mask (one generator each): any chunking draws the same masks
MASK_POSITIONS = 1024
# which dropout a mask is for
OP_DROPOUT, RESID_DROPOUT = 0, 1
# one chunk's dropout: (x, which dropout) -> x dropped
Drop = Callable[[Tensor, int], Tensor]


def block_params(block: Block) -> list[Tensor]:
    """The block's weights in the order ``_Weights`` reads them."""
    op, f = block.mixer, block.mixer.filter_fn
    linears = [m for m in f.implicit_filter[:-1] if isinstance(m, nn.Linear)]
    return [
        block.norm1.weight,
        block.norm1.bias,
        op.in_proj.weight,
        op.in_proj.bias,
        op.short_filter.weight,
        op.short_filter.bias,
        f.bias,
        f.implicit_filter[1].freq,
        f.implicit_filter[-1].weight,
        op.out_proj.weight,
        op.out_proj.bias,
        block.norm2.weight,
        block.norm2.bias,
        block.mlp.fc1.weight,
        block.mlp.fc1.bias,
        block.mlp.fc2.weight,
        block.mlp.fc2.bias,
        *[t for m in linears for t in (m.weight, m.bias)],
    ]


class _Weights:
    """``block_params`` by name."""

    def __init__(self, params: list[Tensor]):
        (
            self.n1w,
            self.n1b,
            self.w_in,
            self.b_in,
            self.short_w,  # (3D, 1, K): indexed where autograd sees it
            self.short_b,
            self.conv_bias,
            self.freq,
            self.w_filter,
            self.w_out,
            self.b_out,
            self.n2w,
            self.n2b,
            self.w1,
            self.b1,
            self.w2,
            self.b2,
        ) = params[:17]
        rest = params[17:]
        self.filter_layers = list(zip(rest[0::2], rest[1::2], strict=True))


# Under a user's torch.compile the chunk loops would unroll into the graph (one graph per window length, more chunks
# to trace the longer the window) and the compiler would decide what the backward keeps: the block runs eagerly there.
@torch.compiler.disable
def block_chunked(block: Block, r: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """``Block.forward`` from the residual stream ``r`` (B, L, D) float32 that enters it (the block's input dropout
    and residual add done), in token chunks of ``chunk``: returns (mlp output, residual stream), keeping only ``r``
    for the backward. The operator's and the block's inner dropout draw their masks by position (``_Dropout``)."""
    op = block.mixer
    rates = (op.dropout.p, block.dropout2.p) if block.training else (0.0, 0.0)
    dropout = _Dropout(*rates, dropout_seed(), r.device) if any(rates) else None
    autocast = torch.is_autocast_enabled(r.device.type)
    dtype = torch.get_autocast_dtype(r.device.type) if autocast else None
    settings = (chunk, block.norm1.eps, block.norm2.eps, op.filter_fn, dropout, (autocast, dtype))
    return _BlockChunked.apply(settings, r, *block_params(block))


def dropout_seed() -> int:
    """One draw of torch's generator (so ``torch.manual_seed`` fixes the masks) for a block call's dropout masks."""
    return int(torch.randint(0, 2**62, ()))


class _Dropout:
    """The inner dropout masks of one block call (``MASK_POSITIONS``): ``drop(x, kind, row, start)`` scales the rows
    of x (positions start.. of sequence ``row``, channels last) by 1 / (1 - p) or zeroes them."""

    def __init__(self, p_op: float, p_resid: float, seed: int, device: torch.device):
        self.rates, self.seed, self.device = (p_op, p_resid), seed, device

    def keep(self, kind: int, row: int, start: int, positions: int, width: int) -> Tensor:
        first, last = start // MASK_POSITIONS, (start + positions - 1) // MASK_POSITIONS
        blocks = []
        for b in range(first, last + 1):
            # distinct generator seeds for every (seed, row, kind, block); 2**63 - 25 is prime
            key = (self.seed * 1_000_003 + (row * 2 + kind) * 1_000_000_007 + b) % (2**63 - 25)
            g = torch.Generator(device=self.device).manual_seed(key)
            blocks.append(torch.rand(MASK_POSITIONS, width, generator=g, device=self.device) >= self.rates[kind])
        offset = start - first * MASK_POSITIONS
        return torch.cat(blocks)[offset : offset + positions]

    def drop(self, x: Tensor, kind: int, row: int, start: int) -> Tensor:
        p = self.rates[kind]
        if p == 0:
            return x
        return x * self.keep(kind, row, start, *x.shape).to(x.dtype) * (1 / (1 - p))


class _BlockChunked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, settings: tuple, r: Tensor, *params: Tensor) -> tuple[Tensor, Tensor]:
        ctx.settings = settings
        ctx.save_for_backward(r, *params)
        w = _Weights(params)
        # written chunk by chunk into the outputs: a list of chunks and its concatenation would hold both at once
        out = torch.empty(r.shape, dtype=matmul_dtype(w.w1), device=r.device)
        res = torch.empty_like(r)
        for b, (row, out_row, res_row) in enumerate(zip(r, out, res, strict=True)):
            _forward_sequence(w, row, settings, out_row, res_row, b)
        return out, res

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_res: Tensor) -> tuple[Tensor | None, ...]:
        r, *params = ctx.saved_tensors
        autocast, dtype = ctx.settings[-1]
        leaves = [p.detach().requires_grad_(p.requires_grad) for p in params]
        grads: list[Tensor | None] = [None] * len(params)
        grad_r = torch.zeros_like(r)
        with torch.autocast(r.device.type, dtype=dtype, enabled=autocast):
            for b, row in enumerate(r):
                g_out = grad_out[b] if grad_out is not None else None
                g_res = grad_res[b] if grad_res is not None else None
                _backward_sequence(leaves, row, g_out, g_res, grad_r[b], grads, ctx.settings, b)
        return None, grad_r, *grads


def _norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    return F.layer_norm(x.to(weight.dtype), weight.shape, weight, bias, eps)


def _front(w: _Weights, r_rows: Tensor, start: int, rows: slice, eps: float) -> Tensor:
    """in_proj rows ``rows`` and the short conv for tokens ``start``.. of ``r_rows``, which begins up to K - 1 tokens
    earlier (the conv reaches back to them; at the sequence's start it reads zeros): (tokens, channels) float32."""
    z = linear(_norm(r_rows, w.n1w, w.n1b, eps), w.w_in[rows], w.b_in[rows])
    return causal_short_conv_tokens(z.float(), w.short_w[rows, 0], w.short_b[rows])[start:]


def _back(w: _Weights, x0: Tensor, c: Tensor, r: Tensor, eps: float, drop: Drop | None) -> tuple[Tensor, Tensor]:
    """The block after the long convolution on one chunk: (mlp output, residual stream)."""
    y = linear(x0 * c, w.w_out, w.b_out)
    res = (y if drop is None else drop(y, RESID_DROPOUT)).float() + r
    return mlp(_norm(res, w.n2w, w.n2b, eps), w.w1, w.b1, w.w2, w.b2), res


def _chunks(seqlen: int, chunk: int, taps: int):
    """(first token read, start, end, start - first) for each chunk."""
    for s in range(0, seqlen, chunk):
        first = max(0, s - taps + 1)
        yield first, s, min(seqlen, s + chunk), s - first


def _gated_input(w: _Weights, r: Tensor, chunk: int, eps: float, dropout: _Dropout | None, row: int) -> Tensor:
    """s = x1 * v (the operator's dropout applied) for every token, channels first (D, L) float32."""
    d, taps = w.w_out.shape[0], w.short_w.shape[-1]
    s_all = torch.empty(d, r.shape[0], dtype=torch.float32, device=r.device)
    for first, s, e, k in _chunks(r.shape[0], chunk, taps):
        z = _front(w, r[first:e], k, slice(d, 3 * d), eps)
        s_all[:, s:e].T.copy_(_gate(z, d, _at(dropout, row, s)))
    return s_all


def _gate(z: Tensor, d: int, drop: Drop | None) -> Tensor:
    """x1 * v from (x1, v) rows, with the operator's dropout."""
    p = z[:, :d] * z[:, d:]
    return p if drop is None else drop(p, OP_DROPOUT)


def _at(dropout: _Dropout | None, row: int, start: int) -> Drop | None:
    """``dropout.drop`` for the rows of one chunk: sequence ``row`` from position ``start``."""
    return None if dropout is None else functools.partial(dropout.drop, row=row, start=start)


def _filter_groups(w: _Weights, f: nn.Module, seqlen: int, hidden: Tensor, t: Tensor):
    """(channels, filter taps of those channels, transform length) a channel group at a time."""
    d = w.w_filter.shape[0]
    n = fft_length(2 * seqlen - 1, hidden.device)
    group = max(1, min(16, d, (512 * 2**20) // (16 * n)))
    for g0 in range(0, d, group):
        g = slice(g0, min(d, g0 + group))
        h = torch.mm(w.w_filter[g], hidden.T)
        if f.modulate:
            decay = -f.modulation.deltas[0, 0, g, None].abs()
            h = h * (torch.exp(t * decay) + f.modulation.shift)
        yield g, h, n


def _filter_hidden(f: nn.Module, seqlen: int) -> tuple[Tensor, Tensor]:
    """The implicit filter's last hidden layer (taps, order), shared by every channel, without autograd (computed a
    chunk of positions at a time), and its positions t (taps,)."""
    with torch.no_grad():
        hidden, t = f.features(seqlen)
    return hidden, t[0, :, 0]


def _filter_hidden_backward(w: _Weights, f: nn.Module, grad: Tensor, leaves: list, grads: list, chunk: int = 1 << 14):
    """Backpropagates the gradient of ``_filter_hidden`` through the filter's FFN a chunk of positions at a time, so
    that its intermediates take (chunk, order) memory, not (taps, order) per layer."""
    z = f.pos_emb(grad.shape[0])[0][0]
    for s in range(0, grad.shape[0], chunk):
        h = z[s : s + chunk]
        for weight, bias in w.filter_layers:
            h = torch.sin(w.freq * F.linear(h, weight, bias))
        _accumulate([(h, grad[s : s + chunk])], [], leaves, grads)


def _long_conv(w: _Weights, f: nn.Module, x: Tensor, hidden: Tensor, t: Tensor) -> None:
    """x (D, L) float32 <- h * x + D x, a channel group at a time, the taps built from ``_filter_hidden``."""
    seqlen = x.shape[1]
    with torch.autocast(x.device.type, enabled=False):
        for g, h, n in _filter_groups(w, f, seqlen, hidden, t):
            y = torch.fft.irfft(torch.fft.rfft(x[g], n=n) * torch.fft.rfft(h, n=n), n=n)[:, :seqlen]
            x[g] = y.addcmul_(x[g], w.conv_bias[g, None])


@torch.no_grad()
def _forward_sequence(w: _Weights, r: Tensor, settings: tuple, out: Tensor, res: Tensor, row: int) -> None:
    chunk, eps1, eps2, f, dropout, _ = settings
    d, taps = w.w_out.shape[0], w.short_w.shape[-1]
    c_all = _gated_input(w, r, chunk, eps1, dropout, row)
    _long_conv(w, f, c_all, *_filter_hidden(f, r.shape[0]))
    for first, s, e, k in _chunks(r.shape[0], chunk, taps):
        x0 = _front(w, r[first:e], k, slice(0, d), eps1)
        out[s:e], res[s:e] = _back(w, x0, c_all[:, s:e].T, r[s:e], eps2, _at(dropout, row, s))


def _backward_sequence(
    leaves: list[Tensor],
    r: Tensor,
    grad_out: Tensor | None,
    grad_res: Tensor | None,
    grad_r: Tensor,
    grads: list[Tensor | None],
    settings: tuple,
    row: int,
) -> None:
    """Accumulates one sequence's gradients into ``grad_r`` (its rows) and ``grads`` (the weights')."""
    chunk, eps1, eps2, f, dropout, _ = settings
    w = _Weights(leaves)
    d, taps, seqlen = w.w_out.shape[0], w.short_w.shape[-1], r.shape[0]
    with torch.no_grad():
        s_all = _gated_input(w, r, chunk, eps1, dropout, row)
        c_all = s_all.clone()
        hidden, t = _filter_hidden(f, seqlen)  # shared by the convolution here and its gradients in step 2
        _long_conv(w, f, c_all, hidden, t)

    # 1. out_proj, the residual add and the MLP, chunk by chunk; x0's path back into r. c's gradient replaces c.
    for first, s, e, k in _chunks(seqlen, chunk, taps):
        with torch.enable_grad():
            r_rows = r[first:e].detach().requires_grad_()
            c = c_all[:, s:e].T.clone().requires_grad_()
            drop = _at(dropout, row, s)
            out, res = _back(w, _front(w, r_rows, k, slice(0, d), eps1), c, r_rows[k:], eps2, drop)
            pairs = [(y, g[s:e]) for y, g in ((out, grad_out), (res, grad_res)) if g is not None]
            g_r, g_c = _accumulate(pairs, [r_rows, c], leaves, grads)
        grad_r[first:e] += g_r
        c_all[:, s:e].T.copy_(g_c)

    # 2. the long convolution's gradients, a channel group at a time: s's gradient replaces s. The filter's taps come
    # from its shared hidden layer a group at a time; their gradients gather there, then go back through the FFN.
    with torch.autocast(r.device.type, enabled=False), torch.enable_grad():
        hidden_leaf = hidden.requires_grad_()
        grad_hidden = torch.zeros_like(hidden)
        for g, h, n in _filter_groups(w, f, seqlen, hidden_leaf, t):
            s_f = torch.fft.rfft(s_all[g], n=n).conj_physical_()
            h_f = torch.fft.rfft(h.detach(), n=n).conj_physical_()
            needs = (True, True, w.conv_bias.requires_grad)
            grad_s, grad_h, grad_bias = _correlation_grads(c_all[g], s_f, h_f, w.conv_bias[g], n, h.shape[1], needs)
            s_all[g] = grad_s
            if grad_bias is not None:
                if grads[CONV_BIAS] is None:
                    grads[CONV_BIAS] = torch.zeros_like(w.conv_bias)
                grads[CONV_BIAS][g] += grad_bias
            grad_hidden += _accumulate([(h, grad_h)], [hidden_leaf], leaves, grads)[0]
        _filter_hidden_backward(w, f, grad_hidden, leaves, grads)

    # 3. x1 and v back through the short conv, in_proj and norm1 into r
    for first, s, e, k in _chunks(seqlen, chunk, taps):
        with torch.enable_grad():
            r_rows = r[first:e].detach().requires_grad_()
            z = _front(w, r_rows, k, slice(d, 3 * d), eps1)
            gated = _gate(z, d, _at(dropout, row, s))
            grad_r[first:e] += _accumulate([(gated, s_all[:, s:e].T)], [r_rows], leaves, grads)[0]


def _accumulate(
    pairs: list[tuple[Tensor, Tensor]], inputs: list[Tensor], leaves: list[Tensor], grads: list[Tensor | None]
) -> tuple[Tensor, ...]:
    """Backpropagates (output, gradient) pairs: adds the weights' gradients into ``grads`` and returns ``inputs``'."""
    wanted = [p for p in leaves if p.requires_grad]
    outputs, grad_outputs = zip(*pairs, strict=True)
    found = torch.autograd.grad(outputs, [*inputs, *wanted], grad_outputs, allow_unused=True)
    by_leaf = dict(zip(map(id, wanted), found[len(inputs) :], strict=True))
    for k, p in enumerate(leaves):
        g = by_leaf.get(id(p))
        if g is not None:
            grads[k] = g if grads[k] is None else grads[k] + g
    return found[: len(inputs)]
