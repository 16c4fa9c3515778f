"""``hyenadna benchmark``: the downstream benchmark."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli.common import add_model_args, float_above, int_at_least, model_name_or_path, seed
from hyenadna.training.patience import PATIENCE_FROM

BENCHMARK_EXAMPLES = """examples:
  hyenadna benchmark --suite nt --model hyenadna-tiny-1k-seqlen-d256 --device cuda --out nt   # the model card's table
  hyenadna benchmark --suite nt --tasks H3 promoter_all --modes kmer probe --out nt_quick
  hyenadna benchmark --tasks-dir ../shared/benchmarks --quick --out docs/benchmarks/quick --workers 2
  hyenadna benchmark --tasks-dir ../shared/benchmarks --quick --out docs/benchmarks/quick --report-only  # so far
  hyenadna benchmark --tasks ../shared/benchmarks/promoter_all --modes kmer probe --out one_task
  hyenadna benchmark --tasks-dir ../shared/benchmarks --tasks promoter_all --modes kmer probe --seeds 0 1 2
  hyenadna benchmark --tasks-dir ~/nt_downstream_tasks --out nt_results      # NT tasks: sequence,label files
"""


def cmd_benchmark(args: argparse.Namespace) -> int:
    from hyenadna.benchmark.runner import BenchmarkConfig, run_benchmark

    if not (args.suite or args.tasks_dir or args.tasks):
        raise ValueError("name the tasks: --suite nt, --tasks-dir DIR [--tasks NAME...], or --tasks FOLDER...")
    if args.suite and args.tasks_dir:
        raise ValueError("--suite and --tasks-dir are alternatives: give one")
    name, path = model_name_or_path(args.model)
    kw = {
        "tasks_dir": args.tasks_dir,
        "out_dir": args.out,
        "tasks": args.tasks,
        "suite": args.suite,
        "revision": args.suite_revision,
        "model_revision": args.revision,
        "hub_layout": args.hub_layout,
        "local_files_only": args.offline,
        "modes": args.modes,
        "model_name": name,
        "model_path": path,
        "device": args.device,
        "batch_size": args.batch_size,
    }
    if args.seeds is not None:
        kw["seeds"] = args.seeds
    for key in (
        "max_train",
        "max_test",
        "epochs",
        "scratch_epochs",
        "patience",
        "scratch_patience",
        "scratch_patience_from",
        "finetune_lrs",
        "scratch_lrs",
        "head_init",
    ):
        if getattr(args, key) is not None:
            kw[key] = getattr(args, key)
    cfg = BenchmarkConfig.quick(**kw) if args.quick else BenchmarkConfig(**kw)
    summary = run_benchmark(
        cfg, log=lambda m: print(m, file=sys.stderr, flush=True), report_only=args.report_only, workers=args.workers
    )
    print(
        f"wrote {args.out}/results.md, .json and .png ({summary['wall_seconds_this_call']:.0f} s this call)",
        file=sys.stderr,
    )
    return 0


# the runner's modes (hyenadna.benchmark.runner.MODES), not imported from there: building the CLI's parser must not
# import the benchmark's dependencies (scikit-learn), which every command would then pay for at start-up
MODES = ("kmer", "probe", "finetune", "scratch")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="probe / fine-tune / scratch / k-mer benchmark over task folders",
        epilog=BENCHMARK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--suite", choices=["nt"], help="a benchmark suite fetched from the Hub by name (nt: the 18 NT tasks)"
    )
    p.add_argument("--suite-revision", help="Hub revision of the suite's dataset (default: main)")
    p.add_argument("--tasks-dir", help="folder of task folders (task.json + train/test)")
    p.add_argument("--tasks", nargs="*", help="task names (default: all), or task folder paths")
    p.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="columns to run: kmer (k-mer counts + logistic regression), probe (frozen embeddings), finetune "
        "(pretrained weights), scratch (the same model, not pretrained) (default: all four)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=seed,
        help="seeds, one run each; the report gives mean ± sd (default 0 1 2)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="1,000/1,000 train/test rows, seeds 0-2, up to 10 epochs (20 not pretrained), patience 3",
    )
    p.add_argument(
        "--max-train",
        type=int_at_least(1),
        help="cap the train rows (stratified; the same rows for every seed; quick 1,000)",
    )
    p.add_argument(
        "--max-test",
        type=int_at_least(1),
        help="cap the test rows (stratified; the same rows for every seed; quick 1,000)",
    )
    p.add_argument("--epochs", type=int_at_least(1), help="fine-tuning epochs, at most (default 10, also quick)")
    p.add_argument("--scratch-epochs", type=int_at_least(1), help="epochs of the not-pretrained model (default 2x)")
    p.add_argument(
        "--patience",
        type=int_at_least(1),
        help="epochs without validation gain before a fine-tuning run stops (default 3, also quick), counted from the "
        "first epoch whose validation MCC beats chance; at least the epoch count turns early stopping off (the best "
        "epoch is still kept)",
    )
    p.add_argument(
        "--scratch-patience", type=int_at_least(1), help="the same for the not-pretrained model (default: --patience)"
    )
    p.add_argument(
        "--scratch-patience-from",
        choices=PATIENCE_FROM,
        help="when the not-pretrained model's epochs start to count against its patience: once its validation MCC "
        "beats chance (default), or once its training loss is 5%% below the first epoch's (a lucky score on a small "
        "validation split cannot start it)",
    )
    p.add_argument(
        "--finetune-lrs",
        nargs="+",
        type=float_above(0),
        help="pretrained model: lrs tried, best validation MCC kept (default 1e-4 3e-4 1e-3; quick 1e-4 1e-3)",
    )
    p.add_argument(
        "--scratch-lrs",
        nargs="+",
        type=float_above(0),
        help="the same for the not-pretrained model (default 1e-4 3e-4 1e-3; quick 3e-4 1e-3)",
    )
    p.add_argument("--head-init", choices=["probe", "random"], help="fine-tuning head start (default: probe, LP-FT)")
    p.add_argument(
        "--out",
        required=True,
        help="results folder (resumable: finished runs are skipped, unfinished ones go on from their last epoch)",
    )
    p.add_argument(
        "--workers",
        type=int_at_least(1),
        default=1,
        help="runs in parallel processes, sharing --threads (on a CPU, 2-4 finish sooner than 1 process); with "
        "--device cuda or auto on a node with several GPUs, worker k runs on GPU k mod their count",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="write the report from the runs saved in --out so far and run nothing (cells with fewer seeds say n=)",
    )
    add_model_args(p)
    p.set_defaults(func=cmd_benchmark, batch_size=16)
