"""What the overlap of ``score``'s windows costs in NLL: sequences longer than the context, scored at several overlaps.

A sequence longer than the model's context is scored in windows, each re-reading ``overlap`` tokens of the one before
as left context. With overlap 1 the bases at the start of each window are predicted from almost nothing; with half the
context every base sees at least half of it (``score --track`` has always used that). Here: the 32 N-free held-out
chr20 windows of 8,192 bases that the long-context pages score, with the bundled 1k model (context 1,026), NLL per
base and seconds at each overlap (one process, overlaps in turn, nothing else running for the timings).

    .venv/bin/python benchmarks/score_overlap.py --out benchmarks/results/score_overlap.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_context_eval import held_out_windows  # the long-context pages' held-out windows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--length", type=int, default=8192)
    ap.add_argument("--overlaps", type=int, nargs="+", default=[1, 128, 256, 513, 768])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from hyenadna import HyenaDNA, HyenaDNAConfig
    from hyenadna.utils.io import atomic_write_text

    model = HyenaDNA(HyenaDNAConfig(progress=False))
    (windows,) = held_out_windows((args.count, args.length))
    seqs = {f"w{i}": model.tokenizer.decode(w) for i, w in enumerate(windows)}
    assert all(len(s) == args.length for s in seqs.values())
    rows = []
    for overlap in args.overlaps:
        t = time.perf_counter()
        table = model.score(seqs, overlap=overlap)
        seconds = time.perf_counter() - t
        nll = -table["log_likelihood"] / table["n_scored"]
        rows.append(
            {"overlap": overlap, "nll_per_base": float(nll.mean()), "per_sequence": nll.tolist(), "seconds": seconds}
        )
        print(f"overlap {overlap:4}: NLL {nll.mean():.5f} nats/base ({seconds:.1f} s)")
    half = (
        next(r for r in rows if r["overlap"] == model.context_length // 2)
        if model.context_length // 2 in args.overlaps
        else None
    )
    if half is not None:
        for r in rows:
            diff = np.array(r["per_sequence"]) - np.array(half["per_sequence"])
            r["minus_half_context"] = {"mean": float(diff.mean()), "sd": float(diff.std(ddof=1))}
    result = {
        "model": "bundled",
        "context": model.context_length,
        "count": args.count,
        "length": args.length,
        "rows": rows,
    }
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
