"""``hyenadna vep``: variant effects from likelihood ratios."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli.common import (
    Progress,
    add_command,
    add_model_args,
    count_records,
    int_at_least,
    sdk_config,
    write_blocks,
)


def cmd_vep(args: argparse.Namespace) -> int:
    import warnings

    from hyenadna.cli.distributed import Sharding
    from hyenadna.sdk import HyenaDNA
    from hyenadna.vep import score_variant_blocks, vep_columns

    shard = Sharding(args.output, "vep")
    model = HyenaDNA(sdk_config(args, device=shard.device(args.device), progress=False))
    print(f"model: {model.source}", file=sys.stderr)
    progress = Progress("alleles", total=lambda: count_records(args), enabled=None if shard.is_main else False)
    counts: dict[str, int] = {}

    def counted(blocks):
        for k, rows in blocks:
            for row in rows:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
            progress.update(len(rows))
            yield k, rows

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        blocks = score_variant_blocks(
            model.model,
            model.tokenizer,
            args.vcf,
            args.genome,
            args.window,
            args.batch_size,
            args.both_strands,
            shard=(shard.rank, shard.world),
        )
        n = write_blocks(shard, counted(blocks), args.output, args.out_format, columns=vep_columns(args.both_strands))
    if n == 0 and shard.is_main:
        print(f"warning: {args.vcf} has no variant records; wrote a header only", file=sys.stderr)
    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
    progress.finish("scored", args.output, (f"; {statuses}" if statuses else "") + shard.note)
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
