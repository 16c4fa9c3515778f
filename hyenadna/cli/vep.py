"""``hyenadna vep``: variant effects from likelihood ratios, or from a fine-tuned model's prediction."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli.common import (
    ROW_FORMATS,
    Progress,
    add_command,
    add_model_args,
    count_records,
    int_at_least,
    load_classifier,
    row_format,
    sdk_config,
    write_blocks,
)


def cmd_vep(args: argparse.Namespace) -> int:
    import warnings

    from hyenadna.cli.distributed import Sharding
    from hyenadna.vep import classifier_variant_blocks, classifier_vep_columns, score_variant_blocks, vep_columns

    row_format(args.output, args.out_format)  # a refused extension before any work
    shard = Sharding(args.output, "vep")
    if args.classifier is None:
        if args.target is not None or args.regions is not None:
            raise ValueError("--target and --regions are for a fine-tuned model's prediction: give --classifier too")
        from hyenadna.sdk import HyenaDNA

        model = HyenaDNA(sdk_config(args, device=shard.device(args.device), progress=False))
        print(f"model: {model.source}", file=sys.stderr)
        columns = vep_columns(args.both_strands)
        window = args.window or 1024
        blocks = score_variant_blocks(
            model.model,
            model.tokenizer,
            args.vcf,
            args.genome,
            window,
            args.batch_size,
            args.both_strands,
            shard=(shard.rank, shard.world),
        )
    else:
        ft = load_classifier(args, device=shard.device(args.device))
        columns = classifier_vep_columns(ft.head_type == "classification", args.regions is not None)
        blocks = classifier_variant_blocks(
            ft,
            args.vcf,
            args.genome,
            args.window,
            args.target,
            args.both_strands,
            args.regions,
            shard=(shard.rank, shard.world),
        )
    # with --regions a row is an (allele, region) pair, and most alleles of a large VCF lie in no region
    total = None if args.regions else (lambda: count_records(args))
    unit = "rows" if total is None else "alleles"
    progress = Progress(unit, total=total, enabled=None if shard.is_main else False, share=shard.world)
    counts: dict[str, int] = {}

    def counted(blocks):
        for k, rows in blocks:
            for row in rows:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
            progress.update(len(rows))
            yield k, rows

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        n = write_blocks(shard, counted(blocks), args.output, args.out_format, columns=columns)
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
        help="bases in each of the equal-length ref and alt windows around the variant (default 1024; at most what "
        "the model reads at once, its l_max; with --classifier, the length of the sequences that model was trained on)",
    )
    p.add_argument(
        "--both-strands",
        action="store_true",
        help="average the LLR with that of the reverse-complement windows (with --classifier: the model's outputs on "
        "both strands, as predict --rc-average)",
    )
    p.add_argument(
        "--classifier",
        help="a folder written by `hyenadna fine-tune`: score each allele by how it moves that model's prediction "
        "for the window around it (log-odds of --target, its probability and the predicted class; a regressor's "
        "value) instead of the language model's LLR",
    )
    p.add_argument(
        "--regions",
        help="with --classifier: a BED file (strand in column 6) of the windows the model was trained to read, e.g. "
        "promoter windows on their gene's strand; each allele is scored on every region holding it (one row per "
        "allele and region), and an allele wholly inside no region gets one row with status outside_regions",
    )
    p.add_argument(
        "--target",
        type=int_at_least(0),
        help="with --classifier: the class (or regression output) index whose log-odds are compared (default: the "
        "class predicted for each reference window; output 0)",
    )
    p.add_argument("-o", "--output", help="output .tsv or .jsonl (default: JSON Lines on stdout)")
    p.add_argument(
        "--out-format",
        choices=["auto", *ROW_FORMATS],
        default="auto",
        help="auto (default): by the output's extension (.tsv/.txt, .csv, .json; else JSON Lines)",
    )
    add_model_args(p)
