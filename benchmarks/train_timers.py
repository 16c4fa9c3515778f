"""Where a training step's wall-clock time goes, by autograd node: timers around the forward and backward of each of
our nodes (projections, in_proj with the short conv, the gating node with the long convolution, GELU, dropout) and
around LayerNorm and the implicit filter's forward, in one process, per step; whatever is not inside one of them
(LayerNorm's backward, residual adds, casts, the loss, autograd itself) is the rest.

    .venv/bin/python benchmarks/train_timers.py --workload train_tiny1k --bf16   # ~30 s

``torch.profiler`` misleads here: it put 2.9 ms on a 6,144-element fill that takes 0.13 ms in the step, inflating
small ops next to large ones. These timers add a few microseconds a call. Each CPU op completes before it returns,
so the wall clock around a call is its time (on a GPU it would need synchronising; this script is for the CPU).
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import time

import torch
from speed import WORKLOADS

from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel
from hyenadna.ops import fused, linear, short_conv
from hyenadna.ops.fftconv import _GatedFFTConv
from hyenadna.training.optim import build_optimizer
from hyenadna.utils.memory import reuse_freed_memory

SECONDS: dict[str, float] = collections.defaultdict(float)


def timed(fn, label: str):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[label] += time.perf_counter() - t

    return run


def instrument(model: torch.nn.Module) -> None:
    nodes = {
        "projections": (linear._Linear, linear._Mlp, linear._LinearChannelsFirst),
        "short conv": (short_conv._ShortConv,),
        "in_proj + short conv": (short_conv._InProjShortConv,),
        "gating + long convolution": (_GatedFFTConv,),
        "GELU": (fused._GeluTanh,),
        "dropout": (fused._Dropout,),
    }
    for label, classes in nodes.items():
        for cls in classes:
            for phase in ("forward", "backward"):
                setattr(cls, phase, staticmethod(timed(getattr(cls, phase), f"{label} {phase}")))
    torch.nn.LayerNorm.forward = timed(torch.nn.LayerNorm.forward, "LayerNorm forward")
    for layer in model.backbone.layers:
        f = layer.mixer.filter_fn
        f.filter_channels_first = timed(f.filter_channels_first, "implicit filter forward")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="train_tiny1k", choices=[w for w, v in WORKLOADS.items() if v[3] == "train"])
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name, seqlen, batch, _, _ = WORKLOADS[args.workload]
    lm = HyenaDNALMHeadModel(PUBLISHED_CONFIGS[name]).train()
    instrument(lm)
    opt = build_optimizer(lm, 1e-4, 0.01)
    ids = torch.randint(7, 11, (batch, seqlen + 1))
    steps = []
    with reuse_freed_memory():
        for i in range(3 + args.steps):
            if i == 3:
                SECONDS.clear()
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = lm(ids[:, :-1], labels=ids[:, 1:]).loss
            t1 = time.perf_counter()
            opt.zero_grad()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if i >= 3:
                SECONDS["whole forward"] += t1 - t0
                SECONDS["whole backward"] += t2 - t1
                SECONDS["optimizer"] += t3 - t2
                steps.append(t3 - t0)
    n = args.steps
    per_step = {k: 1e3 * v / n for k, v in SECONDS.items()}
    for phase in ("forward", "backward"):
        inside = sum(v for k, v in per_step.items() if k.endswith(phase) and not k.startswith("whole"))
        per_step[f"rest of the {phase}"] = per_step[f"whole {phase}"] - inside
    print(f"{args.workload} {'bf16' if args.bf16 else 'fp32'}: median step {1e3 * statistics.median(steps):.1f} ms")
    for k, v in sorted(per_step.items(), key=lambda kv: -kv[1]):
        print(f"  {k:34s} {v:6.2f} ms a step")


if __name__ == "__main__":
    main()
