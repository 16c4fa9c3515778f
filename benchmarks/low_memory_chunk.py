"""Token-chunk size of the long-sequence (low-memory) inference path.

Times one layer of a published configuration at one length for each chunk size, interleaved rounds in one process,
and writes benchmarks/results/low_memory_chunk.json. ``ExecutionOptions.low_memory_chunk`` (hyenadna/ops/execution.py)
is set from this measurement.

    .venv/bin/python benchmarks/low_memory_chunk.py                      # large-1m, 1 layer, 1M tokens: ~5 min
    .venv/bin/python benchmarks/low_memory_chunk.py --length 32768 --config hyenadna-small-32k-seqlen
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from hyenadna import PUBLISHED_CONFIGS
from hyenadna.models.hyena_dna import HyenaDNAModel
from hyenadna.utils.io import atomic_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="hyenadna-large-1m-seqlen", choices=sorted(PUBLISHED_CONFIGS))
    ap.add_argument("--length", type=int, default=1_000_000)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1024, 2048, 4096, 16384])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="under bf16 autocast")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "low_memory_chunk.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = dataclasses.replace(PUBLISHED_CONFIGS[args.config], n_layer=args.layers)
    model = HyenaDNAModel(config).eval()
    ids = torch.randint(7, 11, (args.length,))
    times: dict[int, list[float]] = {c: [] for c in args.chunks}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        for r in range(args.rounds):
            for chunk in args.chunks:
                t = time.perf_counter()
                model.execution = dataclasses.replace(model.execution, low_memory_chunk=chunk)
                model._forward_low_memory(ids, keep=[model.config.n_layer])
                times[chunk].append(time.perf_counter() - t)
                print(f"round {r + 1}/{args.rounds} chunk {chunk:6d}: {times[chunk][-1]:.2f} s", flush=True)
    rows = [{"chunk": c, "seconds": v, "median_s": statistics.median(v)} for c, v in times.items()]
    best = min(r["median_s"] for r in rows)
    for row in rows:
        print(f"chunk {row['chunk']:6d}: median {row['median_s']:.2f} s ({row['median_s'] / best:.2f}x the fastest)")
    meta = {k: v for k, v in vars(args).items() if k != "out"}
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
