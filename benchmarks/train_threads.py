"""Data parallelism inside one process, measured and not kept: the training step with the batch split in two halves,
each run forward and backward by its own Python thread at one torch thread, against the whole batch at two torch
threads (the step ``speed.py`` times). Torch releases the GIL inside its ops, and one thread per half avoids the
per-op cost of splitting small ops across two threads; the halves' gradients are summed in a fixed order, so the
step stays deterministic.

    .venv/bin/python benchmarks/train_threads.py --rounds 3   # ~2 min; fresh process per measurement, alternating

Prints each measurement and the median of the per-round ratios (threads / plain tokens per second), and the time of
one half alone at one thread, the split's ideal step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_check import median_seconds
from benchmarks.speed import WORKLOADS


def measure(mode: str, steps: int = 8) -> dict:
    import torch

    from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel
    from hyenadna.training.optim import build_optimizer
    from hyenadna.utils.memory import reuse_freed_memory

    name, seqlen, batch, _, _ = WORKLOADS["train_tiny1k"]
    torch.manual_seed(0)
    lm = HyenaDNALMHeadModel(PUBLISHED_CONFIGS[name]).train()
    opt = build_optimizer(lm, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(7, 11, (batch, seqlen + 1))
    params = [p for p in lm.parameters() if p.requires_grad]

    def half_grads(part, out: list, k: int) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast is per thread
            loss = lm(part[:, :-1], labels=part[:, 1:]).loss
        out[k] = torch.autograd.grad(loss / 2, params)

    def step() -> None:
        if mode == "plain":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = lm(ids[:, :-1], labels=ids[:, 1:]).loss
            opt.zero_grad()
            loss.backward()
        else:
            halves, out = ids.chunk(2), [None, None]
            if mode == "threads":
                other = threading.Thread(target=half_grads, args=(halves[1], out, 1))
                other.start()
                half_grads(halves[0], out, 0)
                other.join()
            else:  # "half": one half alone
                half_grads(halves[0], out, 0)
                return
            for p, a, b in zip(params, out[0], out[1], strict=True):
                p.grad = a + b
        opt.step()

    torch.set_num_threads(2 if mode == "plain" else 1)
    with reuse_freed_memory():
        step()  # a first warm-up; median_seconds runs a second before its timed steps
        sec = median_seconds(step, steps, sync=lambda: None)
    return {"mode": mode, "seconds": sec, "tokens_per_s": batch * seqlen / sec}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    ratios = []
    for r in range(args.rounds):
        row = {}
        for mode in ("plain", "threads", "half") if r % 2 == 0 else ("half", "threads", "plain"):
            cmd = [sys.executable, __file__, "--child", mode]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"round {r} {mode:8s} {1e3 * row[mode]['seconds']:.1f} ms", flush=True)
        ratios.append(row["threads"]["tokens_per_s"] / row["plain"]["tokens_per_s"])
    print(f"threads / plain: median {statistics.median(ratios):.2f}x (rounds {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
