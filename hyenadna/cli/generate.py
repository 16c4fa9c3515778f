"""``hyenadna generate``: sampling continuations of a prompt."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli.common import (
    Progress,
    add_command,
    add_model_args,
    float_above,
    int_at_least,
    probability,
    sdk_config,
)


def cmd_generate(args: argparse.Namespace) -> int:
    from hyenadna.sdk import HyenaDNA

    model = HyenaDNA(sdk_config(args, progress=False))
    print(f"model: {model.source}", file=sys.stderr)
    progress = Progress("bases", total=args.length * args.num_samples)
    samples = model.generate(
        args.prompt, args.length, args.num_samples, args.temperature, args.top_k, args.seed, progress.update, args.top_p
    )
    text = "".join(
        f">sample{i + 1} prompt_length={len(args.prompt)} seed={args.seed}\n{args.prompt}{s}\n"
        for i, s in enumerate(samples)
    )
    if args.output:
        from hyenadna.utils.io import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    progress.finish("generated", args.output, f" in {args.num_samples} sample(s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "generate", "sample DNA continuations of a prompt", cmd_generate)
    p.add_argument("--prompt", required=True)
    p.add_argument("--length", type=int_at_least(0), default=100, help="bases to generate (default 100)")
    p.add_argument("--num-samples", type=int_at_least(1), default=1, help="default 1")
    p.add_argument("--temperature", type=float_above(0), default=1.0, help="softmax temperature (default 1.0)")
    p.add_argument("--top-k", type=int_at_least(1), help="sample among the k likeliest bases (default: all)")
    p.add_argument(
        "--top-p",
        type=probability,
        help="sample among the fewest likeliest bases whose probabilities sum to at least p (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("-o", "--output", help="output FASTA (default: stdout)")
    add_model_args(p)
