"""The Hyena operator of order 2: gated long convolution with an implicit filter (Poli et al. 2023)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from hyenadna.modules.hyena_filter import HyenaFilter
from hyenadna.ops.fftconv import fft_length, fftconv, fftconv_inplace, fftconv_padded, fftconv_ref, filter_spectrum
from hyenadna.ops.linear import linear, matmul_dtype
from hyenadna.ops.short_conv import causal_short_conv, causal_short_conv_ref, causal_short_conv_tokens
from hyenadna.utils.memory import reuse_freed_memory

# Inference caches at most this many bytes of filter spectra per operator: the filter does not depend on the input,
# but at 1M tokens one layer's spectrum is 2 GB, so long inputs recompute it instead. 128 MB covers D256 up to
# L = 65k (small-32k at its context: 8-15% faster for ~240 MB of RSS).
FILTER_CACHE_BYTES = 128 * 2**20
# The low-memory path sizes its channel groups so their FFT buffers take at most about this much.
GROUP_BUFFER_BYTES = 512 * 2**20
# ... and keeps the FFTs' freed outputs for the next group instead of page-faulting fresh ones in (utils/memory.py).
REUSE_FREED_MEMORY = True
# Up to this size (L x D float32) the low-memory path stores x0 rather than recomputing it in its third pass:
# medium-160k at 160k tokens (164 MB) took 0.83x the time (benchmarks/results/long_path_store_x0.json).
STORE_X0_BYTES = 256 * 2**20


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
        self._spectra: dict[tuple, Tensor] = {}
        self._spectra_state: tuple | None = None  # the filter's values the spectra were built from

    def _filter_unchanged(self) -> bool:
        """Whether the filter's weights, buffers and shift equal those the cached spectra were built from. Values are
        compared, not version counters: edits through ``.data`` (EMA, weight surgery) do not bump ``_version``."""
        state = [*self.filter_fn.parameters(), *self.filter_fn.buffers()]
        shift = getattr(getattr(self.filter_fn, "modulation", None), "shift", None)
        snapshot = self._spectra_state
        same = (
            snapshot is not None
            and snapshot[0] == shift
            and len(snapshot[1]) == len(state)
            and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(snapshot[1], state, strict=True))
        )
        if not same:
            self._spectra.clear()
            self._spectra_state = (shift, [t.detach().clone() for t in state])
        return same

    def _cached_spectrum(self, seqlen: int) -> tuple[Tensor, int] | None:
        n = fft_length(2 * seqlen - 1)
        size = self.d_model * (n // 2 + 1) * 8
        if size > FILTER_CACHE_BYTES:
            return None
        key = (seqlen, n)
        if not self._filter_unchanged() or key not in self._spectra:
            if sum(v.numel() * 8 for v in self._spectra.values()) + size > FILTER_CACHE_BYTES:
                self._spectra.clear()
            self._spectra[key] = filter_spectrum(self.filter_fn.filter(seqlen), n)
        return self._spectra[key], n

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
        """With autograd: channels-first projections as single matmuls over the batch's tokens (oneDNN forward and
        backward, ops/linear.py), kept in (channels, batch, length) memory order, so in_proj's output needs no
        transposed copy (out_proj's input gets one inside oneDNN); the shift-and-add short conv with its own
        backward; a smooth FFT length."""
        batch, seqlen, d = u.shape
        z = linear(self.in_proj.weight, u.reshape(batch * seqlen, d))  # W_in @ u^T: (3D, B*L)
        z = (z + self.in_proj.bias[:, None].to(z.dtype)).view(3 * d, batch, seqlen).transpose(0, 1)
        z = causal_short_conv(z, self.short_filter.weight[:, 0], self.short_filter.bias)
        x0, x1, v = z.split(d, dim=1)
        y = fftconv(self.dropout(x1 * v), self.filter_fn.filter(seqlen), self.filter_fn.bias) * x0
        y = y.transpose(0, 1).reshape(d, batch * seqlen)  # (D, B*L): a view when y kept z's memory order
        return linear(y.T, self.out_proj.weight, self.out_proj.bias).view(batch, seqlen, d)

    def forward_inference(self, u: Tensor) -> Tensor:
        """Without autograd, a sequence at a time: in_proj as a channels-first matmul (oneDNN, ops/linear.py), the
        in_proj bias folded into a shift-and-add short conv, the filter spectrum from the cache, and the gating
        written token-major for out_proj. Under bf16 autocast the two projections run in bf16; the short conv, gating
        and FFT always run in fp32."""
        batch, seqlen, _ = u.shape
        cached = self._cached_spectrum(seqlen)
        if cached is None:
            n = fft_length(2 * seqlen - 1)
            k_f = filter_spectrum(self.filter_fn.filter(seqlen), n)
        else:
            k_f, n = cached
        outs = [self._forward_sequence(row, k_f, n) for row in u]
        return outs[0][None] if batch == 1 else torch.stack(outs)

    def _forward_sequence(self, u: Tensor, k_f: Tensor, n: int) -> Tensor:
        """(L, D) -> (L, D), given the filter spectrum at transform length n."""
        seqlen, d = u.shape
        z = linear(self.in_proj.weight, u).float()  # W_in @ u^T: (3D, L)
        z = causal_short_conv(z, self.short_filter.weight[:, 0], self.short_filter.bias, self.in_proj.bias)
        x0, x1, v = z.split(d)
        padded = z.new_zeros(d, n)
        torch.mul(x1, v, out=padded[:, :seqlen])
        y = fftconv_padded(padded, seqlen, k_f, self.filter_fn.bias)
        gated = torch.empty(seqlen, d, dtype=torch.float32, device=u.device)
        torch.mul(y, x0, out=gated.T)  # the transpose out_proj needs, paid inside the gating
        return linear(gated, self.out_proj.weight, self.out_proj.bias)

    @torch.no_grad()
    def forward_low_memory(
        self,
        u_at: Callable[[int, int], Tensor],
        seqlen: int,
        chunk: int,
        channel_group: int | None = None,
        conv: Tensor | None = None,
    ) -> Iterator[tuple[int, Tensor]]:
        """Inference on one long sequence in O(L*D) memory: yields ``(s, y[s:s + chunk])`` from the last chunk to the
        first, where ``u_at(s, e)`` returns input rows s..e-1 as (e - s, D).

        Three passes keep one (D, L) float32 tensor besides the caller's: (1) x1 * v for every channel, in token
        chunks; (2) the long convolution of that tensor in place, in channel groups; (3) per chunk, x0, the gating
        and out_proj. x0 is stored in pass 1 while (L, D) float32 fits in STORE_X0_BYTES, else recomputed in pass 3
        (one in_proj third and the short conv again; at 1M tokens storing it would take 1 GB). Chunks are
        token-major, so the projections and the short conv run on contiguous rows and only x1 * v is transposed. A
        chunk reads input rows from s - K + 1 on, so once chunk s is yielded the caller may overwrite rows >= s (the
        block adds the output into the residual stream it normalises for ``u_at``). ``conv`` may pass in that (D, L)
        float32 tensor: the model reuses one for all layers, because first writes to fresh memory page-fault (at 1M
        tokens ~0.5 s per layer).
        """
        d = self.d_model
        dtype = matmul_dtype(self.in_proj.weight)  # bf16 under CPU autocast: cast the weights once, not per chunk
        w_in, b_in = self.in_proj.weight.to(dtype), self.in_proj.bias.to(dtype)
        w_out, b_out = self.out_proj.weight.to(dtype), self.out_proj.bias.to(dtype)
        if conv is None:
            conv = torch.empty(d, seqlen, dtype=torch.float32, device=w_in.device)
        x0_all = None
        if seqlen * d * 4 <= STORE_X0_BYTES:
            x0_all = torch.empty(seqlen, d, dtype=torch.float32, device=w_in.device)
        rows = slice(d if x0_all is None else 0, 3 * d)  # x1 and v, and x0 too if it is stored
        for s in range(0, seqlen, chunk):
            z = self._short_conv_chunk(u_at, s, min(seqlen, s + chunk), w_in[rows], b_in[rows], rows)
            if x0_all is not None:
                x0_all[s : s + chunk] = z[:, :d]
                z = z[:, d:]
            conv[:, s : s + chunk].T.copy_(z[:, :d].mul_(z[:, d:]))
        with reuse_freed_memory(REUSE_FREED_MEMORY):
            self._long_conv_low_memory(conv, channel_group)
        for s in reversed(range(0, seqlen, chunk)):
            if x0_all is None:
                x0 = self._short_conv_chunk(u_at, s, min(seqlen, s + chunk), w_in[:d], b_in[:d], slice(0, d))
            else:
                x0 = x0_all[s : s + chunk]
            yield s, linear(x0.mul_(conv[:, s : s + chunk].T), w_out, b_out)

    def _short_conv_chunk(
        self, u_at: Callable[[int, int], Tensor], start: int, end: int, weight: Tensor, bias: Tensor, rows: slice
    ) -> Tensor:
        """in_proj rows ``rows`` (given as ``weight``, ``bias``) and the short conv for tokens start..end-1, as
        float32 (tokens, channels). The chunk re-reads the K - 1 tokens before it, which the conv reaches back to."""
        first = max(0, start - self.short_filter.kernel_size[0] + 1)
        z = linear(u_at(first, end), weight, bias)
        w, b = self.short_filter.weight[rows, 0], self.short_filter.bias[rows]
        return causal_short_conv_tokens(z, w, b)[start - first :]

    def _long_conv_low_memory(self, x: Tensor, channel_group: int | None) -> None:
        """x (D, L) float32 <- fftconv(x), a channel group at a time, through one zero-padded buffer."""
        d, seqlen = x.shape
        cached = self._cached_spectrum(seqlen)
        n = fft_length(2 * seqlen - 1)
        if cached is None:
            hidden, t = self.filter_fn.features(seqlen)
        if channel_group is None:  # the buffer and three transforms of ~4n bytes per channel
            channel_group = max(1, min(16, GROUP_BUFFER_BYTES // (16 * n)))
        c = min(channel_group, d)
        work = torch.zeros(c, n, dtype=torch.float32, device=x.device)
        for g0 in range(0, d, c):
            g = slice(g0, min(d, g0 + c))
            cg = g.stop - g.start
            if cached is None:  # the filter goes through the same zero-padded buffer first
                self.filter_fn.filter_channels(hidden, t, g, out=work[:cg, : hidden.shape[0]])
                work[:cg, hidden.shape[0] :] = 0
                k_f = torch.fft.rfft(work[:cg])
            else:
                k_f = cached[0][g]
            fftconv_inplace(x[g], k_f, self.filter_fn.bias[g], work[:cg])
