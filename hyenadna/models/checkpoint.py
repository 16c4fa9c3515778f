"""Reading and writing every HyenaDNA checkpoint layout, offline, with a clear error for anything that does not fit.

Layouts (GUIDE.md section 2):
- "lightning": ``weights.ckpt`` (a torch.save dict, weights under ``state_dict`` with a ``model.`` prefix) + the
  original ``config.json``. Gradient-checkpointed saves add ``.layer`` after ``.mixer`` / ``.mlp``.
- "hf": ``model.safetensors`` with a ``hyena.`` prefix, an untied ``lm_head.weight`` and ``freq`` stored once, + the
  Hugging Face ``config.json``.
- "hyenadna": ours, ``model.safetensors`` with reference key names (``backbone.``), ``freq`` stored once, + our
  ``config.json``. A directory of reference-named safetensors with an original config also loads as this layout.

Either safetensors layout may be split into shards, as Hugging Face splits large models: ``model-00001-of-0000N``
files and ``model.safetensors.index.json``, whose ``weight_map`` names each tensor's shard. A model over the 10 MB a
git repository file may take (a 3-layer d256 model at 16k context is 11 MB) ships that way.

Every layout is mapped to one canonical state dict: reference key names, each layer's shared ``freq`` once (as
``implicit_filter.1.freq``), and ``lm_head.weight`` only when the head is not tied.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from hyenadna.models.config import HyenaConfig, config_schema
from hyenadna.utils.io import atomic_path, atomic_write_text
from hyenadna.utils.shards import split_by_size, write_sharded

LAYOUTS = ("hyenadna", "hf", "lightning")
WEIGHT_FILES = {"hyenadna": "model.safetensors", "hf": "model.safetensors", "lightning": "weights.ckpt"}
SHARD_INDEX = "model.safetensors.index.json"
WEIGHT_CANDIDATES = ("model.safetensors", SHARD_INDEX, "weights.ckpt")  # a folder's weights, most preferred first
_SHARD_FILE = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
_FREQ_ALIAS = re.compile(r"^(.*\.implicit_filter\.)([35])\.freq$")
_HEAD = "lm_head.weight"
_EMBEDDING = "backbone.embeddings.word_embeddings.weight"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as it is. The message names the file and, where there is one, the key."""


@dataclass(frozen=True)
class CheckpointFiles:
    weights: Path
    config: Path


def find_checkpoint_files(path: str | Path) -> CheckpointFiles:
    """The weights file and config.json for a directory, or for a weights file given directly."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_file():
        weights, directory = path, path.parent
        if _SHARD_FILE.match(path.name) and (directory / SHARD_INDEX).is_file():  # one shard named: the whole model
            weights = directory / SHARD_INDEX
    else:
        directory = path
        weights = next((directory / c for c in WEIGHT_CANDIDATES if (directory / c).is_file()), None)
        if weights is None and (directory / "finetune.json").is_file():
            raise CheckpointError(
                f"{directory} is a fine-tuned model (finetune.json): HyenaDNAFineTuningModel.load (hyenadna predict) "
                f"runs it, and its backbone, a pretrained-model folder, is {directory / 'backbone'}"
            )
        if weights is None:
            others = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.ckpt"))
            if others and all(_SHARD_FILE.match(p.name) for p in others):
                raise CheckpointError(
                    f"{directory}: has the shards {[p.name for p in others]} but not {SHARD_INDEX}, which lists them "
                    "(an interrupted write or copy?)"
                )
            if len(others) != 1:
                raise CheckpointError(
                    f"{directory}: expected model.safetensors or weights.ckpt (with config.json) in this directory, "
                    f"found {[p.name for p in others] or 'neither'}"
                )
            weights = others[0]
    config = directory / "config.json"
    if not config.is_file():
        if path.is_file() and path.suffix not in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".json"):
            raise CheckpointError(
                f"{path}: not a checkpoint; give a model folder, or a weights file (model.safetensors, weights.ckpt) "
                "with its config.json beside it"
            )
        raise CheckpointError(f"{directory}: config.json is missing; it must sit beside {weights.name}")
    return CheckpointFiles(weights, config)


def read_config(path: str | Path) -> HyenaConfig:
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read config: {e}") from None
    try:
        config = HyenaConfig.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid HyenaDNA config: {e!s}") from None
    if "modulation_shift" in d and config_schema(d) != "ours":
        config = replace(config, modulation_shift=float(d["modulation_shift"]))
    return config


def read_state_dict(path: str | Path, allow_unsafe_pickle: bool = False) -> tuple[dict[str, Tensor], str]:
    """Raw tensors of a weights file and the layout its keys reveal ("hyenadna", "hf" or "lightning")."""
    path = Path(path)
    if path.name.endswith(".safetensors.index.json"):
        raw = _read_shards(path)
    elif path.suffix == ".safetensors":
        raw = _read_safetensors(path)
    else:
        raw = _torch_load(path, allow_unsafe_pickle)
    if not raw:
        raise CheckpointError(f"{path}: holds no tensors")
    if any(k.startswith("hyena.") for k in raw):
        return raw, "hf"
    if any(k.startswith("model.") for k in raw):
        return raw, "lightning"
    return raw, "hyenadna"


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: truncated or corrupted safetensors file ({e})") from None


def _weight_map(index: Path) -> dict[str, str]:
    """A safetensors index's tensor name -> shard file name, each shard a plain file name beside the index."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index}: not a safetensors index with a weight_map ({e!r})") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: weight_map must map tensor names to shard file names")
    for key, shard in weight_map.items():
        if Path(shard).name != shard or not shard.endswith(".safetensors"):  # never read outside the folder
            raise CheckpointError(f"{index}: key {key!r} points to {shard!r}, not a .safetensors file beside the index")
    return weight_map


