"""``hyenadna convert``: checkpoint layout conversion."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli.common import add_command, add_runtime_args


def cmd_convert(args: argparse.Namespace) -> int:
    from hyenadna.models.hyena_dna import convert_checkpoint

    out = convert_checkpoint(
        args.source, args.destination, layout=args.layout, allow_unsafe_pickle=args.allow_unsafe_pickle
    )
    print(f"wrote {args.layout} layout to {out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "convert", "convert a checkpoint between layouts (hyenadna, hf, lightning)", cmd_convert)
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--layout", choices=["hyenadna", "hf", "lightning"], default="hyenadna")
    p.add_argument("--allow-unsafe-pickle", action="store_true")
    add_runtime_args(p, device=False, batch_size=None)
