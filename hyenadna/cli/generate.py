"""``hyenadna generate``: sampling continuations of a prompt, or of each sequence of a file or of BED intervals."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hyenadna.cli.common import (
    Progress,
    add_command,
    add_input_args,
    add_model_args,
    float_above,
    int_at_least,
    located,
    probability,
    read_records,
    sdk_config,
    seed,
)

# output extensions of other formats (rows, arrays): refused rather than filled with FASTA
NOT_FASTA = (".json", ".jsonl", ".ndjson", ".tsv", ".csv", ".parquet", ".npz", ".npy", ".h5", ".bed", ".vcf")


def cmd_generate(args: argparse.Namespace) -> int:
    from hyenadna.data.readers import SequenceRecord
    from hyenadna.sdk import HyenaDNA

    if (args.prompt is not None) == bool(args.input or args.bed):
        raise ValueError("give --prompt, or prompts as INPUT (or --bed with --genome): one of them")
    if args.output:  # before any work: FASTA under a table's or an array's name would read as a broken file
        suffixes = [s.lower() for s in Path(args.output).suffixes if s.lower() != ".gz"]
        if suffixes and suffixes[-1] in NOT_FASTA:
            raise ValueError(f"{args.output}: samples are written as FASTA: name it .fa or .fasta (.gz to compress)")
    prompts = [SequenceRecord("", args.prompt)] if args.prompt is not None else list(read_records(args))
    model = HyenaDNA(sdk_config(args, progress=False))
    print(f"model: {model.source}", file=sys.stderr)
    with located(prompts):  # every prompt is checked, by its own name, before the first is sampled
        for i, record in enumerate(prompts):
            model.tokenizer.encode_bases(record.sequence, i, record.name or "the prompt")
    progress = Progress("bases", total=args.length * args.num_samples * len(prompts))
    text = []
    for record in prompts:
        samples = model.generate(
            record.sequence,
            args.length,
            args.num_samples,
            args.temperature,
            args.top_k,
            args.seed,
            progress.update,
            args.top_p,
        )
        prompt = record.sequence.strip()
        name = f"{record.name}_" if record.name else ""  # the --prompt's samples keep their plain names
        text += [
            f">{name}sample{i + 1} prompt_length={len(prompt)} seed={args.seed}\n{prompt}{s}\n"
            for i, s in enumerate(samples)
        ]
    if args.output:
        from hyenadna.utils.io import atomic_text_file

        with atomic_text_file(args.output) as f:  # gzip for .gz
            f.write("".join(text))
    else:
        sys.stdout.write("".join(text))
    samples = args.num_samples * len(prompts)
    progress.finish("generated", args.output, f" in {samples} sample{'s' if samples > 1 else ''}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "generate",
        "sample DNA continuations of --prompt, or of each sequence of INPUT (or of --bed intervals of --genome)",
        cmd_generate,
    )
    p.add_argument("--prompt", help="the sequence to continue (or give prompts as INPUT or --bed)")
    add_input_args(p, chunked=False)
    p.add_argument("--length", type=int_at_least(0), default=100, help="bases to generate (default 100)")
    p.add_argument("--num-samples", type=int_at_least(1), default=1, help="samples per prompt (default 1)")
    p.add_argument("--temperature", type=float_above(0), default=1.0, help="softmax temperature (default 1.0)")
    p.add_argument("--top-k", type=int_at_least(1), help="sample among the k likeliest bases (default: all)")
    p.add_argument(
        "--top-p",
        type=probability,
        help="sample among the fewest likeliest bases whose probabilities sum to at least p (default: all)",
    )
    p.add_argument("--seed", type=seed, default=0, help="default 0 (every prompt samples from it)")
    p.add_argument("-o", "--output", help="output FASTA (default: stdout)")
    add_model_args(p)
