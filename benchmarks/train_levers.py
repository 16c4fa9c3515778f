"""The long convolution's hand-written backward against autograd, paired in one process (README, "The training
step"): ``fftconv`` forward + backward (``_FFTConv``) against autograd through the same rfft / product / irfft ops,
on the training path's (channels, batch, length) memory order at tiny-1k batch 8 and at 16k tokens.

    .venv/bin/python benchmarks/train_levers.py      # ~20 s on 2 cores -> benchmarks/results/train_levers.json

Rounds alternate the order of the two candidates; the figure kept is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from hyenadna.ops.autotune import time_candidates
from hyenadna.ops.fftconv import fft_length, fftconv
from hyenadna.utils.io import atomic_write_text


def autograd_fftconv(u, k, bias):
    seqlen = u.shape[-1]
    n = fft_length(2 * seqlen - 1)
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :seqlen]
    return torch.addcmul(y, u, bias[:, None])


def paired(a, b, rounds: int) -> dict:
    """Seconds of a() and b() per round, alternating which goes first (autotune's ``time_candidates``), and the
    median ratio a / b."""
    seconds = time_candidates({"a": a, "b": b}, repeats=rounds)
    ta, tb = seconds["a"], seconds["b"]
    ratio = statistics.median(x / y for x, y in zip(ta, tb, strict=True))
    return {"a_seconds": ta, "b_seconds": tb, "ratio_a_over_b": ratio}


def conv_case(batch: int, channels: int, length: int, rounds: int) -> dict:
    g = torch.Generator().manual_seed(0)
    u0 = torch.randn(channels, batch, length, generator=g).transpose(0, 1)  # the training path's memory order
    k = torch.randn(channels, length, generator=g, requires_grad=True)
    bias = torch.randn(channels, generator=g, requires_grad=True)
    grad = torch.randn(batch, channels, length, generator=g)

    def run(fn):
        def go():
            fn(u0.detach().requires_grad_(), k, bias).backward(grad)

        return go

    res = paired(run(autograd_fftconv), run(fftconv), rounds)
    return {"case": f"fftconv B={batch} D={channels} L={length}", **res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_levers.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [conv_case(8, 128, 1024, args.rounds), conv_case(1, 128, 16384, args.rounds)]
    for r in rows:
        print(f"{r['case']:60s} {r['ratio_a_over_b']:.2f}x")
    atomic_write_text(Path(args.out), json.dumps({"threads": args.threads, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
