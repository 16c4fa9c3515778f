"""``hyenadna evaluate``: held-out NLL beside a Markov baseline."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hyenadna.cli.common import add_command, add_model_args, figure_path, int_at_least, sdk_config
from hyenadna.data.regions import HELD_OUT


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Held-out NLL of a model, beside the order-k Markov baseline fitted to the training DNA, on the same windows."""
    from hyenadna.data.genome import Genome
    from hyenadna.sdk import build_model
    from hyenadna.training.pretrain import (
        PretrainConfig,
        evaluate_nll,
        markov_baseline,
        nll_report,
        training_intervals,
    )
    from hyenadna.training.windows import fixed_windows
    from hyenadna.utils.io import atomic_write_text

    if args.output and Path(args.output).suffix.lower() not in ("", ".json", ".txt"):  # before minutes of work
        raise ValueError(f"{args.output}: the report is one JSON document: name it .json")
    model, source = build_model(sdk_config(args))
    if args.by_position:
        for cut in args.cut_context:
            if cut > model.config.l_max:
                raise ValueError(
                    f"--cut-context {cut} is longer than the model reads (l_max {model.config.l_max}); give at most "
                    f"{model.config.l_max - model.config.l_max % 2}"
                )
    genome = Genome.from_fasta(args.fasta)
    cfg = PretrainConfig(
        fasta=args.fasta,
        out_dir="",
        include=args.include,
        exclude=args.exclude,
        eval_region=args.eval_region,
        seq_len=args.seq_len,
    )
    # no way round it here: a baseline fitted on the DNA it is scored on would be no baseline
    hint = "leave it out of --include (or --exclude it): the Markov baseline is fitted on these regions"
    train, evaluation = training_intervals(cfg, genome, overlap_hint=hint)
    windows = fixed_windows(genome, evaluation, args.windows, args.seq_len + 1)
    t0 = time.perf_counter()
    report = {
        "model": source,
        "eval_region": [str(x) for x in evaluation],
        "windows": args.windows,
        "window_length": args.seq_len,
        "model_nll": nll_report(evaluate_nll(model, windows, args.batch_size)),
    }
    report["model_seconds"] = time.perf_counter() - t0
    if args.by_position:
        report["by_position"] = _by_position(model, windows, args, source)
    if args.markov:
        log = (lambda m: print(m, file=sys.stderr)) if not args.quiet else (lambda m: None)
        report["markov"] = markov_baseline(genome, train, windows, log=log, cache=not args.refit_markov)
        report["markov"].pop("grid")
    text = json.dumps(report, indent=1)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def _by_position(model, windows, args: argparse.Namespace, source: str) -> dict:
    """NLL by position band with the model's whole context and with it cut to each --cut-context length: with
    several, a sweep that shows how far back the model reads (where the bands stop improving as the cut grows)."""
    from hyenadna.training.context import band_means, plot_position_curves, position_nll

    curves, out = {}, {}
    runs = [(f"context cut to {c:,}", c) for c in sorted(set(args.cut_context))]
    if model.config.l_max >= args.seq_len:
        runs.insert(0, (f"whole window (up to {args.seq_len:,})", None))
    else:
        out["note"] = f"l_max {model.config.l_max} < {args.seq_len}: only the cut context is scored"
    for label, context in runs:
        t0 = time.perf_counter()
        curve = position_nll(model, windows, args.batch_size, context=context)
        curves[label] = curve
        out["full" if context is None else f"context_{context}"] = {
            "bands": band_means(curve),
            "mean": float(curve.mean()),
            "seconds": time.perf_counter() - t0,
        }
    if args.plot:
        plot_position_curves(curves, args.plot, f"{source}: {len(windows)} held-out windows of {args.seq_len:,}")
        out["plot"] = args.plot
    return out


def _even_length(text: str) -> int:
    value = int_at_least(2)(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"{value} is odd: a cut context is read in halves, give an even number")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "evaluate", "held-out NLL (nats/base, bits/base, perplexity) beside a Markov baseline", cmd_evaluate
    )
    p.add_argument("--fasta", nargs="+", required=True)
    p.add_argument("--include", nargs="*", default=[], help="training regions the Markov baseline is fitted on")
    p.add_argument("--exclude", nargs="*", default=[])
    p.add_argument("--eval-region", nargs="+", default=[str(HELD_OUT)])
    p.add_argument("--windows", type=int_at_least(1), default=256, help="number of N-free held-out windows")
    p.add_argument("--seq-len", type=int_at_least(2), default=1024, help="predicted bases per window")
    p.add_argument("--no-markov", dest="markov", action="store_false")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--refit-markov", action="store_true", help="refit the Markov baseline instead of using its cached report"
    )
    p.add_argument(
        "--by-position",
        action="store_true",
        help="also the NLL by position band (0-1k, 1k-4k, 4k-16k, 16k+), with the whole window as context and "
        "with the context cut to each --cut-context length: does the model use its long context?",
    )
    p.add_argument(
        "--cut-context",
        type=_even_length,
        nargs="+",
        default=[1024],
        metavar="N",
        help="with --by-position: even token counts to cut the context to (default 1024); several, such as "
        "64 256 1024 4096, sweep it",
    )
    p.add_argument(
        "--plot", type=figure_path, help="with --by-position: NLL against position as a figure (.png, .pdf or .svg)"
    )
    p.add_argument("-o", "--output", help="also write the JSON report here")
    add_model_args(p)
