"""Is a training step faster as micro-batches? A batch-8 step at tiny-1k holds 8 MB activations (8 x 1,024 tokens x
256 fp32), four times a core's 2 MB L2; as 2 micro-batches of 4 or 4 of 2 with gradient accumulation (the same
gradient: no HyenaDNA layer mixes sequences), each tensor is 2-4x smaller but every op runs 2-4x as often.

    .venv/bin/python benchmarks/micro_batches.py --bf16 --out benchmarks/results/micro_batches.json   # ~1 minute

One process, the pretraining loop's optimizer and allocator setting, the splits interleaved round by round (4 steps
each, the first a warm-up); the figure is the median step time per split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from speed import WORKLOADS

from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel
from hyenadna.training.optim import build_optimizer
from hyenadna.utils.io import atomic_write_text
from hyenadna.utils.memory import reuse_freed_memory


def step(lm: HyenaDNALMHeadModel, opt: torch.optim.Optimizer, ids: torch.Tensor, micro_batches: int) -> None:
    opt.zero_grad()
    for chunk in ids.chunk(micro_batches):
        (lm(chunk[:, :-1], labels=chunk[:, 1:]).loss / micro_batches).backward()
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="train_tiny1k", choices=[w for w, v in WORKLOADS.items() if v[3] == "train"])
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--splits", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name, seqlen, batch, _, _ = WORKLOADS[args.workload]
    lm = HyenaDNALMHeadModel(PUBLISHED_CONFIGS[name]).train()
    opt = build_optimizer(lm, 1e-4, 0.01)
    ids = torch.randint(7, 11, (batch, seqlen + 1))
    times: dict[int, list[float]] = {m: [] for m in args.splits}
    with reuse_freed_memory(True), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        for _ in range(args.rounds):
            for m in args.splits:
                for i in range(4):
                    t = time.perf_counter()
                    step(lm, opt, ids, m)
                    if i:
                        times[m].append(time.perf_counter() - t)
    rows = []
    for m in args.splits:
        ms = statistics.median(times[m]) * 1e3
        rows.append(
            {"micro_batches": m, "batch_each": batch // m, "ms_per_step": ms, "tokens_per_s": batch * seqlen / ms * 1e3}
        )
        print(f"{m} micro-batch(es) of {batch // m}: {ms:.1f} ms a step (median of {len(times[m])})")
    if args.out:
        atomic_write_text(args.out, json.dumps({**vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
