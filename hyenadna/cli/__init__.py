"""The ``hyenadna`` command line, one module per command. Exit codes: 0 success, 1 bad input or runtime failure,
2 usage error."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli import (
    benchmark,
    convert,
    download,
    embed,
    evaluate,
    export,
    finetune,
    generate,
    info,
    predict,
    pretrain,
    score,
    vep,
)
from hyenadna.cli.common import EXAMPLES

COMMANDS = (
    embed,
    score,
    vep,
    generate,
    pretrain,
    benchmark,
    finetune,
    predict,
    evaluate,
    info,
    export,
    download,
    convert,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyenadna",
        description="HyenaDNA DNA language model tools.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        if getattr(args, "precision", "fp32") == "bf16":
            import torch

            from hyenadna.utils.device import resolve_device

            with torch.autocast(resolve_device(args.device).type, dtype=torch.bfloat16):
                return args.func(args)
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError, OSError) as e:
        print(f"hyenadna {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hyenadna {args.command}: interrupted", file=sys.stderr)
        return 130
