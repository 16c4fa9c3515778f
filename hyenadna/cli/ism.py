"""``hyenadna ism``: in-silico mutagenesis of a region, as a table or arrays and a heatmap: under the language model
(LLR), or under a fine-tuned model (``--classifier``: the change of its prediction)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hyenadna.cli.common import (
    Progress,
    add_command,
    add_model_args,
    figure_path,
    int_at_least,
    load_classifier,
    row_format,
    sdk_config,
    write_rows,
)

ISM_EXAMPLES = """examples:
  hyenadna ism --genome ../shared/data/genome/GRCh37_chr20.fa.gz --region chr20:1,000,000-1,000,200 \\
      -o ism.tsv --plot ism.png
  hyenadna ism --genome seqs.fa --record my_enhancer -o ism.npz --plot ism.png --both-strands --deletions
  hyenadna ism --classifier promoter_model --genome seqs.fa --record my_promoter -o ism.tsv --plot ism.png
  hyenadna ism --classifier promoter_model --genome hg19.fa.gz --bed promoters.bed -o promoter_maps --modisco
"""


def region_of(args: argparse.Namespace):
    """The region to mutate (--region chrom:start-end, 0-based, half-open, or --record NAME, the whole record), its
    name, and the genome where opening it was needed to find the record's length (else None)."""
    from hyenadna.data.readers import GenomeFasta
    from hyenadna.data.regions import Interval, canonical_chrom, parse_region

    if bool(args.region) == bool(args.record):
        raise ValueError("give --region chrom:start-end or --record NAME (one of them)")
    if args.record:
        genome = GenomeFasta(args.genome, {args.record})  # read once: a gzip genome is decompressed to open it
        size = genome.sizes.get(canonical_chrom(args.record))
        if size is None:
            raise ValueError(f"--record {args.record}: no such record in {args.genome}")
        return Interval(canonical_chrom(args.record), 0, size), args.record, genome
    region = parse_region(args.region)
    if isinstance(region, str):
        raise ValueError(f"--region {args.region}: give start and end (chrom:start-end); ISM of a chromosome is huge")
    return region, args.region.split(":")[0], None


def cmd_ism(args: argparse.Namespace) -> int:
    from hyenadna.ism import plot_ism

    if args.bed:
        return _ism_of_regions(args)
    if args.modisco or args.plots:
        raise ValueError("--modisco and --plots are for the maps of many regions: give them with --bed")
    region, name, genome = region_of(args)
    per_base = "windows" if args.classifier is None else "sequences"
    if len(region) > args.max_length:
        raise ValueError(
            f"the region has {len(region):,} bases; ISM scores {3 + args.deletions} {per_base} per base, so regions "
            f"above --max-length {args.max_length:,} are refused"
        )
    # an NPZ matrix, or rows by the extension as score and vep write them (.csv and .json were refused)
    suffix = Path(args.output).suffix.lower() if args.output else ""
    fmt = "npz" if suffix == ".npz" else row_format(args.output, also="or .npz for the matrix")
    if genome is None:
        from hyenadna.data.readers import GenomeFasta

        genome = GenomeFasta(args.genome, {region.chrom})
    progress = Progress("positions", total=len(region))
    if args.classifier is None:
        _language_model_only(args)
        from hyenadna.sdk import HyenaDNA

        model = HyenaDNA(sdk_config(args, progress=False))
        print(f"model: {model.source}", file=sys.stderr)
        result = model.mutagenesis(
            genome,
            region,
            window=args.window or 1024,
            both_strands=args.both_strands,
            deletions=args.deletions,
            progress=lambda k: progress.update(k, k),
            chrom_name=name,
        )
    else:
        result = _classifier_ism(args, genome, region, name, progress)
    if fmt == "npz":
        result.save_npz(args.output)
    else:
        write_rows(result.rows(), args.output, fmt, ["chrom", "pos", "ref", "alt"])
    if args.plot:
        plot_ism(result, args.plot)
    extra = f"; heatmap -> {args.plot}" if args.plot else ""
    progress.finish("mutated", args.output, extra)
    return 0


