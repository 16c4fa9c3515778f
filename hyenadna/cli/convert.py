"""``hyenadna convert``: checkpoint layout conversion."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from hyenadna.cli.common import add_command, add_runtime_args


def cmd_convert(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from hyenadna.models.hyena_dna import convert_checkpoint

    dest = Path(args.destination)
    source = Path(args.source).resolve()
    if dest.exists() and (source == dest.resolve() or dest.resolve() in source.parents):
        # --overwrite swaps the destination folder out, and the source with it
        raise ValueError(f"{dest} holds the source {args.source}: write the converted checkpoint to another folder")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not args.overwrite:
        raise FileExistsError(f"{dest} exists and is not empty; pass --overwrite to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # written beside the destination, then swapped in, so a failure leaves the old folder as it was
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        convert_checkpoint(
            args.source,
            tmp,
            layout=args.layout,
            allow_unsafe_pickle=args.allow_unsafe_pickle,
            max_shard_bytes=args.max_shard_size,
        )
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
            os.replace(dest, old / "x")
            os.replace(tmp, dest)
            shutil.rmtree(old)  # the folder the user asked us to replace
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    print(f"wrote {args.layout} layout to {dest}", file=sys.stderr)
    return 0


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """Bytes from "9.5MB", "10MiB" or "500000" (as Hugging Face's max_shard_size reads them)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).upper() if m else None
    if unit not in _UNITS or float(m.group(1)) * _UNITS[unit] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a size such as 9.5MB, 10MiB or 500000 (bytes)")
    return int(float(m.group(1)) * _UNITS[unit])


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "convert", "convert a checkpoint between layouts (hyenadna, hf, lightning)", cmd_convert)
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--layout", choices=["hyenadna", "hf", "lightning"], default="hyenadna")
    p.add_argument("--allow-unsafe-pickle", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace a destination folder that is not empty")
    p.add_argument(
        "--max-shard-size",
        type=parse_size,
        metavar="SIZE",
        help="split safetensors weights larger than SIZE (e.g. 9.5MB) into shards with a "
        "model.safetensors.index.json, as Hugging Face does; e.g. to keep every file under a repository's limit",
    )
    add_runtime_args(p, device=False, batch_size=None)
