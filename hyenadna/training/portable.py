"""A pretraining checkpoint as files a git repository can hold: safetensors shards of at most ~9.5 MB and a JSON file.

``checkpoint.pt`` holds the model, the AdamW state, the step and the RNG state in one file (20 MB for a D256 model),
over the 10 MB a repository file may take. ``pack_checkpoint`` writes the same state as ``checkpoint/``:
``state.json`` (step, tokens, wall time, config, the optimiser's param groups, the shard list) and
``shard-NNNNN.safetensors`` files (no pickle). ``pretrain --resume`` reads either form, so a run committed this way
resumes exactly on a fresh machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from hyenadna.utils.shards import MAX_SHARD_BYTES, split_by_size, write_sharded

FORMAT = 1


def _flatten(state: dict) -> dict[str, torch.Tensor]:
    tensors = {f"model/{k}": v for k, v in state["model"].items()}
    for pid, per_param in state["optimizer"]["state"].items():
        for name, value in per_param.items():
            tensors[f"optimizer/{pid}/{name}"] = torch.as_tensor(value)
    for prefix, rng in [("rng", state.get("rng") or {})] + [
        (f"rng_ranks/{r}", s) for r, s in enumerate(state.get("rng_ranks") or [])
    ]:
        tensors[f"{prefix}/cpu"] = rng["cpu"]
        for i, gpu in enumerate(rng.get("cuda") or []):
            tensors[f"{prefix}/cuda/{i}"] = gpu
    # clones: tied parameters (the filter's shared Sin frequency) may not share storage in a safetensors file
    return {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}


def pack_checkpoint(state: dict, folder: str | Path, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """Write a checkpoint's state (as ``torch.load`` gives it) into ``folder``; returns the files written. The shards
    go first and ``state.json`` last, so a reader never sees a shard list that is not complete (``write_sharded``)."""
    folder = Path(folder)
    shards = split_by_size(_flatten(state), max_shard_bytes)
    names = [f"shard-{i + 1:05d}.safetensors" for i in range(len(shards))]
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["optimizer"]["param_groups"]
    ]
    meta = {
        "format": FORMAT,
        "step": state["step"],
        "tokens_seen": state["tokens_seen"],
        "wall_time": state["wall_time"],
        "config": state.get("config"),
        "param_groups": groups,
        "shards": names,
    }
    write_sharded(
        folder,
        dict(zip(names, shards, strict=True)),
        folder / "state.json",
        json.dumps(meta, indent=1) + "\n",
        stale=lambda p: p.name.startswith("shard-") and p.suffix == ".safetensors",  # of an earlier, larger pack
    )
    return [folder / n for n in names] + [folder / "state.json"]


def unpack_checkpoint(folder: str | Path) -> dict:
    """The state ``pack_checkpoint`` wrote, in the form ``torch.load(checkpoint.pt)`` gives."""
    folder = Path(folder)
    meta = json.loads((folder / "state.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}/state.json: unknown checkpoint format {meta.get('format')!r}")
    tensors: dict[str, torch.Tensor] = {}
    for name in meta["shards"]:
        tensors.update(load_file(str(folder / name)))
    model = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, pid, name = key.split("/", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    state = {
        "model": model,
        "optimizer": {"state": dict(sorted(opt_state.items())), "param_groups": groups},
        "step": meta["step"],
        "tokens_seen": meta["tokens_seen"],
        "wall_time": meta["wall_time"],
        "rng": _rng(tensors, "rng"),
        "config": meta.get("config"),
    }
    ranks = sum(k.startswith("rng_ranks/") and k.endswith("/cpu") for k in tensors)
    if ranks:
        state["rng_ranks"] = [_rng(tensors, f"rng_ranks/{r}") for r in range(ranks)]
    return state


def _rng(tensors: dict[str, torch.Tensor], prefix: str) -> dict:
    cuda = [tensors[f"{prefix}/cuda/{i}"] for i in range(sum(k.startswith(f"{prefix}/cuda/") for k in tensors))]
    return {"cpu": tensors[f"{prefix}/cpu"], **({"cuda": cuda} if cuda else {})}
