"""Held-out evaluation in data-parallel pretraining: rank 0 alone (as before 2026-12-08) against every rank scoring
its share (``evaluate_nll(..., rank, world)``), side by side in one 2-rank torchrun job, rounds alternating.

    .venv/bin/python benchmarks/ddp_eval.py --out benchmarks/results/ddp_eval.json    # ~2 min on 2 cores

The bundled 1k model on the 256 held-out 1,025-token windows every model card scores, CPU ranks of one thread each
(gloo): on 2 cores, two ranks is what the machine can share out. Writes the seconds of each round and their ratio.
(Its ``--markov`` mode, at e9403a3, timed the Markov baseline's counting shared among the ranks against rank 0
alone: 0.97-1.26x on 2 CPU ranks, ``benchmarks/results/ddp_markov.json``; the sharing was not kept.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rank_main(out: str, rounds: int, windows: int) -> None:
    import torch
    import torch.distributed as dist

    from benchmarks.long_context_eval import held_out_windows
    from hyenadna import HyenaDNA
    from hyenadna.ops import autotune
    from hyenadna.training.pretrain import evaluate_nll

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    model = HyenaDNA().model
    (held_out,) = held_out_windows((windows, 1025))
    evaluate_nll(model, held_out[:16])  # warm-up: oneDNN primitives, FFT plans
    times = {"rank0_alone": [], "shared": []}
    nll = {}
    for r in range(rounds):
        for name in ("rank0_alone", "shared") if r % 2 == 0 else ("shared", "rank0_alone"):
            dist.barrier()
            t0 = time.perf_counter()
            if name == "shared":
                nll[name] = evaluate_nll(model, held_out, rank=rank, world=world)
            elif rank == 0:
                nll[name] = evaluate_nll(model, held_out)
            dist.barrier()  # the others wait for rank 0, as in pretraining
            times[name].append(time.perf_counter() - t0)
    if rank == 0:
        ratios = [a / b for a, b in zip(times["rank0_alone"], times["shared"], strict=True)]
        result = {
            "model": "hyenadna-tiny-1k-d256-grch37",
            "windows": [windows, 1025],
            "world": world,
            "threads_per_rank": 1,
            "seconds": times,
            "ratio_rank0_alone_over_shared": ratios,
            "nll": nll,
            "same_nll": nll["shared"] == nll["rank0_alone"],
            "cpu": f"{autotune.cpu_name()} ({autotune.cpu_features()})",
        }
        Path(out).write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/ddp_eval.json")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--windows", type=int, default=256)
    parser.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank:
        rank_main(args.out, args.rounds, args.windows)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", __file__, "--rank"]
    cmd += ["--out", str(Path(args.out).resolve()), "--rounds", str(args.rounds), "--windows", str(args.windows)]
    subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
