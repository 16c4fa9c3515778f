"""FFT length choice: the smallest 2,3,5,7-smooth length >= 2L-1 (ours) vs the next power of two.

Times one rfft + irfft pair over a channel group at each length, interleaved, median of 5, and writes
benchmarks/results/fft_lengths.json. ``fft_length`` keeps the smooth length unless a power of two measures faster.

    .venv/bin/python benchmarks/fft_lengths.py      # ~1 min
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from hyenadna.ops.fftconv import fft_length

CASES = [(1024, 128), (8192, 64), (32768, 16), (32770, 16), (100000, 16), (160000, 16), (500000, 9), (1000000, 9)]


def main(threads: int = 2, rounds: int = 5) -> None:
    torch.set_num_threads(threads)
    rows = []
    for seqlen, channels in CASES:
        lengths = {"smooth": fft_length(2 * seqlen - 1), "pow2": 1 << (2 * seqlen - 2).bit_length()}
        times = {k: [] for k in lengths}
        for _ in range(rounds):
            for name, n in lengths.items():
                x = torch.randn(channels, n)
                t = time.perf_counter()
                torch.fft.irfft(torch.fft.rfft(x), n=n)
                times[name].append(time.perf_counter() - t)
        row = {"L": seqlen, "channels": channels, **{f"n_{k}": v for k, v in lengths.items()}}
        row.update({f"ms_{k}": 1e3 * statistics.median(v) for k, v in times.items()})
        rows.append(row)
        print(
            f"L={seqlen:8d}: smooth n={row['n_smooth']:8d} {row['ms_smooth']:8.2f} ms, "
            f"power of two n={row['n_pow2']:8d} {row['ms_pow2']:8.2f} ms, ratio {row['ms_pow2'] / row['ms_smooth']:.2f}"
        )
    out = Path(__file__).parent / "results" / "fft_lengths.json"
    out.write_text(json.dumps({"threads": threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
