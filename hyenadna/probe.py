"""Probing: frozen, mask-pooled embeddings (cached on disk) and a light scikit-learn classifier on top."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from hyenadna.sdk import HyenaDNA
from hyenadna.utils.io import atomic_path

PROBES = ("logreg", "mlp")


def make_probe(kind: str, seed: int = 0, **params) -> Pipeline:
    """A scikit-learn estimator (fit / predict / predict_proba) on standardised embeddings."""
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=seed, **params))
    if kind == "mlp":
        params = {"hidden_layer_sizes": (256,), "early_stopping": True, "max_iter": 300, **params}
        return make_pipeline(StandardScaler(), MLPClassifier(random_state=seed, **params))
    raise ValueError(f"probe={kind!r}: choose one of {PROBES}")


def model_fingerprint(model: torch.nn.Module) -> str:
    """A hash of every weight: cached embeddings belong to exactly one set of weights."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # bf16 too
    return h.hexdigest()[:16]


class EmbeddingCache:
    """Pooled embeddings on disk under ``<dir>/<model hash>/<key>.npy``, written atomically."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._hashes: dict[int, str] = {}

    def get(
        self, model: HyenaDNA, sequences: list[str], key: str, pooling: str = "mean", layer: int = -1
    ) -> np.ndarray:
        fp = self._hashes.setdefault(id(model.model), model_fingerprint(model.model))
        cfg = model.config
        # everything besides the weights and the sequences that changes an embedding
        settings = {
            "pooling": pooling,
            "layer": model.model.backbone.layer_indices([layer])[0],
            "framing": cfg.framing,
            "iupac_policy": cfg.iupac_policy,
            "n_to_pad": cfg.n_to_pad,
            "rc_average": cfg.rc_average,
            "precision": cfg.precision,
            "context": model.context_length,
            "long_sequences": cfg.long_sequences,
            "overlap": cfg.overlap,
        }
        tag = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()[:12]
        digest = hashlib.sha256("\n".join(sequences).encode()).hexdigest()[:12]
        path = self.directory / fp / f"{key}.{tag}.{digest}.npy"
        if path.is_file():
            return np.load(path)
        emb = model.get_embeddings(model.process_data(sequences), pooling=pooling, layer=layer)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, emb)
        return emb