def shard_names(index: str | Path) -> list[str]:
    """The shard files a ``model.safetensors.index.json`` lists, in order."""
    return sorted(set(_weight_map(Path(index)).values()))


def weight_files(path: str | Path) -> list[Path]:
    """Every file holding a checkpoint's weights: the one weights file, or the shard index and its shards."""
    weights = find_checkpoint_files(path).weights
    if weights.name != SHARD_INDEX:
        return [weights]
    return [weights] + [weights.parent / name for name in shard_names(weights)]


def _read_shards(index: Path) -> dict[str, Tensor]:
    """The tensors of every shard an index lists, after checking that each shard holds exactly the tensors the index
    says it does."""
    expected: dict[str, set[str]] = {}
    for key, shard in _weight_map(index).items():
        expected.setdefault(shard, set()).add(key)
    raw: dict[str, Tensor] = {}
    for shard, keys in expected.items():
        path = index.parent / shard
        if not path.is_file():
            raise CheckpointError(f"{index}: lists {shard}, which is missing (holding {len(keys)} tensors)")
        tensors = _read_safetensors(path)
        if set(tensors) != keys:
            missing, extra = sorted(keys - set(tensors)), sorted(set(tensors) - keys)
            if missing:
                detail = f"lacks {missing[0]!r}, which the index places there"
            else:
                detail = f"holds {extra[0]!r}, which the index does not list"
            raise CheckpointError(f"{path}: {detail}; the shard and {index.name} are from different saves")
        raw.update(tensors)
    return raw


