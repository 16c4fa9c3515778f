"""Causal long convolution by FFT: ``y[c, t] = sum_{s<=t} h[c, t-s] u[c, s] + D_c u[c, t]``.

``fftconv_ref`` follows the reference algorithm step for step (transform length exactly 2L). ``fftconv`` is the fast
path: a transform length that factors well and an optional precomputed filter spectrum. Both always run the FFT in
float32 (complex64), whatever the input dtype, because ``torch.fft`` on CPU rejects bf16 and fp16 loses the filter tail.
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

    Any n >= L + Lk - 1 gives the exact linear convolution on the first L outputs; we use a smooth n >= 2L - 1.
    """
    seqlen = u.shape[-1]
    if k_f is None:
        n = fft_length(2 * seqlen - 1, u.device)
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
