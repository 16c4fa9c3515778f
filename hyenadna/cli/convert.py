"""``hyenadna convert``: checkpoint layout conversion."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hyenadna.cli.common import add_command, add_runtime_args


def cmd_convert(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from hyenadna.models.hyena_dna import convert_checkpoint

    dest = Path(args.destination)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not args.overwrite:
        raise FileExistsError(f"{dest} exists and is not empty; pass --overwrite to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # written beside the destination, then swapped in, so a failure leaves the old folder as it was
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        convert_checkpoint(args.source, tmp, layout=args.layout, allow_unsafe_pickle=args.allow_unsafe_pickle)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "convert", "convert a checkpoint between layouts (hyenadna, hf, lightning)", cmd_convert)
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--layout", choices=["hyenadna", "hf", "lightning"], default="hyenadna")
    p.add_argument("--allow-unsafe-pickle", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace a destination folder that is not empty")
    add_runtime_args(p, device=False, batch_size=None)
