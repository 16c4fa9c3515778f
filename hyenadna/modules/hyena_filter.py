"""The implicit long filter of a Hyena operator: h(t) = FFN(PE(t)) * Window(t), evaluated on a grid of l_max points."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hyenadna.ops import fused


class PositionalEmbedding(nn.Module):
    """Features z(t) = [t, cos(f w), -sin(f w)] on the l_max grid. Buffers: frozen in the released models.

    ``geometric_bands`` appends that many more cos/sin pairs whose frequencies run geometrically from 1 cycle over
    the grid to its Nyquist frequency (l_max / 2 cycles). The published bands (0 to bands - 1 cycles) cannot tell a
    position from its neighbours far from the origin, so the filter cannot read one position far back; the top
    geometric bands can (docs/pretraining/long_range_copy)."""

    def __init__(self, emb_dim: int, l_max: int, geometric_bands: int = 0):
        super().__init__()
        bands = (emb_dim - 1) // 2
        t = torch.linspace(0, 1, l_max)[None, :, None]
        w = 2 * math.pi * torch.linspace(0, l_max - 1, l_max)[None, :, None] / l_max
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        # exp(-i f w) rather than cos/sin keeps z bit-identical to the buffers stored in released checkpoints
        z = torch.exp(-1j * f * w)
        features = [t, z.real, z.imag]
        if geometric_bands:
            positions = torch.arange(l_max, dtype=torch.float64)[None, :, None]
            cycles = torch.logspace(0, math.log10(max(l_max / 2, 1.0)), geometric_bands, dtype=torch.float64)
            angle = 2 * math.pi * cycles[None, None] * positions / l_max
            features += [torch.cos(angle).float(), -torch.sin(angle).float()]
        # released checkpoints store z; with geometric bands it is rebuilt from the config instead (2.4 MB a layer at
        # 16k, 42% of a 2-layer d256 model's file), and a stored copy is checked, then dropped, on loading
        # (models/checkpoint.py: ``without_derived_buffers``)
        self.register_buffer("z", torch.cat(features, dim=-1), persistent=not geometric_bands)
        self.register_buffer("t", t)

    def forward(self, length: int) -> tuple[Tensor, Tensor]:
        return self.z[:, :length], self.t[:, :length]


class ExponentialModulation(nn.Module):
    """Window(t) = exp(-t |delta_c|) + shift: per-channel decay rates spread between fast and slow."""

    def __init__(self, d_model: int, shift: float, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5):
        super().__init__()
        target = math.log(1e-2)
        self.shift = shift
        deltas = torch.linspace(target / slow_decay_pct, target / fast_decay_pct, d_model)
        self.register_buffer("deltas", deltas[None, None])

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        return h * (torch.exp(-t * self.deltas.abs()) + self.shift)


class Sin(nn.Module):
    """sin(freq * x) with a learnable frequency per feature."""

    def __init__(self, dim: int, w: float = 10.0, train_freq: bool = True):
        super().__init__()
        freq = w * torch.ones(1, dim)
        self.freq = nn.Parameter(freq) if train_freq else freq

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.freq * x)


class HyenaFilter(nn.Module):
    """Implicit filter h(t) for ``d_model`` channels, plus the per-channel skip term D (``bias``) of the convolution.

    One ``Sin`` module (so one ``freq`` tensor) sits at all three activation positions of the FFN, as in the reference;
    its state dict therefore lists ``implicit_filter.{1,3,5}.freq``, all the same tensor.
    """

    def __init__(
        self,
        d_model: int,
        l_max: int,
        emb_dim: int = 5,
        order: int = 64,
        num_inner_mlps: int = 2,
        w: float = 10.0,
        modulate: bool = True,
        shift: float = 0.05,
        geometric_bands: int = 0,
    ):
        super().__init__()
        self.d_model = d_model
        self.l_max = l_max
        self.modulate = modulate
        self.bias = nn.Parameter(torch.randn(d_model))
        self.pos_emb = PositionalEmbedding(emb_dim, l_max, geometric_bands)
        act = Sin(order, w)
        layers: list[nn.Module] = [nn.Linear(emb_dim + 2 * geometric_bands, order), act]
        for _ in range(num_inner_mlps):
            layers += [nn.Linear(order, order), act]
        layers.append(nn.Linear(order, d_model, bias=False))
        self.implicit_filter = nn.Sequential(*layers)
        self.modulation = ExponentialModulation(d_model, shift)

    def features(self, length: int, chunk: int = 1 << 14) -> tuple[Tensor, Tensor]:
        """The FFN's last hidden layer (taps, order) and t (1, taps, 1), shared by all channels, for building the
        filter a channel group at a time. Computed a chunk of positions at a time: the FFN acts per position, and
        chunks keep its intermediates in cache instead of several taps x order tensors in memory."""
        z, t = self.pos_emb(min(length, self.l_max))
        hidden = torch.empty(z.shape[1], self.implicit_filter[-1].in_features, dtype=z.dtype, device=z.device)
        with _float32(z):
            for s in range(0, z.shape[1], chunk):
                hidden[s : s + chunk] = self.implicit_filter[:-1](z[0, s : s + chunk])
        return hidden, t

    def filter_channels(self, hidden: Tensor, t: Tensor, channels: slice, out: Tensor, chunk: int = 1 << 14) -> Tensor:
        """Taps of a group of channels from ``features``, written into ``out`` (channels, taps), which may be a view
        with a row stride (the zero-padded FFT buffer)."""
        with _float32(hidden):
            torch.mm(self.implicit_filter[-1].weight[channels], hidden.T, out=out)
            if self.modulate:
                decay = -self.modulation.deltas[0, 0, channels, None].abs()
                for s in range(0, hidden.shape[0], chunk):
                    out[:, s : s + chunk].mul_(torch.exp(t[0, s : s + chunk, 0] * decay).add_(self.modulation.shift))
        return out

    def filter(self, length: int) -> Tensor:
        """The first min(length, l_max) taps, channels-first: (d_model, taps). No taps exist beyond l_max. The
        reference's order of operations: token-major, transposed at the end (the reference path uses it)."""
        z, t = self.pos_emb(min(length, self.l_max))
        with _float32(z):
            h = self.implicit_filter(z)
            if self.modulate:
                h = self.modulation(t, h)
        return h[0].transpose(0, 1)

    def filter_channels_first(self, length: int) -> Tensor:
        """``filter(length)`` computed channels-first: the last projection as W @ hidden^T and the window as an outer
        product, so the taps come out contiguous (d_model, taps). ``filter``'s transposed view cost the FFT's zero
        padding a transposed copy, and its gradient another, ~10 ms each per layer at 16k taps."""
        z, t = self.pos_emb(min(length, self.l_max))
        decay = -self.modulation.deltas[0, 0, :, None].abs() if self.modulate else None
        linears = [(m.weight, m.bias) for m in self.implicit_filter[:-1] if isinstance(m, nn.Linear)]
        args = (z[0], t[0, :, 0], linears, self.implicit_filter[1].freq, self.implicit_filter[-1].weight, decay)
        with _float32(z):
            if torch.is_grad_enabled():  # training: compiled with its backward on the CPU (ops/fused.py)
                return fused.implicit_filter(*args, self.modulation.shift)
            return fused.implicit_filter_ref(*args, self.modulation.shift)


def _float32(x: Tensor) -> torch.autocast:
    """The filter feeds the float32 FFT convolution, so it is computed in float32 under mixed precision too."""
    return torch.autocast(x.device.type, enabled=False)
