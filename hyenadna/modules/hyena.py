"""The Hyena operator of order 2: gated long convolution with an implicit filter (Poli et al. 2023)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hyenadna.modules.hyena_filter import HyenaFilter
from hyenadna.ops.execution import ExecutionOptions, choose_path
from hyenadna.ops.fftconv import fft_length, filter_spectrum
from hyenadna.ops.hyena import HyenaState, hyena_batched, hyena_decode, hyena_per_sequence, hyena_ref


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
        geometric_bands: int = 0,
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
            geometric_bands=geometric_bands,
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
            and all(a.shape == b.shape for a, b in zip(snapshot[1], state, strict=True))
            and _all_equal(snapshot[1], state)
        )
        if not same:
            self._spectra.clear()
            self._spectra_state = (shift, [t.detach().clone() for t in state])
        return same

    def cached_spectrum(self, seqlen: int, options: ExecutionOptions) -> tuple[Tensor, int] | None:
        """The filter's spectrum at the transform length for ``seqlen``, cached for inference while it fits in
        ``options.filter_cache_bytes`` (at 1M tokens one layer's spectrum is 2 GB); None when it does not."""
        n = fft_length(2 * seqlen - 1, self.in_proj.weight.device)
        size = self.d_model * (n // 2 + 1) * 8
        if size > options.filter_cache_bytes:
            return None
        key = (seqlen, n)
        if not self._filter_unchanged() or key not in self._spectra:
            if sum(v.numel() * 8 for v in self._spectra.values()) + size > options.filter_cache_bytes:
                self._spectra.clear()
            self._spectra[key] = filter_spectrum(self.filter_fn.filter_channels_first(seqlen), n)
        return self._spectra[key], n

    def forward(
        self,
        u: Tensor,
        path: str | None = None,
        options: ExecutionOptions | None = None,
        state: HyenaState | None = None,
    ) -> Tensor:
        """u: (B, L, D) -> (B, L, D), with (x0, x1, v) = short_filter(in_proj(u)) and y = out_proj(x0 * (h * (x1 v)
        + D x1 v)). Any L >= 1: beyond l_max the filter has no further taps. ``path`` (ops/execution.py) is chosen
        by device, length and autograd unless the model passes it. Given a ``state``, u continues the sequences it
        holds (the "decode" path)."""
        if state is not None:
            return hyena_decode(self, u, state)
        options = options or ExecutionOptions()
        if path is None:
            grad = torch.is_grad_enabled() or self.training
            path = choose_path(u.device, u.shape[1], grad=grad, reference=self.use_reference_path, low_memory=False)
        if path == "reference":
            return hyena_ref(self, u)
        if path == "train":
            return hyena_batched(self, u)
        k_f, n = self.cached_spectrum(u.shape[1], options) or self.uncached_spectrum(u.shape[1])
        if path == "batched":
            return hyena_batched(self, u, k_f, n)
        if path == "per_sequence":
            return hyena_per_sequence(self, u, k_f, n)
        raise ValueError(f"path={path!r}: the operator runs 'reference', 'train', 'batched' or 'per_sequence'")

    def uncached_spectrum(self, seqlen: int) -> tuple[Tensor, int]:
        n = fft_length(2 * seqlen - 1, self.in_proj.weight.device)
        return filter_spectrum(self.filter_fn.filter_channels_first(seqlen), n), n


def _all_equal(a: list[Tensor], b: list[Tensor]) -> bool:
    """Whether each pair of same-shaped tensors is equal: ``torch.equal`` on the CPU, one read off it (below)."""
    if a and a[0].device.type == "cpu":
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    return _all_equal_one_read(a, b)


def _all_equal_one_read(a: list[Tensor], b: list[Tensor]) -> bool:
    """One comparison of the concatenated tensors, so one wait for the device: each ``torch.equal`` on a GPU waits,
    and a wait per filter tensor (24 per tiny-1k forward) held the batched path to 0.78x the reference path's speed on
    an H200 (``benchmarks/gpu_paths.py``). Not on the CPU, where the copies would cost (a large-1m filter's positions
    are 20 MB a layer) and ``torch.equal`` stops at the first difference."""
    return not a or torch.equal(torch.cat([x.reshape(-1) for x in a]), torch.cat([y.reshape(-1) for y in b]))
