"""Does ``hyenadna benchmark --workers 2`` finish sooner than one process with both threads? One fine-tuning run
(300 promoter_all rows of 300 bases, one epoch at lr 1e-3, batch 16, then predicting the 300 rows) in fresh processes:
alone with 1 thread, alone with --threads threads, and --threads one-thread runs at once. Throughput is runs per
second of wall time; the cases are interleaved over --repeats rounds.

    .venv/bin/python benchmarks/benchmark_workers.py   # ~3 min -> benchmarks/results/benchmark_workers.json

Nothing else may run beside it: the point is how the cores are shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = """
import time, pandas as pd, torch
torch.set_num_threads({threads})
from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel
df = pd.read_csv({task!r}).head(330)
seqs, y = df.sequence.tolist(), df.label.to_numpy()
ft = HyenaDNAFineTuningModel(HyenaDNAConfig(device="cpu", batch_size=16, seed=0, progress=False), "classification", 2)
t0 = time.perf_counter()
ft.train(seqs[:300], y[:300], seqs[300:], y[300:], epochs=1, lr=1e-3, seed=0, progress=False)
ft.predict(seqs[:300])
print(time.perf_counter() - t0)
"""


def runs_at_once(n: int, threads: int, task: str) -> float:
    """Wall seconds for n fresh processes, started together, each doing the run with ``threads`` threads (the
    import and model load excluded: each process reports its own run time, and the slowest counts)."""
    code = RUN.format(threads=threads, task=task)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(n)]
    return max(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--task", default=str(REPO.parent / "shared/benchmarks/promoter_all/train.csv.gz"))
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/benchmark_workers.json"))
    args = ap.parse_args()
    cases = {
        "1 process, 1 thread": (1, 1),
        f"1 process, {args.threads} threads": (1, args.threads),
        f"{args.threads} processes, 1 thread each": (args.threads, 1),
    }
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (n, threads) in cases.items():
            seconds[name].append(runs_at_once(n, threads, args.task))
            print(f"{name}: {seconds[name][-1]:.1f} s", flush=True)
    result = {}
    for name, (n, _) in cases.items():
        median = statistics.median(seconds[name])
        result[name] = {"seconds": seconds[name], "runs_per_hour": 3600 * n / median}
    base = result[f"1 process, {args.threads} threads"]["runs_per_hour"]
    for r in result.values():
        r["throughput_vs_one_process_all_threads"] = r["runs_per_hour"] / base
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
