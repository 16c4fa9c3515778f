"""Short sequences on the CPU: per-sequence or batched inference? The per-sequence path runs each sequence's matmuls
alone, which pays from a few hundred tokens (activations stay in cache) but not for short reads, primers or the
few-base windows of a context sweep, where a call's overhead outweighs its work. Both run here in the same
micro-batches of about ``block_tokens`` tokens, the choice forced through ``ExecutionOptions.per_sequence_min_length``
(0: always per sequence; huge: always batched), on 8,192 tokens a forward.

    .venv/bin/python benchmarks/short_inference.py --out benchmarks/results/short_inference.json   # ~2 min

One process per model, the two paths alternating within each round (in reverse order every other round); the figure
is the median of the per-round time ratios, per-sequence over batched.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch

from hyenadna.hub import resolve_weights
from hyenadna.models.hyena_dna import load_model
from hyenadna.utils.io import atomic_write_text

ALWAYS = {"per_sequence": 0, "batched": 2**62}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["hyenadna-tiny-1k-d256-grch37", "hyenadna-16k-d256-l3-grch37"])
    p.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 96, 128, 256, 512, 1024])
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        model = load_model(resolve_weights(name)).eval()
        base = model.backbone.execution
        for length in args.lengths:
            ids = torch.randint(7, 11, (max(1, args.tokens // length), length))
            times: dict[str, list[float]] = {k: [] for k in ALWAYS}
            with torch.no_grad():
                for r in range(args.rounds + 1):  # round 0 warms up
                    for path in list(ALWAYS)[:: 1 if r % 2 else -1]:
                        model.backbone.execution = replace(base, per_sequence_min_length=ALWAYS[path])
                        t = time.perf_counter()
                        model(ids)
                        if r:
                            times[path].append(time.perf_counter() - t)
            ratios = [a / b for a, b in zip(times["per_sequence"], times["batched"], strict=True)]
            row = {
                "model": name,
                "length": length,
                "batch": ids.shape[0],
                "per_sequence_ms": statistics.median(times["per_sequence"]) * 1e3,
                "batched_ms": statistics.median(times["batched"]) * 1e3,
                "per_sequence_over_batched": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
            }
            rows.append(row)
            print(
                f"{name} L {length:5d} x {row['batch']:4d}: per-sequence {row['per_sequence_ms']:7.1f} ms, batched "
                f"{row['batched_ms']:7.1f} ms, ratio {row['per_sequence_over_batched']:.2f} "
                f"({min(ratios):.2f}-{max(ratios):.2f})",
                flush=True,
            )
        model.backbone.execution = base
    if args.out:
        atomic_write_text(args.out, json.dumps({**vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
