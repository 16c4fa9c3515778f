"""Where weights come from: a path the user gives, the bundled model, or the local cache. Never the network.

A published model name is looked up in ``$HYENADNA_HOME/<name>/`` (default ``~/.cache/hyenadna/<name>/``), also as
``<name>-hf``. Nothing here downloads, and nothing here deletes a cached file.
"""

from __future__ import annotations

import os
from pathlib import Path

from hyenadna.models.config import PUBLISHED_CONFIGS, HyenaConfig

BUNDLED_DIR = Path(__file__).parent / "weights"
# The pretrained model shipped inside the package (``hyenadna/weights/<name>/``), used when no model is named.
BUNDLED_MODEL = "hyenadna-tiny-1k-d256-grch37"
# The shape used for a deliberately random model when no name is given.
DEFAULT_RANDOM_SHAPE = "hyenadna-tiny-1k-seqlen-d256"


class WeightsNotFoundError(FileNotFoundError):
    """The named model's files are not on this machine; the message says what to put where."""


def cache_dir() -> Path:
    return Path(os.environ.get("HYENADNA_HOME") or "~/.cache/hyenadna").expanduser()


def bundled_models() -> list[str]:
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "config.json").is_file())


def known_names() -> list[str]:
    return sorted(set(PUBLISHED_CONFIGS) | set(bundled_models()))


def published_config(name: str) -> HyenaConfig | None:
    return PUBLISHED_CONFIGS.get(name.removesuffix("-hf"))


def resolve_weights(model_name: str | None, model_path: str | Path | None = None) -> Path:
    """The file or directory holding the weights for ``model_name`` (or the bundled default)."""
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(f"model_path {str(path)!r} does not exist")
        return path
    if model_name is None:
        if BUNDLED_MODEL not in bundled_models():
            raise WeightsNotFoundError(
                f"no model named, and the bundled model {BUNDLED_MODEL!r} is missing from {BUNDLED_DIR}: pass "
                "model_name=... (with its weights in the cache) or model_path=..., or pretrained=False for a random "
                "model"
            )
        model_name = BUNDLED_MODEL
    if Path(model_name).expanduser().exists() and ("/" in model_name or os.sep in model_name):
        return Path(model_name).expanduser()
    if model_name in bundled_models():
        return BUNDLED_DIR / model_name
    if published_config(model_name) is None:
        raise WeightsNotFoundError(
            f"unknown model name {model_name!r}; known names: {', '.join(known_names())}. To load other weights, "
            "pass model_path=<directory or file>"
        )
    base = model_name.removesuffix("-hf")
    candidates = [cache_dir() / model_name] + ([cache_dir() / f"{base}-hf"] if base == model_name else [])
    for c in candidates:
        if c.is_dir() and any((c / f).is_file() for f in ("model.safetensors", "weights.ckpt")):
            return c
    raise WeightsNotFoundError(
        f"no weights for {model_name!r} on this machine (hyenadna never downloads). Looked in: "
        f"{', '.join(str(c) for c in candidates)}. Get the files from the Hugging Face Hub repository "
        f"LongSafari/{base} (weights.ckpt + config.json) or LongSafari/{base}-hf (model.safetensors + config.json) "
        f"and put them in {candidates[0]}/ (set HYENADNA_HOME to use another cache folder), or pass "
        "model_path=<that folder>. For a randomly initialised model on purpose, pass pretrained=False."
    )


def check_matches_published(name: str | None, config: HyenaConfig, source: Path) -> None:
    """Files found under a published name must have that model's shape."""
    expected = published_config(name) if name else None
    if expected is None:
        return
    shape = ("d_model", "n_layer", "d_inner", "l_max")
    diffs = [
        f"{f}={getattr(config, f)} (expected {getattr(expected, f)})"
        for f in shape
        if getattr(config, f) != getattr(expected, f)
    ]
    if diffs:
        raise ValueError(f"{source}: these weights do not have the shape of {name}: {', '.join(diffs)}")


__all__ = ["WeightsNotFoundError", "cache_dir", "check_matches_published", "resolve_weights"]
