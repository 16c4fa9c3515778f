"""One training step of two checkouts of this repository, side by side: for a change with no switch of its own, the
code before it against the code after it (README, "The training step").

    git worktree add ../before HEAD~1
    .venv/bin/python benchmarks/train_ab.py ../before . --workload train_tiny1k --bf16 --rounds 4

Each round times the step in one fresh process per checkout (speed.py's workloads, random weights, the pretraining
loop's optimizer and allocator setting; median of the steps after a warm-up), the order alternating from round to
round; the figure kept is the median of the per-round ratios (before's step time over after's: above 1, the change
made the step faster). Pass ``--out`` to keep the rows as JSON. For a change behind an autotune knob, the same
checkout twice under two pinned kernel sets (``HYENADNA_AUTOTUNE=<file>`` for each side):

    .venv/bin/python benchmarks/train_ab.py . . --pin-before mm.json --pin-after onednn.json

``--finetune TASK`` times a whole fine-tuning run instead of a step: the benchmark's fine-tuning of the bundled
model (LP-FT head, one learning rate, ``--epochs``) on 1,000 training rows of a task folder, validation included,
as each checkout's loop runs it; it also prints each side's test MCC.

    .venv/bin/python benchmarks/train_ab.py ../before . --finetune gb_human_enhancers_ensembl --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from speed import WORKLOADS

from hyenadna.utils.io import atomic_write_text

CHILD = r"""
import statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import hyenadna
from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel
from hyenadna.training.optim import build_optimizer
from hyenadna.utils.memory import reuse_freed_memory

assert hyenadna.__file__.startswith(sys.argv[1]), hyenadna.__file__
name, seqlen, batch, steps, bf16 = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
torch.set_num_threads(int(sys.argv[7]))
torch.manual_seed(0)
lm = HyenaDNALMHeadModel(PUBLISHED_CONFIGS[name]).train()
opt = build_optimizer(lm, 1e-4, 0.01)
ids = torch.randint(7, 11, (batch, seqlen + 1))


def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = lm(ids[:, :-1], labels=ids[:, 1:]).loss
    opt.zero_grad()
    loss.backward()
    opt.step()


with reuse_freed_memory():
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


FINETUNE_CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import torch
import hyenadna
from hyenadna.benchmark.runner import BenchmarkConfig, run_finetune
from hyenadna.benchmark.tasks import load_task

assert hyenadna.__file__.startswith(sys.argv[1]), hyenadna.__file__
tasks_dir, task, epochs = sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(int(sys.argv[5]))
cfg = BenchmarkConfig.quick(tasks_dir=tasks_dir, out_dir="", epochs=epochs, finetune_lrs=[1e-4])
sub = load_task(Path(tasks_dir) / task).subsample(1000, 200, seed=0)
t = time.perf_counter()
result = run_finetune(sub, 0, cfg, pretrained=True)
print(result["test"]["mcc"], file=sys.stderr)
print(time.perf_counter() - t)
"""


def finetune_seconds(checkout: Path, tasks_dir: str, task: str, epochs: int, threads: int, pin: Path | None):
    """A whole fine-tuning run's seconds and test MCC in one fresh process of ``checkout``."""
    out = _child(FINETUNE_CHILD, checkout, [tasks_dir, task, epochs, threads], pin)
    return float(out.stdout.strip().splitlines()[-1]), float(out.stderr.strip().splitlines()[-1])


def _child(code: str, checkout: Path, args: list, pin: Path | None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh process that imports ``checkout``'s hyenadna, under ``pin``'s kernel choices if given."""
    return subprocess.run(
        [sys.executable, "-c", code, str(checkout.resolve()), *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HYENADNA_AUTOTUNE": str(pin.resolve())} if pin else None,
    )


def step_seconds(checkout: Path, workload: str, bf16: bool, threads: int, pin: Path | None = None) -> float:
    name, seqlen, batch, kind, _ = WORKLOADS[workload]
    if kind != "train":
        raise SystemExit(f"{workload} is not a training workload")
    steps = 12 if seqlen * batch <= 8192 else 6
    args = [name, seqlen, batch, steps, int(bf16), threads]
    return float(_child(CHILD, checkout, args, pin).stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path, help="checkout of the code before the change")
    p.add_argument("after", type=Path, help="checkout of the code after it")
    p.add_argument("--workload", default="train_tiny1k", choices=[w for w, v in WORKLOADS.items() if v[3] == "train"])
    p.add_argument("--bf16", action="store_true", help="under bf16 autocast, as pretraining on CPUs with native bf16")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pin-before", type=Path, help="kernel choices for the before side (HYENADNA_AUTOTUNE=<file>)")
    p.add_argument("--pin-after", type=Path, help="... and for the after side")
    p.add_argument("--finetune", metavar="TASK", help="time a whole fine-tuning run on this task instead of a step")
    p.add_argument("--tasks-dir", default="../shared/benchmarks")
    p.add_argument("--epochs", type=int, default=3, help="with --finetune")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rows = []
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        pins = {"before": args.pin_before, "after": args.pin_after}
        secs, mcc = {}, {}
        for which in order:
            if args.finetune:
                secs[which], mcc[which] = finetune_seconds(
                    getattr(args, which), args.tasks_dir, args.finetune, args.epochs, args.threads, pins[which]
                )
            else:
                secs[which] = step_seconds(getattr(args, which), args.workload, args.bf16, args.threads, pins[which])
        rows.append(
            {"round": r, **secs, "ratio": secs["before"] / secs["after"], **{f"{k} mcc": v for k, v in mcc.items()}}
        )
        unit, scale = ("s", 1) if args.finetune else ("ms", 1e3)
        line = f"round {r}: before {scale * secs['before']:.1f} {unit}, after {scale * secs['after']:.1f} {unit}"
        print(line + (f" (test MCC {mcc['before']:.4f} / {mcc['after']:.4f})" if mcc else ""), flush=True)
    ratio = statistics.median(row["ratio"] for row in rows)
    dtype = "bf16" if args.bf16 else "fp32"
    per_round = [round(r["ratio"], 3) for r in rows]
    what = f"fine-tuning {args.finetune} ({args.epochs} epochs)" if args.finetune else args.workload
    print(f"{what} {dtype}: after / before speed {ratio:.3f}x (per round {per_round})")
    if args.out:
        summary = {"workload": what, "dtype": dtype, "speedup": ratio, "rounds": rows}
        summary.update(before=str(args.before), after=str(args.after), pins=[str(args.pin_before), str(args.pin_after)])
        atomic_write_text(args.out, json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