def _ism_of_regions(args: argparse.Namespace) -> int:
    """ISM of every region of a BED file: one NPZ per region in the --output folder (a region already there, from
    the same command, is read back, so a killed run resumes), a regions.tsv index and, with --modisco, TF-MoDISco's
    inputs. A fine-tuned model reads each region on its BED strand."""
    import json
    import re

    from hyenadna.cli.distributed import Sharding
    from hyenadna.data.readers import GenomeFasta, bed_problem, read_bed_records
    from hyenadna.data.regions import Interval, canonical_chrom
    from hyenadna.ism import IsmResult, classifier_mutagenesis, in_silico_mutagenesis, plot_ism, save_modisco
    from hyenadna.utils.io import atomic_write_text

    if args.region or args.record or args.plot or args.strand != "+":
        raise ValueError(
            "with --bed the regions (and, for --classifier, their strands) come from the BED file: leave out "
            "--region, --record, --strand and --plot (--plots draws each region's map beside its NPZ)"
        )
    if not args.output or Path(args.output).suffix:
        raise ValueError("with --bed, -o names a folder: one NPZ per region goes there")
    records = read_bed_records(args.bed)
    if not records:
        raise ValueError(f"{args.bed}: no regions")
    genome = GenomeFasta(args.genome, {r.chrom for r in records})
    for r in records:
        problem = bed_problem(r, genome, longest=args.max_length, limit="of --max-length")
        if problem:
            raise ValueError(f"{args.bed}:{r.line}: {problem}")
    lengths = sorted({r.end - r.start for r in records})
    if args.modisco and len(lengths) > 1:
        raise ValueError(f"--modisco needs regions of one length; {args.bed} has {lengths[0]:,} to {lengths[-1]:,}")
    out = Path(args.output)
    settings = {k: getattr(args, k) for k in ("classifier", "model", "random_init", "window", "target", "method")}
    settings |= {k: getattr(args, k) for k in ("both_strands", "deletions", "precision", "dtype")}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()}
    saved = out / "ism.json"
    if saved.exists() and json.loads(saved.read_text()) != settings:
        raise ValueError(f"{out} holds maps made with other settings ({saved}): give another folder")
    # across processes (torchrun): region k is rank k % world's; every map lands in the shared folder
    shard = Sharding(str(out), "ism --bed")
    device = shard.device(args.device)
    if args.classifier is not None:
        ft = _classifier(args, device)
    else:
        _language_model_only(args)
        from hyenadna.sdk import HyenaDNA

        model = HyenaDNA(sdk_config(args, device=device, progress=False))
        print(f"model: {model.source}", file=sys.stderr)
    if shard.is_main:
        atomic_write_text(saved, json.dumps(settings, indent=1))
    names: set[str] = set()
    paths = []
    for r in records:
        # no hidden files (a leading dot), and no two names that a case-insensitive file system (macOS) would merge
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", r.name).strip("_.") or "region"
        stem = stem if stem.lower() not in names else f"{stem}.line{r.line}"
        names.add(stem.lower())
        paths.append(out / f"{stem}.npz")
    mine = [k for k in range(len(records)) if shard.mine(k)]
    total = sum(records[k].end - records[k].start for k in mine)
    progress = Progress("positions", total=total, enabled=None if shard.is_main else False)
    for k in mine:
        r, path = records[k], paths[k]
        shard.wrote(path)
        strand = "-" if r.strand == "-" else "+"
        if path.exists():  # made by an earlier run of the same command
            progress.update(r.end - r.start)
            if args.plots and not path.with_suffix(".png").exists():
                plot_ism(IsmResult.load(path), path.with_suffix(".png"), title=r.name)
            continue
        if args.classifier is not None:
            sequence = genome.fetch(r.chrom, r.start, r.end)
            result = classifier_mutagenesis(
                ft,
                sequence,
                args.target,
                args.both_strands,
                r.chrom,
                r.start,
                args.method,
                strand,
                progress=lambda n: progress.update(n, n),
            )
        else:
            result = in_silico_mutagenesis(
                model.model,
                model.tokenizer,
                genome,
                Interval(canonical_chrom(r.chrom), r.start, r.end),
                r.chrom,
                args.window or 1024,
                args.batch_size,
                args.both_strands,
                args.deletions,
                progress=lambda n: progress.update(n, n),
            )
        result.save_npz(path)
        if args.plots:
            plot_ism(result, path.with_suffix(".png"), title=r.name)
    extra = f"; {len(records):,} maps{' with heatmaps' if args.plots else ''} and regions.tsv"
    if args.modisco:
        n = records[0].end - records[0].start
        run = f"modisco motifs -s {out / 'modisco' / 'ohe.npz'} -a {out / 'modisco' / 'attr.npz'} -n 2000 -w {n}"
        extra += f", and TF-MoDISco's inputs ({run})"

    def index(_blocks=None) -> None:
        rows = [
            {"name": r.name, "chrom": r.chrom, "start": r.start, "end": r.end, "strand": r.strand, "file": p.name}
            for r, p in zip(records, paths, strict=True)
        ]
        write_rows(rows, str(out / "regions.tsv"), "tsv", list(rows[0]))
        if args.modisco:  # its arrays hold every map at once; without it, one map at a time is in memory
            strands = [r.strand if args.classifier is not None else "+" for r in records]
            save_modisco([IsmResult.load(p) for p in paths], out / "modisco", strands)

    if shard.active:
        shard.finish(index)
    else:
        index()
    progress.finish("mutated", str(out), extra + shard.note)
    return 0


