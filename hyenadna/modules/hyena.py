"""The Hyena operator of order 2: gated long convolution with an implicit filter (Poli et al. 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyenadna.modules.hyena_filter import HyenaFilter
from hyenadna.ops.fftconv import fft_length, fftconv, fftconv_ref, filter_spectrum

# Inference caches at most this many bytes of filter spectra per operator: the filter does not depend on the input,
# but at 1M tokens one layer's spectrum is 2 GB, so long inputs recompute it instead.
FILTER_CACHE_BYTES = 64 * 2**20


class HyenaOperator(nn.Module):
    """y = out_proj(x0 * fftconv(x1 * v, h, D)), where (x0, x1, v) = causal_short_conv(in_proj(u))."""

    def __init__(
        self,
        d_model: int,
        l_max: int,
        filter_order: int = 64,
        emb_dim: int = 5,
        num_inner_mlps: int = 2,
        short_filter_order: int = 3,
        activation_freq: float = 10.0,
        modulate: bool = True,
        modulation_shift: float = 0.05,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.d_model = d_model
        self.l_max = l_max
        width = 3 * d_model
        self.in_proj = nn.Linear(d_model, width)
        self.out_proj = nn.Linear(d_model, d_model)
        # depthwise causal FIR: pad both sides, keep the first L outputs
        self.short_filter = nn.Conv1d(width, width, short_filter_order, padding=short_filter_order - 1, groups=width)
        self.dropout = nn.Dropout(dropout)
        self.filter_fn = HyenaFilter(
            d_model,
            l_max,
            emb_dim=emb_dim,
            order=filter_order,
            num_inner_mlps=num_inner_mlps,
            w=activation_freq,
            modulate=modulate,
            shift=modulation_shift,
        )
        self.use_reference_path = False
        self._spectra: dict[tuple, tuple[tuple, Tensor]] = {}

    def _filter_version(self) -> tuple:
        """Changes whenever a filter weight or buffer is modified in place (optimizer step, load_state_dict)."""
        return tuple((t._version, t.data_ptr()) for t in self.filter_fn.parameters()) + tuple(
            (t._version, t.data_ptr()) for t in self.filter_fn.buffers()
        )

    def _cached_spectrum(self, seqlen: int) -> tuple[Tensor, int] | None:
        n = fft_length(2 * seqlen - 1)
        size = self.d_model * (n // 2 + 1) * 8
        if size > FILTER_CACHE_BYTES:
            return None
        key, version = (seqlen, n), self._filter_version()
        hit = self._spectra.get(key)
        if hit is None or hit[0] != version:
            if sum(v.numel() * 8 for _, v in self._spectra.values()) + size > FILTER_CACHE_BYTES:
                self._spectra.clear()
            self._spectra[key] = (version, filter_spectrum(self.filter_fn.filter(seqlen), n))
        return self._spectra[key][1], n

    def forward(self, u: Tensor) -> Tensor:
        """u: (B, L, D) -> (B, L, D). Any L >= 1; beyond l_max the filter simply has no further taps."""
        seqlen = u.shape[1]
        z = self.in_proj(u).transpose(1, 2)
        z = F.conv1d(
            z,
            self.short_filter.weight,
            self.short_filter.bias,
            padding=self.short_filter.padding,
            groups=self.short_filter.groups,
        )[..., :seqlen]
        x0, x1, v = z.split(self.d_model, dim=1)
        v = self.dropout(x1 * v)
        if self.use_reference_path:
            v = fftconv_ref(v, self.filter_fn.filter(seqlen), self.filter_fn.bias)
        else:
            cached = None if torch.is_grad_enabled() else self._cached_spectrum(seqlen)
            if cached is None:
                v = fftconv(v, self.filter_fn.filter(seqlen), self.filter_fn.bias)
            else:
                v = fftconv(v, None, self.filter_fn.bias, k_f=cached[0], n=cached[1])
        return self.out_proj((x0 * v).transpose(1, 2))

    @torch.no_grad()
    def add_to_residual_low_memory(self, u: Tensor, residual: Tensor, channel_group: int = 16) -> None:
        """Inference on one long sequence in O(L*D) memory: ``residual += self(u)``, for u, residual of shape (L, D).

        Channels are processed in groups, so only a group's projections, short conv, filter and FFT buffers exist at
        once; the output projection of each group is accumulated straight into the residual stream. The group buffers
        are allocated once and reused: at long L, fresh allocations cost more in page faults than the arithmetic.
        """
        seqlen, d = u.shape
        n = fft_length(2 * seqlen - 1)
        cached = self._cached_spectrum(seqlen)
        if cached is None:
            hidden, t = self.filter_fn.features(seqlen)
            taps = hidden.shape[1]
        w_in, b_in = self.in_proj.weight, self.in_proj.bias
        w_conv, b_conv = self.short_filter.weight[:, 0], self.short_filter.bias
        w_out = self.out_proj.weight
        c = min(channel_group, d)
        kw = {"dtype": torch.float32, "device": u.device}
        z = torch.empty(3 * c, seqlen, **kw)  # in_proj output of the group, channels-first
        zc = torch.empty(3 * c, seqlen, **kw)  # after the short conv
        padded = torch.zeros(c, n, **kw)  # FFT input; columns >= seqlen stay zero
        y_full = torch.empty(c, n, **kw)
        spec = torch.empty(c, n // 2 + 1, dtype=torch.complex64, device=u.device)
        k_spec = torch.empty_like(spec) if cached is None else None
        for g0 in range(0, d, c):
            g = slice(g0, min(d, g0 + c))
            cg = g.stop - g.start
            rows = torch.cat([torch.arange(g.start, g.stop, device=u.device) + k * d for k in range(3)])
            torch.addmm(b_in[rows, None], w_in[rows], u.T, out=z[: 3 * cg])
            x0, x1, v = causal_short_conv(z[: 3 * cg], w_conv[rows], b_conv[rows], out=zc[: 3 * cg]).split(cg)
            buf, s, y = padded[:cg], spec[:cg], y_full[:cg]
            if cached is None:  # the filter goes through the same zero-padded buffer first
                k_f = k_spec[:cg]
                buf[:, :taps] = self.filter_fn.filter_channels(hidden, t, g)
                buf[:, taps:seqlen] = 0
                torch.fft.rfft(buf, out=k_f)
            else:
                k_f = cached[0][g]
            torch.mul(x1, v, out=buf[:, :seqlen])
            torch.fft.rfft(buf, out=s)
            torch.fft.irfft(s.mul_(k_f), n=n, out=y)
            y = y[:, :seqlen].addcmul_(buf[:, :seqlen], self.filter_fn.bias[g, None]).mul_(x0)
            residual.addmm_(y.T, w_out[:, g].T)
        residual += self.out_proj.bias


def causal_short_conv_ref(z: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Depthwise causal FIR as the reference runs it: z (C, L), weight (C, K), bias (C,) -> (C, L)."""
    taps = weight.shape[1]
    return F.conv1d(z[None], weight[:, None], bias, padding=taps - 1, groups=z.shape[0])[0, :, : z.shape[1]]


def causal_short_conv(z: Tensor, weight: Tensor, bias: Tensor, out: Tensor | None = None) -> Tensor:
    """The same FIR as K shifted multiply-adds along L, written into ``out``: no padded copy of the input."""
    taps, seqlen = weight.shape[1], z.shape[1]
    out = torch.addcmul(bias[:, None], z, weight[:, -1:], out=out)
    for j in range(1, min(taps, seqlen)):
        out[:, j:].addcmul_(z[:, :-j], weight[:, -1 - j : -j])
    return out
