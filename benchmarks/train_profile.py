"""Where a training step's time goes: torch.profiler self CPU time of one pretraining step (forward, next-token loss,
backward, AdamW), ours and the plain reference path, grouped by kind of work, beside the time the dense projections
alone would take at the measured matmul peak. It says how far the issue #18 speed-up targets are from what this CPU
allows, and which non-matmul work a faster step would have to remove.

    .venv/bin/python benchmarks/train_profile.py     # ~2 min -> benchmarks/results/train_profile.json

Each workload and path runs in a fresh process (speed.py's workloads: tiny-1k batch 8, 16k tokens batch 1, random
weights). Run it on an otherwise idle machine: the shares move with the load, and the step times of single runs by
10-20%, so ``speed.py --rounds`` gives the ratios. The profiler also inflates small ops beside large ones (it put 2.9
ms on a 6,144-element fill that took 0.13 ms in the step): ``train_timers.py`` times whole autograd nodes instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import WORKLOADS, cpu_name, matmul_flops_per_token, matmul_peak  # noqa: E402

# torch op name -> kind of work; anything else counts as "other"
KINDS = {
    "matmul": ("mkldnn::_linear_pointwise", "aten::mm", "aten::addmm", "aten::bmm"),
    "FFT": ("aten::_fft_r2c", "aten::_fft_c2c", "aten::_fft_c2r"),
    "elementwise products (gating, spectra)": ("aten::mul", "aten::mul_", "aten::addcmul", "aten::addcmul_"),
    "GELU": ("aten::gelu", "aten::gelu_backward"),
    "copies, padding, fills": ("aten::copy_", "aten::cat", "aten::fill_", "aten::zero_", "aten::constant_pad_nd"),
    "short conv": ("aten::convolution_backward", "aten::mkldnn_convolution", "aten::_convolution"),
    "sums and adds": ("aten::sum", "aten::add", "aten::add_"),
    "dropout": ("aten::bernoulli_",),
    "LayerNorm": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
}


def measure(workload: str, impl: str, threads: int, steps: int) -> dict:
    """In this process: median step time, then a profile of ``steps`` steps."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    name, seqlen, batch, _, _ = WORKLOADS[workload]
    lm = HyenaDNALMHeadModel(PUBLISHED_CONFIGS[name]).use_reference_path(impl == "reference").train()
    if impl == "reference":  # the reference's optimizer; ours as pretraining builds it (fused AdamW on the CPU)
        opt = torch.optim.AdamW(lm.parameters(), lr=1e-4)
    else:
        from hyenadna.training.optim import build_optimizer

        opt = build_optimizer(lm, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(7, 11, (batch, seqlen + 1))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=impl == "fast_bf16"):
            loss = lm(ids[:, :-1], labels=ids[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    by_op = {e.key: e.self_cpu_time_total / 1e6 / steps for e in prof.key_averages()}
    total = sum(by_op.values())
    kinds = {kind: sum(by_op.get(op, 0.0) for op in ops) for kind, ops in KINDS.items()}
    kinds["other"] = total - sum(kinds.values())
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:12]
    return {
        "workload": workload,
        "impl": impl,
        "seconds": statistics.median(times),
        "tokens_per_step": batch * seqlen,
        "profiled_seconds_per_step": total,
        "kinds_seconds": kinds,
        "top_ops_seconds": dict(top),
    }


def child(workload: str, impl: str, threads: int, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", workload, impl, str(threads), str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        workload, impl, threads, steps = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(measure(workload, impl, threads, steps)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", default=["train_tiny1k", "train_16k"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument(
        "--bf16",
        action="store_true",
        help="also profile ours under bf16 autocast (for CPUs with native bf16: AMX, AVX512-BF16)",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/train_profile.json"))
    args = ap.parse_args()

    from hyenadna.utils.io import atomic_write_text

    peak = matmul_peak(args.threads)
    rows = []
    for workload in args.workloads:
        for impl in ("fast", "reference") + (("fast_bf16",) if args.bf16 else ()):
            row = child(workload, impl, args.threads, args.steps)
            row["matmul_floor_seconds"] = (
                matmul_flops_per_token(workload, "train") * row["tokens_per_step"] / (peak * 1e9)
            )
            rows.append(row)
    for workload in args.workloads:
        ref = next(r for r in rows if (r["workload"], r["impl"]) == (workload, "reference"))
        for fast in (r for r in rows if r["workload"] == workload and r["impl"] != "reference"):
            floor = fast["matmul_floor_seconds"]
            print(
                f"{workload} {fast['impl']}: step {fast['seconds']:.3f} s ours, {ref['seconds']:.3f} s reference "
                f"({ref['seconds'] / fast['seconds']:.2f}x); fp32 projections at peak {floor:.3f} s, so at most "
                f"{ref['seconds'] / floor:.2f}x if nothing else took time"
            )
            for kind, sec in sorted(fast["kinds_seconds"].items(), key=lambda kv: -kv[1]):
                share = sec / fast["profiled_seconds_per_step"]
                print(
                    f"    {kind:40s} {sec:7.3f} s  {100 * share:4.1f}%  (reference {ref['kinds_seconds'][kind]:.3f} s)"
                )
    report = {"cpu": cpu_name(), "threads": args.threads, "matmul_peak_gflops": peak, "rows": rows}
    atomic_write_text(Path(args.out), json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
