"""``hyenadna score``: per-sequence log-likelihood."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli.common import (
    ROW_FORMATS,
    Progress,
    add_command,
    add_input_args,
    add_model_args,
    count_records,
    in_chunks,
    int_at_least,
    located,
    read_records,
    row_format,
    sdk_config,
    step_size,
    write_blocks,
)


def cmd_track(args: argparse.Namespace) -> int:
    """score --track: a per-base bedGraph over --region (or whole chromosomes) of --genome."""
    from hyenadna.data.readers import GenomeFasta
    from hyenadna.data.regions import Interval, canonical_chrom, parse_region
    from hyenadna.sdk import HyenaDNA
    from hyenadna.tracks import check_bedgraph_path, likelihood_track, write_bedgraph

    check_bedgraph_path(args.track)  # before any work
    if not args.genome or not args.region:
        raise ValueError("--track needs --genome and --region (chrom:start-end, or a chromosome name for all of it)")
    if args.input or args.bed:
        raise ValueError("--track scores --region of --genome; give no INPUT or --bed with it")
    region = parse_region(args.region)
    name = args.region.split(":")[0]  # the chromosome as the user spells it (chr20 or 20), for the browser
    if isinstance(region, str):
        size = GenomeFasta(args.genome, {region}).sizes.get(canonical_chrom(region))
        if size is None:
            raise ValueError(f"--region {args.region}: no such chromosome in {args.genome}")
        region = Interval(region, 0, size)
    model = HyenaDNA(sdk_config(args, framing=args.framing, progress=False))
    print(f"model: {model.source}", file=sys.stderr)
    progress = Progress("bases", total=len(region))
    blocks = likelihood_track(
        model.model,
        model.tokenizer,
        args.genome,
        region,
        overlap=args.overlap if args.overlap > 1 else None,
        both_strands=args.both_strands,
        batch_size=args.batch_size,
        progress=lambda k: progress.update(k, k),
    )
    lines = write_bedgraph(args.track, name, blocks)
    progress.finish("scored", args.track, f"; {lines:,} bedGraph lines")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    if args.track:
        return cmd_track(args)
    if args.region or args.both_strands:
        raise ValueError(
            f"{'--region' if args.region else '--both-strands'} goes with --track OUT.bedgraph (a per-base track)"
        )
    row_format(args.output, args.out_format)  # a refused extension before any work
    from hyenadna.cli.distributed import Sharding
    from hyenadna.sdk import HyenaDNA

    shard = Sharding(args.output, "score")
    model = HyenaDNA(sdk_config(args, device=shard.device(args.device), framing=args.framing, progress=False))
    print(f"model: {model.source}", file=sys.stderr)
    progress = Progress(
        "sequences", total=lambda: count_records(args), enabled=None if shard.is_main else False, share=shard.world
    )

    def blocks():
        """(block index, rows) for this process's blocks of the input."""
        n = 0
        for k, chunk in enumerate(in_chunks(read_records(args, progress.skip, warn=shard.is_main), step_size(args))):
            if shard.mine(k):
                with located(chunk, n):
                    data = model.process_data([r.sequence for r in chunk], names=[r.name for r in chunk], start_index=n)
                table = model.score(data, overlap=args.overlap, on_batch=progress.add_bases)  # per-window ticks
                # null (JSON) or empty (TSV) where no base was scored
                rows = [{key: None if x != x else x for key, x in row.items()} for row in table.to_dict("records")]
                progress.update(len(data))
                yield k, rows
            n += len(chunk)

    write_blocks(shard, blocks(), args.output, args.out_format)
    progress.finish("scored", args.output, shard.note)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "score", "per-sequence log-likelihood, NLL per base and perplexity", cmd_score)
    add_input_args(p)
    p.add_argument("-o", "--output", help="output .jsonl or .tsv (default: JSON Lines on stdout)")
    p.add_argument(
        "--out-format",
        choices=["auto", *ROW_FORMATS],
        default="auto",
        help="auto (default): by the output's extension (.tsv/.txt, .csv, .json; else JSON Lines)",
    )
    p.add_argument("--framing", choices=["none", "sep", "cls_sep"], default="none")
    p.add_argument(
        "--track",
        metavar="BEDGRAPH",
        help="instead of per-sequence scores: log P(base | left context) for every base of --region of --genome, as a "
        "bedGraph (0-based, half-open; N bases left out; gzip for .gz); streams a whole chromosome in bounded memory",
    )
    p.add_argument("--region", help="with --track: chrom:start-end (0-based, half-open) or a chromosome name")
    p.add_argument("--both-strands", action="store_true", help="with --track: average with the reverse strand's log P")
    p.add_argument(
        "--overlap",
        type=int_at_least(1),
        default=1,
        help="sequences longer than the context: tokens of left context each window re-reads (at least 1, so every "
        "base but the first is scored; default 1; with --track, half the context)",
    )
    add_model_args(p)
