"""Resident memory of one long-lived process fine-tuning run after run, with and without trimming the heap.

A benchmark worker runs dozens of fine-tuning runs one after another. One such process was OOM-killed at 7.6 GB
RSS, far above what one 1k-context run holds: batches of many different lengths leave glibc's heap holed, and it
keeps every freed page resident. Since then the fine-tuning loop and the data path's batches call
``utils.memory.trim_if_grown``. This runs the same fine-tuning runs (the bundled model, a task of many lengths, one
learning rate, each run another seed and subsample, so other batch shapes) in fresh processes at once, one
thread each, side by side under the same conditions, one per ``--variants``: ``keep`` as shipped since 2026-12-07
(freed memory kept between steps, ``reuse_freed_memory``, the heap still trimmed when grown), ``trim`` (freed memory
handed back: the loop before then) and ``no-trim`` (neither: the loop before the trim). A variant may end in
``:N``, oneDNN's primitive caches at N primitives each for that process (``keep:1024``: torch's own bound, as
before 2026-12-07; without it, the 64 that fine-tuning sets, ``utils.memory.bound_onednn_caches``). It
prints RSS after each run, the peak (of the process so far, and of each run alone), seconds and the trims so far.

    python benchmarks/memory_growth.py --variants trim no-trim --out benchmarks/results/memory_growth.json
    python benchmarks/memory_growth.py --variants trim no-trim --interval 10 \
        --out benchmarks/results/memory_growth_interval10.json
    python benchmarks/memory_growth.py --variants keep trim --out benchmarks/results/memory_growth_keep.json
    python benchmarks/memory_growth.py --task gb_human_ocr_ensembl --runs 3 --variants keep keep:1024 \
        --out benchmarks/results/memory_growth_onednn_cache.json

Nothing else should run beside them (``--one-at-a-time`` runs them one after the other).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("keep", "trim", "no-trim")


def parse_variant(text: str) -> str:
    loop, _, capacity = text.partition(":")
    if loop not in VARIANTS or (capacity and not capacity.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: one of {', '.join(VARIANTS)}, optionally with :N")
    return text


def one_process(args) -> dict:
    import os

    loop, _, capacity = args.variant.partition(":")
    if capacity:  # before torch's first oneDNN call
        from hyenadna.utils.memory import onednn_cache_settings

        os.environ.update(onednn_cache_settings(capacity))
    import torch

    from hyenadna.benchmark.runner import BenchmarkConfig, run_finetune
    from hyenadna.benchmark.tasks import load_task
    from hyenadna.utils import memory

    torch.set_num_threads(args.threads)
    if loop != "keep":  # the loop as it was before it kept freed memory
        import functools

        from hyenadna.finetune import HyenaDNAFineTuningModel

        HyenaDNAFineTuningModel.train = functools.partialmethod(HyenaDNAFineTuningModel.train, keep_freed_memory=False)
    if loop == "no-trim":
        memory.HEAP_SLACK_MB = float("inf")
    elif args.interval is not None:
        memory.TRIM_INTERVAL_S = args.interval
    trims, release = [0], memory.release_memory

    def counted(collect: bool = True, inside_reuse: bool = False) -> None:
        trims[0] += 1
        release(collect, inside_reuse)

    memory.release_memory = counted  # what trim_if_grown calls
    task = load_task(Path(args.tasks_dir) / args.task)
    cfg = BenchmarkConfig.quick(tasks_dir=args.tasks_dir, out_dir="", epochs=args.epochs, finetune_lrs=[1e-4])
    rows = []
    for run in range(args.runs):
        sub = task.subsample(args.max_train, args.max_test, seed=run)
        run_peak = PeakOfRun()
        t0 = time.perf_counter()
        run_finetune(sub, run, cfg, pretrained=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(
            {
                "run": run,
                "seconds": round(time.perf_counter() - t0, 1),
                "rss_mb": round(memory.resident_mb()),
                "peak_mb": round(peak),
                "run_peak_mb": run_peak.read(),
                "trims_so_far": trims[0],
            }
        )
        print(args.variant, json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"variant": args.variant, "runs": rows}


class PeakOfRun:
    """The peak resident memory since this was made, where Linux can reset the peak (``VmHWM``, by writing 5 to
    ``/proc/self/clear_refs``); None elsewhere."""

    def __init__(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.resettable = False

    def read(self) -> int | None:
        if not self.resettable:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks-dir", default="../shared/benchmarks")
    ap.add_argument("--task", default="gb_human_ensembl_regulatory", help="a task of many sequence lengths")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--max-train", type=int, default=1000)
    ap.add_argument("--max-test", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--interval", type=float, help="the trimming process's TRIM_INTERVAL_S (default: the shipped one)")
    ap.add_argument("--one-at-a-time", action="store_true", help="run the two processes one after the other")
    ap.add_argument("--variants", nargs="+", type=parse_variant, default=["keep", "trim"])
    ap.add_argument("--variant", type=parse_variant, help=argparse.SUPPRESS)  # the child processes
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(one_process(args)))
        return
    results = {"task": args.task, "max_train": args.max_train, "epochs": args.epochs, "threads": args.threads}
    results["side_by_side"] = not args.one_at_a_time
    from hyenadna.utils import memory

    results["trim_interval_s"] = memory.TRIM_INTERVAL_S if args.interval is None else args.interval
    results["heap_slack_mb"] = memory.HEAP_SLACK_MB
    children = {}
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--tasks-dir", args.tasks_dir, "--task", args.task, "--variant", variant]
        if args.interval is not None:
            cmd += ["--interval", str(args.interval)]
        for flag in ("runs", "max_train", "max_test", "epochs", "threads"):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        children[variant] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        if args.one_at_a_time:
            children[variant].wait()
    for variant, child in children.items():
        stdout, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"the {variant} process failed ({child.returncode})")
        results[variant] = json.loads(stdout.strip().splitlines()[-1])["runs"]
    for variant in args.variants:
        rows = results[variant]
        print(
            f"{variant:8s} RSS after each run (MB): {[r['rss_mb'] for r in rows]}, peak {rows[-1]['peak_mb']} MB "
            f"(each run's: {[r['run_peak_mb'] for r in rows]}), "
            f"seconds {sum(r['seconds'] for r in rows):.0f}, trims {rows[-1]['trims_so_far']}"
        )
    print(json.dumps(results))
    if args.out:
        from hyenadna.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
