"""The ``hyenadna`` command line, one module per command. Exit codes: 0 success, 1 bad input or runtime failure,
2 usage error."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings

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


class Terminated(BaseException):
    """SIGTERM (timeout, kill, cluster schedulers), raised where the program is, so files are cleaned up as on
    Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    with warnings.catch_warnings():
        # warnings as one clean line each, not Python's "file.py:95: UserWarning: ..." form
        warnings.showwarning = lambda message, *_, **__: print(
            f"hyenadna {args.command}: warning: {message}", file=sys.stderr
        )
        try:
            return _run(args)
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "precision", "fp32") == "bf16":
            import torch

            from hyenadna.utils.device import resolve_device

            with torch.autocast(resolve_device(args.device).type, dtype=torch.bfloat16):
                return args.func(args)
        return args.func(args)
    except BrokenPipeError:  # `hyenadna ... | head`: the reader left; nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, FileNotFoundError, FileExistsError, TypeError, OSError) as e:
        print(f"hyenadna {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hyenadna {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"hyenadna {args.command}: terminated", file=sys.stderr)
        return 143
