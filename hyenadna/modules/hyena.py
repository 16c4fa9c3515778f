"""The Hyena operator of order 2: gated long convolution with an implicit filter (Poli et al. 2023)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hyenadna.modules.hyena_filter import HyenaFilter
from hyenadna.ops.fftconv import fft_length, fftconv, fftconv_padded, fftconv_ref, filter_spectrum
from hyenadna.ops.short_conv import causal_short_conv, causal_short_conv_ref

# Inference caches at most this many bytes of filter spectra per operator: the filter does not depend on the input,
# but at 1M tokens one layer's spectrum is 2 GB, so long inputs recompute it instead. 128 MB covers D256 up to
# L = 65k (small-32k at its context: 8-15% faster for ~240 MB of RSS).
FILTER_CACHE_BYTES = 128 * 2**20
# The low-memory path sizes its channel groups so their buffers take about this much (16 channels up to L ~ 600k).
GROUP_BUFFER_BYTES = 512 * 2**20


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
        if self.use_reference_path:
            return self.forward_reference(u)
        if torch.is_grad_enabled():
            return self.forward_train(u)
        return self.forward_inference(u)

    def forward_reference(self, u: Tensor) -> Tensor:
        """The reference algorithm step for step: transposes, a padded depthwise conv1d, the filter recomputed and
        transformed at length 2L on every call."""
        seqlen = u.shape[1]
        z = self.in_proj(u).transpose(1, 2)
        z = causal_short_conv_ref(z, self.short_filter.weight[:, 0], self.short_filter.bias)
        x0, x1, v = z.split(self.d_model, dim=1)
        v = fftconv_ref(self.dropout(x1 * v), self.filter_fn.filter(seqlen), self.filter_fn.bias)
        return self.out_proj((x0 * v).transpose(1, 2))

    def forward_train(self, u: Tensor) -> Tensor:
        """With autograd: channels-first projections by batched matmuls that read their operands transposed (no
        transposed copies, forward or backward), the shift-and-add short conv with its own backward, a smooth FFT."""
        batch, seqlen, _ = u.shape
        z = torch.baddbmm(self.in_proj.bias[:, None], self.in_proj.weight.expand(batch, -1, -1), u.mT)
        z = causal_short_conv(z, self.short_filter.weight[:, 0], self.short_filter.bias)
        x0, x1, v = z.split(self.d_model, dim=1)
        y = fftconv(self.dropout(x1 * v), self.filter_fn.filter(seqlen), self.filter_fn.bias) * x0
        return torch.baddbmm(self.out_proj.bias, y.mT, self.out_proj.weight.T.expand(batch, -1, -1))

    def forward_inference(self, u: Tensor) -> Tensor:
        """Without autograd: no transposed copies (the projections read their operands transposed), the in_proj bias
        folded into a shift-and-add short conv, and the filter spectrum from the cache. Under bf16 autocast the two
        projections run in bf16; the short conv, gating and FFT always run in fp32."""
        batch, seqlen, _ = u.shape
        mm_dtype = matmul_dtype(u)
        w_in = self.in_proj.weight.to(mm_dtype)
        u = u.to(mm_dtype)
        z = torch.empty(batch, w_in.shape[0], seqlen, dtype=mm_dtype, device=u.device)
        for i in range(batch):  # per-sequence mm reads u transposed for free; a broadcast matmul would copy it
            torch.mm(w_in, u[i].T, out=z[i])
        z = causal_short_conv(z, self.short_filter.weight[:, 0], self.short_filter.bias, self.in_proj.bias)
        x0, x1, v = z.split(self.d_model, dim=1)
        cached = self._cached_spectrum(seqlen)
        if cached is None:
            n = fft_length(2 * seqlen - 1)
            k_f = filter_spectrum(self.filter_fn.filter(seqlen), n)
        else:
            k_f, n = cached
        padded = z.new_zeros(batch, self.d_model, n, dtype=torch.float32)
        torch.mul(x1, v, out=padded[..., :seqlen])
        y = fftconv_padded(padded, seqlen, k_f, self.filter_fn.bias).mul_(x0).to(mm_dtype)
        w_out, b_out = self.out_proj.weight.to(mm_dtype), self.out_proj.bias.to(mm_dtype)
        out = torch.empty(batch, seqlen, self.d_model, dtype=mm_dtype, device=u.device)
        for i in range(batch):
            torch.addmm(b_out, y[i].T, w_out.T, out=out[i])
        return out

    @torch.no_grad()
    def add_to_residual_low_memory(
        self, u: Tensor, residual: Tensor, channel_group: int | None = None, chunk: int = 1 << 14
    ) -> None:
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
        mm_dtype = u.dtype  # the caller picks it: bf16 under autocast
        w_in, b_in = self.in_proj.weight.to(mm_dtype), self.in_proj.bias
        w_conv, b_conv = self.short_filter.weight[:, 0], self.short_filter.bias
        w_out = self.out_proj.weight.to(mm_dtype)
        if channel_group is None:  # ~56 bytes per channel and token of group buffers: keep them near 512 MB
            channel_group = max(4, min(16, GROUP_BUFFER_BYTES // (56 * seqlen)))
        c = min(channel_group, d)
        kw = {"dtype": torch.float32, "device": u.device}
        z = torch.empty(3 * c, seqlen, dtype=mm_dtype, device=u.device)  # in_proj output of the group
        zc = torch.empty(3 * c, seqlen, **kw)  # after the short conv
        padded = torch.zeros(c, n, **kw)  # FFT input; columns >= seqlen stay zero
        y_full = torch.empty(c, n, **kw)
        spec = torch.empty(c, n // 2 + 1, dtype=torch.complex64, device=u.device)
        k_spec = torch.empty_like(spec) if cached is None else None
        # fp32 accumulates each group's out_proj straight into the residual; bf16 collects the gated outputs (half
        # the size) for one out_proj at the end, since a bf16 product cannot be added into fp32 in place
        gated = torch.empty(d, seqlen, dtype=mm_dtype, device=u.device) if mm_dtype != torch.float32 else None
        for g0 in range(0, d, c):
            g = slice(g0, min(d, g0 + c))
            cg = g.stop - g.start
            rows = torch.cat([torch.arange(g.start, g.stop, device=u.device) + k * d for k in range(3)])
            torch.mm(w_in[rows], u.T, out=z[: 3 * cg])
            zg = causal_short_conv(z[: 3 * cg], w_conv[rows], b_conv[rows], b_in[rows], out=zc[: 3 * cg])
            x0, x1, v = zg.split(cg)
            buf = padded[:cg]
            if cached is None:  # the filter goes through the same zero-padded buffer first
                k_f = k_spec[:cg]
                buf[:, :taps] = self.filter_fn.filter_channels(hidden, t, g)
                buf[:, taps:seqlen] = 0
                torch.fft.rfft(buf, out=k_f)
            else:
                k_f = cached[0][g]
            torch.mul(x1, v, out=buf[:, :seqlen])
            y = fftconv_padded(buf, seqlen, k_f, self.filter_fn.bias[g], out=y_full[:cg], spec=spec[:cg]).mul_(x0)
            if gated is None:
                residual.addmm_(y.T, w_out[:, g].T)
            else:
                gated[g] = y
        if gated is not None:
            for s in range(0, seqlen, chunk):
                residual[s : s + chunk] += torch.mm(gated[:, s : s + chunk].T, w_out.T)
        residual += self.out_proj.bias


def matmul_dtype(x: Tensor) -> torch.dtype:
    """The dtype autocast would give a matmul on ``x``'s device (bf16 under CPU autocast), else x's own."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype
