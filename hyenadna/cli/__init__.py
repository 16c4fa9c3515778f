"""The ``hyenadna`` command line, one module per command. Exit codes: 0 success, 1 bad input or runtime failure,
2 usage error."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import warnings

from hyenadna.cli import (
    autotune,
    benchmark,
    convert,
    download,
    embed,
    evaluate,
    export,
    finetune,
    generate,
    info,
    ism,
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
    ism,
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
    autotune,
)


class _Version(argparse.Action):
    """``--version``: what a bug report needs, found only when asked (torch's version costs an import lookup)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import platform
        from importlib.metadata import PackageNotFoundError, version

        from hyenadna import __version__

        try:
            torch = version("torch")
        except PackageNotFoundError:
            torch = "not installed"
        print(f"hyenadna {__version__} (torch {torch}, Python {platform.python_version()})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyenadna",
        description="HyenaDNA DNA language model tools.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="print the versions of hyenadna, torch and Python")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM (timeout, kill, cluster schedulers), raised where the program is, so files are cleaned up as on
    Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


MODEL_HINT = (
    "  --model takes a published name, a Hub repository (org/name) or a checkpoint file or folder; leave --model out "
    "to use the bundled model; --random-init runs an untrained model of a published shape"
)

# The library's messages name its Python parameters; on the command line the user typed flags.
_PYTHON_TO_FLAG = [
    (re.compile(r"\bpretrained=False\b"), "--random-init"),
    (re.compile(r"\blocal_files_only=True\b"), "--offline"),
    (re.compile(r"\blong_sequences '(\w+)' \(CLI: --long-sequences \w+\) or '(\w+)'"), r"--long-sequences \1 or \2"),
    (re.compile(r"\blong_sequences='?(\w+)'?"), r"--long-sequences \1"),
    (re.compile(r"\b(model_name|model_path)='?([^'\s,;)]+)'?"), r"--model \2"),
    (
        re.compile(
            r"\b(batch_size|device|revision|hub_layout|precision|dtype|pooling|framing|overlap|max_n_fraction)='?([^'\s,;)]+)'?"
        ),
        None,
    ),
    (re.compile(r"pass a local folder\b"), "pass a local folder with --model"),
    (re.compile(r"\bembed it in shorter pieces\b"), "embed it in shorter pieces (--bed intervals of --genome)"),
    (re.compile(r"fill arrays on disk \(allocate=, with numpy's open_memmap\)"), "write them to disk (-o OUT.npy)"),
]
# a validation set of its own is the library's; `fine-tune` splits the task's train rows by --validation-fraction,
# and `benchmark` by its protocol's fixed 10%
_VALIDATION_ADVICE = re.compile(
    r", or give a validation set of its own \(validation_data\) or a larger validation_fraction"
)


def for_the_command_line(message: str, command: str | None = None) -> str:
    """A library message with its Python spellings (``device='cuda'``) turned into the flags (``--device cuda``) of
    ``command``."""
    fix = ", or hold out more of them (a larger --validation-fraction)" if command == "fine-tune" else ""
    message = _VALIDATION_ADVICE.sub(fix, message)
    for pattern, replacement in _PYTHON_TO_FLAG:
        if replacement is None:
            message = pattern.sub(lambda m: f"--{m.group(1).replace('_', '-')} {m.group(2)}", message)
        else:
            message = pattern.sub(replacement, message)
    return message


def _avoid_busy_cores(command: str) -> None:
    """No --threads: torch's one thread per core, less the cores another process keeps busy (utils/threads.py).
    HYENADNA_AUTO_THREADS=0 (or OMP_NUM_THREADS) keeps torch's default."""
    import torch

    from hyenadna.utils.threads import idle_cores

    default = torch.get_num_threads()
    free = idle_cores()
    if free is not None and free < default:
        torch.set_num_threads(max(1, free))
        print(
            f"hyenadna {command}: {default - free} of {default} cores busy with other work; using "
            f"{max(1, free)} thread{'s' if free > 1 else ''} (set --threads to override)",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BaseException as e:  # a Ctrl-C before the command's own handler (held while torch imported), or wrapped
        if not _caused_by_ctrl_c(e):
            raise
        print("hyenadna: interrupted", file=sys.stderr)
        return 130


def _caused_by_ctrl_c(error: BaseException) -> bool:
    """A KeyboardInterrupt, or an exception it caused: Python 3.11 wraps one raised in a class body's ``__set_name__``
    in a RuntimeError (a Ctrl-C while torch._dynamo defined a dataclass came out as a traceback)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__
    return False


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # oneDNN reads its cache bounds at torch's first oneDNN call: commands over sequences of many lengths (embedding,
    # scoring, fine-tuning) otherwise keep up to 1,024 primitives a cache, which holed the heap (utils/memory.py)
    from hyenadna.utils.memory import bound_onednn_caches

    bound_onednn_caches()
    # every command needs torch and the model stack (which imports torch._dynamo); a Ctrl-C while they import was
    # held (_startup) and is raised here, before any work
    import torch

    import hyenadna.models  # noqa: F401
    from hyenadna import _startup

    _startup.resume()
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    elif (
        hasattr(args, "threads")
        and os.environ.get("OMP_NUM_THREADS") is None
        and os.environ.get("HYENADNA_AUTO_THREADS", "1") != "0"
    ):
        _avoid_busy_cores(args.command)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    with warnings.catch_warnings():
        # warnings as one clean line each, not Python's "file.py:95: UserWarning: ..." form
        warnings.showwarning = lambda message, *_, **__: print(
            f"hyenadna {args.command}: warning: {for_the_command_line(str(message), args.command)}", file=sys.stderr
        )
        try:
            return _run(args)
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)


def refuse_a_file_as_out_folder(args: argparse.Namespace) -> None:
    """--out (pretrain, fine-tune, benchmark) names a folder; a file there failed deep inside ("cannot write
    x.fa/training_state.pt: File exists")."""
    out = getattr(args, "out", None)
    if isinstance(out, str) and os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; --out names a folder for the run's files")


def refuse_output_over_input(args: argparse.Namespace) -> None:
    """``-o`` naming a file the command reads (``score x.fa -o x.fa``) would replace the input with the output: refused
    before any work, whichever argument names it."""
    outputs = [getattr(args, key, None) for key in ("output", "track")]
    for out in (o for o in outputs if isinstance(o, str) and os.path.exists(o)):
        for key, value in vars(args).items():
            if key in ("output", "track"):
                continue
            for path in value if isinstance(value, list) else [value]:
                if isinstance(path, str) and path != "-" and os.path.exists(path) and os.path.samefile(path, out):
                    flag = key.upper() if key in ("input", "vcf") else f"--{key.replace('_', '-')}"  # positionals
                    raise ValueError(f"{out} is the output and also read as {flag}; write the output elsewhere")


def _run(args: argparse.Namespace) -> int:
    try:
        from hyenadna.cli.distributed import refuse_unsplit, torchrun_threads_note

        refuse_unsplit(args)
        refuse_output_over_input(args)
        refuse_a_file_as_out_folder(args)
        note = torchrun_threads_note(getattr(args, "device", None)) if not getattr(args, "threads", 0) else None
        if note:
            print(f"hyenadna {args.command}: note: {note}", file=sys.stderr)
        if getattr(args, "precision", "fp32") != "fp32":
            from hyenadna.utils.device import resolve_device
            from hyenadna.utils.precision import autocast

            with autocast(resolve_device(args.device), args.precision):
                return args.func(args)
        return args.func(args)
    except BrokenPipeError:  # `hyenadna ... | head`: the reader left; nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, FileNotFoundError, FileExistsError, TypeError, OSError, MemoryError) as e:
        print(f"hyenadna {args.command}: error: {for_the_command_line(str(e), args.command)}", file=sys.stderr)
        from hyenadna.hub import WeightsNotFoundError

        if isinstance(e, WeightsNotFoundError) and e.repo_type == "model" and hasattr(args, "random_init"):
            print(MODEL_HINT, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hyenadna {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"hyenadna {args.command}: terminated", file=sys.stderr)
        return 143
