"""The projections of a Hyena block through torch's default CPU matmul (MKL) and through oneDNN (ops/linear.py).

For each projection shape of a 1,024-token chunk, times ``linear_ref`` (F.linear) and ``linear`` (oneDNN), interleaved
in one process, and prints GFLOP/s and the ratio; fc1 is timed with its tanh-GELU (fused in oneDNN). Writes
benchmarks/results/matmul.json.

    .venv/bin/python benchmarks/matmul.py             # fp32 and bf16, D 128 and 256: ~1 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import hyenadna.ops.linear as linear_module
from hyenadna.ops.linear import linear, linear_ref, onednn_available
from hyenadna.utils.io import atomic_path


def shapes(d: int) -> dict[str, tuple[int, int, bool]]:
    """name: (in_features, out_features, gelu) of each projection of a block of width d (d_inner = 4d)."""
    return {
        "in_proj": (d, 3 * d, False),
        "out_proj": (d, d, False),
        "fc1+gelu": (d, 4 * d, True),
        "fc2": (4 * d, d, False),
    }


def seconds(fn, x, w, b, gelu: bool, repeats: int) -> float:
    fn(x, w, b, gelu)
    t = time.perf_counter()
    for _ in range(repeats):
        fn(x, w, b, gelu)
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--widths", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "matmul.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    linear_module.SMALL_INFERENCE_ROWS = 0  # oneDNN at every size, however few the tokens
    rows = []
    with torch.no_grad():
        for dtype in (torch.float32, torch.bfloat16):
            for d in args.widths:
                for name, (n_in, n_out, gelu) in shapes(d).items():
                    x = torch.randn(args.tokens, n_in).to(dtype)
                    w, b = (torch.randn(n_out, n_in) / n_in**0.5).to(dtype), torch.randn(n_out).to(dtype)
                    times = {"mkl": [], "onednn": []}
                    for _ in range(args.rounds):
                        times["mkl"].append(seconds(linear_ref, x, w, b, gelu, args.repeats))
                        times["onednn"].append(seconds(linear, x, w, b, gelu, args.repeats))
                    flop = 2 * args.tokens * n_in * n_out
                    row = {"dtype": str(dtype).removeprefix("torch."), "d_model": d, "projection": name}
                    for impl, ts in times.items():
                        row[f"{impl}_gflops"] = flop / statistics.median(ts) / 1e9
                    row["speedup"] = row["onednn_gflops"] / row["mkl_gflops"]
                    rows.append(row)
                    print(
                        f"{row['dtype']:9s} D={d:4d} {name:9s} MKL {row['mkl_gflops']:6.0f} GFLOP/s  oneDNN "
                        f"{row['onednn_gflops']:6.0f} GFLOP/s  {row['speedup']:.2f}x",
                        flush=True,
                    )
    meta = {k: v for k, v in vars(args).items() if k != "out"}
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps({**meta, "onednn_available": onednn_available(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
