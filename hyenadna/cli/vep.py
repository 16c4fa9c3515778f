"""``hyenadna vep``: variant effects from likelihood ratios."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli.common import add_command, add_model_args, int_at_least, sdk_config, write_rows


def cmd_vep(args: argparse.Namespace) -> int:
    import warnings

    from hyenadna.sdk import HyenaDNA
    from hyenadna.vep import score_variants, vep_columns

    model = HyenaDNA(sdk_config(args, progress=False))
    print(f"model: {model.source}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
        rows = score_variants(
            model.model, model.tokenizer, args.vcf, args.genome, args.window, args.batch_size, args.both_strands
        )
        n = write_rows(rows, args.output, args.out_format, columns=vep_columns(args.both_strands))
    if n == 0:
        print(f"warning: {args.vcf} has no variant records; wrote a header only", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "vep", "variant effects: ref/alt log-likelihood ratio and embedding distance per VCF allele", cmd_vep
    )
    p.add_argument("vcf", help="VCF (plain or gzip)")
    p.add_argument("--genome", required=True, help="genome FASTA (chromosome names may differ by a 'chr' prefix)")
    p.add_argument(
        "--window",
        type=int_at_least(2),
        default=1024,
        help="bases in each of the equal-length ref and alt windows around the variant (default 1024)",
    )
    p.add_argument(
        "--both-strands", action="store_true", help="average the LLR with that of the reverse-complement windows"
    )
    p.add_argument("-o", "--output", help="output .tsv or .jsonl (default: JSON Lines on stdout)")
    p.add_argument("--out-format", choices=["auto", "jsonl", "tsv"], default="auto")
    add_model_args(p)
