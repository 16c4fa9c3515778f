"""Peak memory and time of ``hyenadna embed`` on sequences of many lengths, with oneDNN's primitive caches at torch's
bound (1,024 primitives each) and at the 64 that every command sets (``utils.memory.bound_onednn_caches``).

Every new matmul shape builds a primitive of about 0.5 MB that both caches keep; inference on batches of many
lengths builds one per shape, like fine-tuning. Two inputs, written to a temporary folder:

- ``many``: 3,000 sequences of uniformly random lengths 100-1,024 bases (seed 0): nearly every batch a new shape, so
  the caches mostly fill and rarely hit;
- ``cycle``: 200 lengths (100, 105, ..., 1,095 bases) in groups of 8 equal ones (one batch each), cycled 4 times
  (6,400 sequences): the worst case for a small cache, as from the second cycle on every shape hits in 1,024 and
  misses in 64.

Each run is a fresh ``hyenadna embed`` process (the bundled model, default batch size, ``--threads``); the
variants alternate order round by round, and a round's ratio is 64 over 1,024 on the same input. Peak RSS comes
from ``wait4``'s rusage of that process alone. Nothing else should run beside it.

    python benchmarks/inference_cache_bound.py --rounds 3 --out benchmarks/results/inference_cache_bound.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CAPACITIES = (1024, 64)


def write_inputs(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    bases = np.array(list("ACGT"))

    def fasta(path: Path, lengths) -> Path:
        with open(path, "w") as f:
            for i, n in enumerate(lengths):
                f.write(f">s{i}\n{''.join(rng.choice(bases, int(n)))}\n")
        return path

    many = rng.integers(100, 1025, size=3000)
    cycle = np.tile(np.repeat(np.arange(100, 1100, 5), 8), 4)
    return {"many": fasta(folder / "many.fa", many), "cycle": fasta(folder / "cycle.fa", cycle)}


def run_embed(fasta: Path, capacity: int, threads: int, folder: Path) -> dict:
    from hyenadna.utils.memory import ONEDNN_CACHE_VARIABLES, onednn_cache_settings

    env = {k: v for k, v in os.environ.items() if k not in (*ONEDNN_CACHE_VARIABLES, "DNNL_PRIMITIVE_CACHE_CAPACITY")}
    env.update(onednn_cache_settings(capacity), HYENADNA_AUTOTUNE="0")
    out = folder / f"{fasta.stem}_{capacity}.npz"
    cmd = [sys.executable, "-m", "hyenadna", "embed", str(fasta), "-o", str(out), "--threads", str(threads)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr[-2000:]}")
    return {"capacity": capacity, "seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--inputs", nargs="+", default=["many", "cycle"], choices=["many", "cycle"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = write_inputs(folder)
        result = {"threads": args.threads, "rounds": args.rounds, "inputs": {}}
        for name in args.inputs:
            rounds = []
            for r in range(args.rounds):
                order = CAPACITIES if r % 2 == 0 else CAPACITIES[::-1]
                runs = {c: run_embed(inputs[name], c, args.threads, folder) for c in order}
                same = np.array_equal(*(np.load(folder / f"{name}_{c}.npz")["embeddings"] for c in CAPACITIES))
                rounds.append(
                    {
                        "runs": [runs[c] for c in order],
                        "time_ratio": round(runs[64]["seconds"] / runs[1024]["seconds"], 4),
                        "peak_ratio": round(runs[64]["peak_rss_mb"] / runs[1024]["peak_rss_mb"], 4),
                        "same_embeddings": bool(same),
                    }
                )
                print(name, r, json.dumps(rounds[-1]), flush=True)
            result["inputs"][name] = {
                "rounds": rounds,
                "median_time_ratio": statistics.median(x["time_ratio"] for x in rounds),
                "median_peak_ratio": statistics.median(x["peak_ratio"] for x in rounds),
            }
            print(name, json.dumps({k: v for k, v in result["inputs"][name].items() if k != "rounds"}), flush=True)
    if args.out:
        tmp_out = args.out.with_suffix(".tmp")
        tmp_out.write_text(json.dumps(result, indent=1) + "\n")
        tmp_out.replace(args.out)


if __name__ == "__main__":
    main()
