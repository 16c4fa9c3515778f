"""Model configuration, and the registry of published HyenaDNA shapes by their hub names."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

FORMAT_NAME = "hyenadna"
FORMAT_VERSION = 1


@dataclass
class HyenaConfig:
    """Shape and hyperparameters of a HyenaDNA language model (GUIDE.md section 1)."""

    d_model: int = 128
    n_layer: int = 2
    d_inner: int = 512
    l_max: int = 1026  # filter grid size; fixed by the checkpoint because the grid rescales with it
    vocab_size: int = 12
    pad_vocab_size_multiple: int = 8
    emb_dim: int = 5  # positional features of the implicit filter: t plus 2 bands of cos/sin
    # more cos/sin bands, spaced geometrically from 1 cycle over the grid to its Nyquist frequency, after emb_dim's
    # features: they let a filter be sharp far from the origin (docs/pretraining/long_range_copy). 0 in every
    # published model, whose layouts cannot hold them.
    filter_geometric_bands: int = 0
    filter_order: int = 64  # width of the implicit filter MLP
    short_filter_order: int = 3
    hyena_order: int = 2
    num_inner_mlps: int = 2
    activation_freq: float = 10.0
    modulate: bool = True
    modulation_shift: float = 0.05  # the reference file and -hf port use 0.05; the training code used 0.0
    embed_dropout: float = 0.1
    resid_dropout: float = 0.0
    hyena_dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.hyena_order != 2:
            raise ValueError(f"hyena_order={self.hyena_order}: only order 2 (every published model) is supported")
        if self.emb_dim < 3 or self.emb_dim % 2 == 0:
            raise ValueError(f"emb_dim={self.emb_dim}: must be odd and >= 3 (t plus cos/sin pairs)")
        if self.filter_geometric_bands < 0:
            raise ValueError(f"filter_geometric_bands={self.filter_geometric_bands}: must be >= 0")
        for name in ("d_model", "n_layer", "d_inner", "l_max", "vocab_size", "filter_order", "short_filter_order"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be a positive integer")

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return int(math.ceil(self.vocab_size / m) * m)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HyenaConfig:
        """Read any of the three config schemas: ours, the original (LongSafari) one, or the Hugging Face -hf one."""
        schema = config_schema(d)
        if schema == "original":
            layer = d["layer"]
            kw = dict(
                d_model=d["d_model"],
                n_layer=d["n_layer"],
                d_inner=d.get("d_inner", 4 * d["d_model"]),
                l_max=layer["l_max"],
                vocab_size=d.get("vocab_size", 12),
                pad_vocab_size_multiple=d.get("pad_vocab_size_multiple", 8),
                emb_dim=layer.get("emb_dim", 5),
                filter_order=layer.get("filter_order", 64),
                # the reference ignores local_order and hard-codes 3 taps
                short_filter_order=3,
                hyena_order=layer.get("order", 2),
                num_inner_mlps=layer.get("num_inner_mlps", 2),
                activation_freq=layer.get("w", 10),
                modulate=layer.get("modulate", True),
                # the reference passes layer["shift"] through to the window (exp(-t|delta|) + shift)
                modulation_shift=float(layer.get("shift", 0.05)),
                embed_dropout=d.get("embed_dropout", 0.1),
                resid_dropout=d.get("resid_dropout", 0.0),
                hyena_dropout=layer.get("dropout", 0.0),
                layer_norm_epsilon=d.get("layer_norm_epsilon", 1e-5),
            )
        elif schema == "hf":
            kw = dict(
                d_model=d["d_model"],
                n_layer=d["n_layer"],
                d_inner=d.get("d_inner", 4 * d["d_model"]),
                l_max=d["max_seq_len"],
                vocab_size=d.get("vocab_size", 12),
                pad_vocab_size_multiple=d.get("pad_vocab_size_multiple", 8),
                emb_dim=d.get("emb_dim", 5),
                filter_order=d.get("filter_order", 64),
                short_filter_order=d.get("short_filter_order", 3),
                hyena_order=d.get("hyena_order", 2),
                num_inner_mlps=d.get("num_inner_mlps", 2),
                activation_freq=d.get("activation_freq", 10),
                embed_dropout=d.get("embed_dropout", 0.1),
                hyena_dropout=d.get("hyena_dropout", 0.0),
                layer_norm_epsilon=d.get("layer_norm_epsilon", 1e-5),
                initializer_range=d.get("initializer_range", 0.02),
            )
        else:
            fields = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(d) - fields - {"format", "format_version"})
            if unknown:
                raise ValueError(f"unknown config fields {unknown}")
            kw = {k: v for k, v in d.items() if k in fields}
        return cls(**kw)

    def shape_summary(self) -> str:
        return f"d_model={self.d_model}, n_layer={self.n_layer}, d_inner={self.d_inner}, l_max={self.l_max}"


def config_schema(d: dict[str, Any]) -> str:
    """Which of the three config.json schemas ``d`` follows: "ours", "original" or "hf"."""
    if d.get("format") == FORMAT_NAME:
        return "ours"
    if isinstance(d.get("layer"), dict):
        return "original"
    if d.get("model_type") == "hyenadna" or "max_seq_len" in d:
        return "hf"
    raise ValueError(
        'config.json is not a HyenaDNA config: expected our format ("format": "hyenadna"), the original one '
        '(with a "layer" section) or the Hugging Face one ("model_type": "hyenadna")'
    )


def _published(d_model: int, n_layer: int, l_max: int) -> HyenaConfig:
    return HyenaConfig(d_model=d_model, n_layer=n_layer, d_inner=4 * d_model, l_max=l_max)


# The seven released checkpoints (GUIDE.md section 1). Their weights live on the Hugging Face Hub under
# LongSafari/<name> (Lightning weights.ckpt) and LongSafari/<name>-hf (safetensors).
PUBLISHED_CONFIGS: dict[str, HyenaConfig] = {
    "hyenadna-tiny-1k-seqlen": _published(128, 2, 1026),
    "hyenadna-tiny-1k-seqlen-d256": _published(256, 2, 1026),
    "hyenadna-tiny-16k-seqlen-d128": _published(128, 2, 16386),
    "hyenadna-small-32k-seqlen": _published(256, 4, 32770),
    "hyenadna-medium-160k-seqlen": _published(256, 8, 160002),
    "hyenadna-medium-450k-seqlen": _published(256, 8, 450002),
    "hyenadna-large-1m-seqlen": _published(256, 8, 1000002),
}