def _torch_load(path: Path, allow_unsafe_pickle: bool) -> dict[str, Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not allow_unsafe_pickle:
            raise CheckpointError(
                f"{path}: the file holds Python objects besides tensors (often omegaconf hyperparameters), which we do "
                "not unpickle by default because unpickling can run arbitrary code. If you trust the file, pass "
                "allow_unsafe_pickle=True (CLI: --allow-unsafe-pickle), then convert it once with "
                f"`hyenadna convert`. Detail: {str(e).splitlines()[0]}"
            ) from None
        warnings.warn(
            f"{path}: fully unpickling a checkpoint (allow_unsafe_pickle=True); only do this for files you trust",
            stacklevel=3,
        )
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:  # any failure here means the file itself is bad
            raise CheckpointError(f"{path}: cannot unpickle: {e2}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({str(e).splitlines()[0]})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (or a dict with one under 'state_dict')")
    return obj


def canonical_state_dict(raw: dict[str, Tensor], layout: str, source: str | Path = "<state dict>") -> dict[str, Tensor]:
    """Map a layout's keys to reference names, drop training junk, and fold the three freq aliases into one."""
    out: dict[str, Tensor] = {}
    prefix = {"hf": "hyena.", "lightning": "model.", "hyenadna": ""}[layout]
    for key, tensor in raw.items():
        if "torchmetrics" in key:  # Lightning metric state, not model weights
            continue
        k = key
        if k != _HEAD and k.startswith(prefix):
            k = k[len(prefix) :]
        k = k.replace(".mixer.layer.", ".mixer.").replace(".mlp.layer.", ".mlp.")
        if k in out:
            raise CheckpointError(f"{source}: key {key!r} duplicates {k!r}")
        out[k] = tensor
    for k in [k for k in out if _FREQ_ALIAS.match(k)]:
        first = _FREQ_ALIAS.sub(r"\g<1>1.freq", k)
        if first in out and not torch.equal(out[first], out[k]):
            raise CheckpointError(
                f"{source}: key {k!r} differs from {first!r}; the three Sin activations of a "
                "HyenaDNA filter share one freq tensor"
            )
        if first not in out:
            out[first] = out[k]
        del out[k]
    return out


def read_checkpoint(path: str | Path, allow_unsafe_pickle: bool = False) -> tuple[HyenaConfig, dict[str, Tensor], Path]:
    """The config, canonical state dict and weights file of a checkpoint in any layout (a directory or a file).

    ``lm_head.weight`` stays only when it really differs from the embedding (the -hf port and Lightning store a tied
    copy); ``config.tie_word_embeddings`` says which."""
    files = find_checkpoint_files(path)
    config = read_config(files.config)
    raw, layout = read_state_dict(files.weights, allow_unsafe_pickle)
    state = canonical_state_dict(raw, layout, files.weights)
    tied = True
    if _HEAD in state:
        head = state.pop(_HEAD)
        tied = _EMBEDDING in state and head.shape == state[_EMBEDDING].shape and torch.equal(head, state[_EMBEDDING])
        if not tied:
            state[_HEAD] = head
    return replace(config, tie_word_embeddings=tied), state, files.weights


def check_state_dict(
    state: dict[str, Tensor], expected: dict[str, tuple[int, ...]], source: str | Path, hint: str = ""
) -> None:
    """Every key of ``expected`` present with its shape, and no other key; the error names the key."""
    hint = f"; {hint}" if hint else ""
    for key in state:
        if key not in expected:
            raise CheckpointError(f"{source}: unexpected key {key!r}{hint}")
    for key, shape in expected.items():
        if key not in state:
            raise CheckpointError(f"{source}: missing key {key!r}")
        if tuple(state[key].shape) != shape:
            raise CheckpointError(
                f"{source}: key {key!r} has shape {list(state[key].shape)}, expected {list(shape)}{hint}"
            )


def without_derived_buffers(state: dict[str, Tensor], model: torch.nn.Module, source: str | Path) -> dict[str, Tensor]:
    """``state`` less the buffers ``model`` rebuilds from its config rather than stores (non-persistent: the
    positional features of a model with geometric filter bands), each first checked against the rebuilt one, so that
    weights saved while they were stored still load and a stored copy that differs is an error."""
    stored_keys = model.state_dict().keys()
    out = dict(state)
    for key, buffer in model.named_buffers():
        if key in stored_keys or key not in out:
            continue
        stored = out.pop(key)
        if stored.shape != buffer.shape or not torch.equal(stored.to(buffer.dtype), buffer.cpu()):
            raise CheckpointError(
                f"{source}: key {key!r} differs from the buffer the config describes, which the model rebuilds; the "
                "weights were saved by a model built differently"
            )
    return out


def canonical_keys(model_keys: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of a model's state dict in canonical form (each layer's shared freq once)."""
    return {k: tuple(v.shape) for k, v in model_keys.items() if not _FREQ_ALIAS.match(k)}


def with_freq_aliases(state: dict[str, Tensor], model_keys: Iterable[str]) -> dict[str, Tensor]:
    """A canonical state dict with the freq tensor repeated under each alias the model's state dict has."""
    full = dict(state)
    for key in model_keys:
        m = _FREQ_ALIAS.match(key)
        if m:
            full[key] = state[f"{m.group(1)}1.freq"]
    return full


def write_checkpoint(
    directory: str | Path,
    config: HyenaConfig,
    model_state: dict[str, Tensor],
    head_weight: Tensor,
    layout: str = "hyenadna",
    max_shard_bytes: int | None = None,
) -> Path:
    """Write ``config.json`` + weights in one of ``LAYOUTS`` from a model's state dict. Each file is written
    atomically. ``max_shard_bytes``: safetensors weights larger than this are split into shards of at most this size
    (plus ``model.safetensors.index.json``); weights of an earlier save in the other form are removed."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: choose one of {LAYOUTS}")
    if layout != "hyenadna" and config.filter_geometric_bands:
        raise ValueError(
            f"layout={layout!r} cannot hold filter_geometric_bands={config.filter_geometric_bands} (the reference "
            "code builds only the published positional features): write the 'hyenadna' layout"
        )
    if max_shard_bytes is not None and (layout == "lightning" or max_shard_bytes <= 0):
        raise ValueError(f"max_shard_bytes={max_shard_bytes}: shards are safetensors files of a positive size")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is a file; a checkpoint is saved as a folder (config.json + weights)")
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model_state.items() if not _FREQ_ALIAS.match(k)
    }
    if layout == "lightning":
        sd = {"model." + k: v for k, v in model_state.items()}
        sd["model." + _HEAD] = head_weight.detach().cpu().float()
        with atomic_path(directory / WEIGHT_FILES[layout]) as tmp:
            torch.save({"state_dict": sd, "epoch": 0, "global_step": 0}, tmp)
        config_dict = _original_config(config)
    else:
        if layout == "hf":
            state = {("hyena." + k if k != _HEAD else k): v for k, v in state.items()}
            state.setdefault(_HEAD, state["hyena." + _EMBEDDING].clone())
        _write_safetensors(directory, state, max_shard_bytes)
        config_dict = config.to_dict() if layout == "hyenadna" else _hf_config(config)
    atomic_write_text(directory / "config.json", json.dumps(config_dict, indent=2) + "\n")
    return directory


def _write_safetensors(directory: Path, state: dict[str, Tensor], max_shard_bytes: int | None) -> None:
    single, index = directory / "model.safetensors", directory / SHARD_INDEX
    total = sum(v.numel() * v.element_size() for v in state.values())
    metadata = {"format": "pt"}
    if max_shard_bytes is None or total <= max_shard_bytes:
        with atomic_path(single) as tmp:
            save_file(state, tmp, metadata=metadata)
        index.unlink(missing_ok=True)  # after: the new single file wins over an old index meanwhile
        for path in directory.iterdir():
            if _SHARD_FILE.match(path.name):
                path.unlink()
        return
    groups = split_by_size(state, max_shard_bytes)
    shards = {f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors": g for i, g in enumerate(groups)}
    weight_map = {key: name for name, group in shards.items() for key in group}
    text = json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"
    single.unlink(missing_ok=True)  # first: a reader prefers it, and it would outlive a failed sharded write
    write_sharded(directory, shards, index, text, stale=lambda p: bool(_SHARD_FILE.match(p.name)), metadata=metadata)


def _hf_config(c: HyenaConfig) -> dict:
    d = {
        "model_type": "hyenadna",
        "d_model": c.d_model,
        "n_layer": c.n_layer,
        "d_inner": c.d_inner,
        "vocab_size": c.vocab_size,
        "max_seq_len": c.l_max,
        "emb_dim": c.emb_dim,
        "filter_order": c.filter_order,
        "short_filter_order": c.short_filter_order,
        "activation_freq": c.activation_freq,
        "num_inner_mlps": c.num_inner_mlps,
        "hyena_order": c.hyena_order,
        "use_bias": True,
        "train_freq": True,
        "embed_dropout": c.embed_dropout,
        "hyena_dropout": c.hyena_dropout,
        "hyena_filter_dropout": 0.0,
        "layer_norm_epsilon": c.layer_norm_epsilon,
        "initializer_range": c.initializer_range,
        "pad_vocab_size_multiple": c.pad_vocab_size_multiple,
        "tie_word_embeddings": False,
        "pad_token_id": 4,
        "torch_dtype": "float32",
    }
    if c.modulation_shift != 0.05:
        d["modulation_shift"] = c.modulation_shift
    return d


def _original_config(c: HyenaConfig) -> dict:
    d = {
        "d_model": c.d_model,
        "n_layer": c.n_layer,
        "d_inner": c.d_inner,
        "vocab_size": c.vocab_size,
        "resid_dropout": c.resid_dropout,
        "embed_dropout": c.embed_dropout,
        "fused_mlp": False,
        "fused_dropout_add_ln": True,
        "checkpoint_mixer": False,
        "checkpoint_mlp": False,
        "residual_in_fp32": True,
        "pad_vocab_size_multiple": c.pad_vocab_size_multiple,
        "return_hidden_state": True,
        "layer": {
            "_name_": "hyena",
            "emb_dim": c.emb_dim,
            "filter_order": c.filter_order,
            "local_order": c.short_filter_order,
            "l_max": c.l_max,
            "modulate": c.modulate,
            "w": c.activation_freq,
        },
    }
    if c.modulation_shift != 0.05:
        d["layer"]["shift"] = c.modulation_shift
    return d
