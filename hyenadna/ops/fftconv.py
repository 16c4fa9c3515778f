"""Causal long convolution by FFT: ``y[c, t] = sum_{s<=t} h[c, t-s] u[c, s] + D_c u[c, t]``.

``fftconv_ref`` follows the reference algorithm step for step (transform length exactly 2L). ``fftconv`` is the fast
path: a transform length that factors well and an optional precomputed filter spectrum; with autograd, a backward
written out as FFT correlations (``_correlation_grads``). ``gated_fftconv`` is the Hyena operator's gating around it,
fused for training. All run the FFT in float32 (complex64) or wider, whatever the input dtype, because ``torch.fft``
on CPU rejects bf16 and fp16 loses the filter tail.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

# A power of two this much longer than the smooth length, or less, is used instead: at 2L ~ 1M-2M points it measured
# 0.80-0.96x the smooth length's time on AMD EPYC (benchmarks/fft_lengths.py), while 1.3x and 2x longer ones were
# slower. The slack in use is measured per machine (ops/autotune.py); this is its default.
POWER_OF_TWO_SLACK = 1.05


def fft_length(n: int, device: torch.device | str | None = None) -> int:
    """The transform length for a linear convolution needing ``n`` points, with the slack measured on this machine's
    CPU (the default slack on other devices)."""
    from hyenadna.ops.autotune import tuning

    return smooth_fft_length(n, tuning(device).fft_pow2_slack)


@functools.lru_cache(maxsize=1024)
def smooth_fft_length(n: int, slack: float = POWER_OF_TWO_SLACK) -> int:
    """Smallest 2,3,5,7-smooth integer >= n, or the next power of two if that is at most ``slack`` times longer. Such
    lengths are fast in pocketfft/MKL; 2*l_max often is not (2,000,004 has the prime factor 166,667)."""
    m = max(n, 1)
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            break
        m += 1
    pow2 = 1 << (max(n, 1) - 1).bit_length()
    return pow2 if pow2 <= slack * m else m


def fftconv_ref(u: Tensor, k: Tensor, bias: Tensor) -> Tensor:
    """Reference path. u: (B, C, L), k: (C, Lk) with Lk <= L, bias: (C,). Transform length 2L, as the reference."""
    seqlen = u.shape[-1]
    n = 2 * seqlen
    k_f = torch.fft.rfft(k.float(), n=n)
    u_f = torch.fft.rfft(u.float(), n=n)
    y = torch.fft.irfft(u_f * k_f, n=n)[..., :seqlen]
    return (y + u.float() * bias.float().unsqueeze(-1)).to(u.dtype)


def filter_spectrum(k: Tensor, n: int) -> Tensor:
    """rfft of the filter at transform length n; cacheable because the filter does not depend on the input."""
    return torch.fft.rfft(k.float(), n=n)


@torch.compiler.disable  # inductor has no complex codegen, and its FFT backward gave wrong filter gradients (a test)
def fftconv(u: Tensor, k: Tensor | None, bias: Tensor, k_f: Tensor | None = None, n: int | None = None) -> Tensor:
    """Fast path, same contract as ``fftconv_ref``. Give the filter ``k``, or its spectrum ``k_f`` at length ``n``.

    Any n >= L + Lk - 1 gives the exact linear convolution on the first L outputs; we use a smooth n >= 2L - 1. With
    autograd (given ``k``) it runs through ``_FFTConv``, whose backward is written out as correlations.
    """
    seqlen = u.shape[-1]
    if k_f is None:
        n = fft_length(2 * seqlen - 1, u.device)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (u, k, bias)):
            return _FFTConv.apply(u, k, bias, n)
        k_f = filter_spectrum(k, n)
    elif n is None:
        raise ValueError("fftconv: give the transform length n together with the spectrum k_f")
    u32 = u.float()
    y = torch.fft.irfft(torch.fft.rfft(u32, n=n) * k_f, n=n)[..., :seqlen]
    return torch.addcmul(y, u32, bias.float().unsqueeze(-1)).to(u.dtype)


def fftconv_padded(padded: Tensor, seqlen: int, k_f: Tensor, bias: Tensor) -> Tensor:
    """``fftconv`` for an input already written into the first ``seqlen`` columns of a zero-padded float32 buffer of
    the transform length n: no padded copy. Returns (..., C, seqlen): the convolution plus ``bias * u``."""
    n = padded.shape[-1]
    y = torch.fft.irfft(torch.fft.rfft(padded).mul_(k_f), n=n)[..., :seqlen]
    return y.addcmul_(padded[..., :seqlen], bias.float().unsqueeze(-1))


def fftconv_inplace(u: Tensor, k_f: Tensor, bias: Tensor, work: Tensor) -> Tensor:
    """``fftconv`` of a float32 u (C, L), written back into u, through a reused zero-padded buffer ``work`` (C, n)
    float32. (The spectra are not given buffers: torch's FFTs with out= compute a fresh result and copy it.)"""
    seqlen, n = u.shape[-1], work.shape[-1]
    work[:, :seqlen] = u
    work[:, seqlen:] = 0
    y = torch.fft.irfft(torch.fft.rfft(work).mul_(k_f), n=n)
    return torch.addcmul(y[:, :seqlen], u, bias.float()[:, None], out=u)


class _FFTConv(torch.autograd.Function):
    """``fftconv`` with its gradients as FFT correlations (``_correlation_grads``)."""

    @staticmethod
    def forward(ctx, u: Tensor, k: Tensor, bias: Tensor, n: int) -> Tensor:
        dtype = torch.promote_types(u.dtype, torch.float32)  # float64 stays float64 (gradcheck)
        y, u_f_conj, k_f_conj = _conv_keeping_spectra(u.to(dtype), k, bias, n)
        ctx.save_for_backward(u_f_conj, k_f_conj, bias)
        ctx.n, ctx.taps, ctx.dtypes = n, k.shape[-1], (u.dtype, k.dtype, bias.dtype)
        return y.to(u.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        u_f_conj, k_f_conj, bias = ctx.saved_tensors
        grad_u, grad_k, grad_bias = _correlation_grads(
            grad.to(u_f_conj.real.dtype), u_f_conj, k_f_conj, bias, ctx.n, ctx.taps, ctx.needs_input_grad[:3]
        )
        u_dtype, k_dtype, b_dtype = ctx.dtypes
        return _to(grad_u, u_dtype), _to(grad_k, k_dtype), _to(grad_bias, b_dtype), None


def _zero_tailed(shape: tuple[int, ...], n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A (*shape[:-1], n) buffer whose columns from shape[-1] on are zeros, for an FFT input written into its first
    columns: ``rfft(x, n=n)`` of a shorter x pads it into a fresh copy first (~1 ms a call in a tiny-1k step)."""
    buf = torch.empty(*shape[:-1], n, dtype=dtype, device=device)
    buf[..., shape[-1] :].zero_()
    return buf


def _conv_keeping_spectra(
    u: Tensor, k: Tensor, bias: Tensor, n: int, padded: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The forward of ``fftconv`` for the autograd nodes, in u's dtype: returns y and the conjugated spectra of u and
    k, which ``_correlation_grads`` reads (conjugated in place once the product is taken). ``padded``, if given, is
    the ``_zero_tailed`` buffer that u was written into."""
    u_f = torch.fft.rfft(u, n=n) if padded is None else torch.fft.rfft(padded)
    k_f = torch.fft.rfft(k.to(u.dtype), n=n)
    y = torch.addcmul(torch.fft.irfft(u_f * k_f, n=n)[..., : u.shape[-1]], u, bias.to(u.dtype).unsqueeze(-1))
    return y, u_f.conj_physical_(), k_f.conj_physical_()


def _correlation_grads(
    grad: Tensor,
    u_f_conj: Tensor,
    k_f_conj: Tensor,
    bias: Tensor,
    n: int,
    taps: int,
    needs: tuple[bool, ...],
    grad_padded: Tensor | None = None,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Gradients of y = h * u + D u (causal, first L outputs) from the output gradient g, given the conjugated spectra
    of u and h at transform length n: du = (g correlated with h) + D g, dh = (g correlated with u) summed over the
    batch, dD = the same correlation's lag 0. Autograd's own backward of rfft runs a complex transform of the full
    length n on a zero-padded copy (twice a real one's work) and pads or trims around each transform; here it is one
    real transform of g and two inverse ones (the filter's over channels only). n >= L + Lk - 1, as in the forward,
    keeps the correlations free of wrap-around on the lags kept. The spectra come conjugated in place by the forward:
    a lazily conjugated operand makes ``mul`` copy it. ``grad_padded``: as ``padded`` in ``_conv_keeping_spectra``."""
    batched = grad.dim() > 2
    g_f = torch.fft.rfft(grad, n=n) if grad_padded is None else torch.fft.rfft(grad_padded)
    grad_u = grad_k = grad_bias = None
    if needs[1] or needs[2]:
        cross = (g_f * u_f_conj).reshape(-1, *g_f.shape[-2:]) if batched else (g_f * u_f_conj)[None]
        # a batch of one needs no sum (which would allocate, zero and add a copy)
        cross = torch.fft.irfft(cross[0] if cross.shape[0] == 1 else cross.sum(0), n=n)
        grad_k = cross[:, :taps] if needs[1] else None
        grad_bias = cross[:, 0].clone() if needs[2] else None
    if needs[0]:
        y = torch.fft.irfft(g_f.mul_(k_f_conj), n=n)[..., : grad.shape[-1]]
        grad_u = torch.addcmul(y, grad, bias.to(grad.dtype).unsqueeze(-1))
    return grad_u, grad_k, grad_bias


def _to(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype)


@torch.compiler.disable  # as fftconv: complex tensors stay out of inductor
def gated_fftconv(z: Tensor, k: Tensor, bias: Tensor, n: int | None = None, grad_z_tail: int = 0) -> Tensor:
    """The Hyena operator's gating around its long convolution, for training: z (B, 3D, L) holds (x0, x1, v) as the
    short conv wrote them; returns x0 * fftconv(x1 * v, k, bias), (B, D, L) in z's (D, B, L) memory order, which
    out_proj reads as a transposed matrix (``linear_channels_first``), giving back the gradient in the same order.

    Same values as the unfused ops, in one autograd node (``_GatedFFTConv``): its backward writes the three gradients
    straight into one (B, 3D, L) tensor in z's memory order, where autograd would concatenate three.
    ``grad_z_tail`` zero columns follow each row of z's gradient in memory: the short conv's backward reads them as
    its causal padding (``fused.with_zero_tail``)."""
    if n is None:
        n = fft_length(2 * z.shape[-1] - 1, z.device)
    return _GatedFFTConv.apply(z, k, bias, n, grad_z_tail)


class _GatedFFTConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, k: Tensor, bias: Tensor, n: int, grad_z_tail: int) -> Tensor:
        batch, width, seqlen = z.shape
        d, dtype = width // 3, torch.promote_types(z.dtype, torch.float32)
        x0, x1, v = z.to(dtype).split(d, dim=1)
        padded = _zero_tailed(x1.shape, n, dtype, z.device)
        p = torch.mul(x1, v, out=padded[..., :seqlen])
        y, p_f_conj, k_f_conj = _conv_keeping_spectra(p, k, bias, n, padded)
        out = torch.empty(d, batch, seqlen, dtype=z.dtype, device=z.device).transpose(0, 1)  # z's memory order
        torch.mul(y, x0, out=out)
        ctx.save_for_backward(z, y, p_f_conj, k_f_conj, bias)
        ctx.n, ctx.taps, ctx.dtypes, ctx.grad_z_tail = n, k.shape[-1], (z.dtype, k.dtype, bias.dtype), grad_z_tail
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        z, y, p_f_conj, k_f_conj, bias = ctx.saved_tensors
        batch, width, seqlen = z.shape
        d, dtype = width // 3, y.dtype
        x0, x1, v = z.to(dtype).split(d, dim=1)
        g = grad.to(dtype)
        needs_z = ctx.needs_input_grad[0]
        grad_z = None
        if needs_z:  # in z's memory order, (3D, B, L), which the short conv's backward reads
            tail = ctx.grad_z_tail
            grad_z = torch.empty(width, batch, seqlen + tail, dtype=dtype, device=z.device)
            grad_z[..., seqlen:].zero_()
            grad_z = grad_z[..., :seqlen].transpose(0, 1)
            torch.mul(g, y, out=grad_z[:, :d])
        padded = _zero_tailed(x0.shape, ctx.n, dtype, z.device)
        g_y = torch.mul(g, x0, out=padded[..., :seqlen])
        grad_p, grad_k, grad_bias = _correlation_grads(
            g_y, p_f_conj, k_f_conj, bias, ctx.n, ctx.taps, (needs_z, *ctx.needs_input_grad[1:3]), padded
        )
        if needs_z:
            torch.mul(grad_p, v, out=grad_z[:, d : 2 * d])
            torch.mul(grad_p, x1, out=grad_z[:, 2 * d :])
        z_dtype, k_dtype, b_dtype = ctx.dtypes
        return _to(grad_z, z_dtype), _to(grad_k, k_dtype), _to(grad_bias, b_dtype), None, None