def _language_model_only(args: argparse.Namespace) -> None:
    if args.target is not None or args.method != "exact" or args.strand != "+":
        raise ValueError(
            "--target, --method and --strand are for a fine-tuned model's prediction: give --classifier too"
        )


def _classifier(args: argparse.Namespace, device: str | None = None):
    if args.deletions or args.window is not None:
        raise ValueError(
            "--deletions and --window are the language model's: with --classifier the model reads the region itself"
        )
    return load_classifier(args, device)


def _classifier_ism(args: argparse.Namespace, genome, region, name: str, progress: Progress):
    """ISM of a fine-tuned model's prediction for the region's sequence (``ism.classifier_mutagenesis``)."""
    from hyenadna.ism import classifier_mutagenesis

    ft = _classifier(args)
    sequence = genome.fetch(region.chrom, region.start, region.end)
    return classifier_mutagenesis(
        ft,
        sequence,
        target=args.target,
        rc_average=args.both_strands,
        method=args.method,
        strand=args.strand,
        chrom=name,
        start=region.start,
        progress=lambda k: progress.update(k, k),
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "ism",
        "in-silico mutagenesis: the LLR of every base change in a region (or the change of a fine-tuned model's "
        "prediction), and a heatmap",
        cmd_ism,
    )
    p.epilog = ISM_EXAMPLES
    p.add_argument("--genome", required=True, help="genome FASTA (or any FASTA holding the record)")
    p.add_argument("--region", help="chrom:start-end, 0-based half-open (commas allowed)")
    p.add_argument("--record", help="a whole FASTA record instead of --region")
    p.add_argument(
        "--bed",
        help="map every region of a BED file (strand in column 6: the strand a --classifier reads it on) into the "
        "folder -o names: one NPZ per region, regions.tsv, and a killed run resumes",
    )
    p.add_argument("--plots", action="store_true", help="with --bed: a PNG heatmap beside each region's NPZ")
    p.add_argument(
        "--modisco",
        action="store_true",
        help="with --bed: also write TF-MoDISco's inputs (modisco/ohe.npz, modisco/attr.npz: one-hot sequences and "
        "hypothetical contributions, N x 4 x length, on the strand the model read); the regions must share a length",
    )
    p.add_argument(
        "--window",
        type=int_at_least(2),
        help="bases of context around each change, as vep's --window (default 1,024; at most the model's l_max)",
    )
    p.add_argument(
        "--classifier",
        help="a folder written by `hyenadna fine-tune`: score each change by how it moves that model's prediction "
        "for the region (log-odds of --target; a regressor's value) instead of the language model's LLR",
    )
    p.add_argument(
        "--target",
        type=int_at_least(0),
        help="with --classifier: the class (or regression output) index to explain (default: the class predicted "
        "for the region; output 0)",
    )
    p.add_argument(
        "--method",
        choices=["exact", "gradient"],
        default="exact",
        help="with --classifier: exact (the model run on every mutated sequence, 3 x length passes) or gradient (a "
        "first-order estimate from one forward and backward pass, for long sequences; it ranks changes only roughly "
        "like exact, README 'Which bases drive a prediction')",
    )
    p.add_argument(
        "--strand",
        choices=["+", "-"],
        default="+",
        help="with --classifier: the strand the model reads the region on ('-': its reverse complement, e.g. a "
        "minus-strand gene for a model trained on gene-strand windows); positions and alleles stay on the genome's + "
        "strand",
    )
    p.add_argument(
        "--both-strands",
        action="store_true",
        help="average with the reverse-complement windows (with --classifier: its predictions on both strands)",
    )
    p.add_argument("--deletions", action="store_true", help="also score deleting each base")
    p.add_argument("--max-length", type=int_at_least(1), default=5000, help="largest region accepted (default 5,000)")
    p.add_argument("-o", "--output", help=".tsv, .jsonl (one row per change) or .npz (position x base arrays)")
    p.add_argument(
        "--plot",
        type=figure_path,
        help="a figure (.png, .pdf or .svg): position x base heatmap above the per-position importance track",
    )
    add_model_args(p)
