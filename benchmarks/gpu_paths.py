"""Where the time goes on a GPU: each inference path forced in turn (batched; low-memory in a GPU's 64k-token chunks
and in the CPU's 1,024; the plain reference), its time and peak memory, and a CUDA kernel profile of the short workloads
(kernels per pass, GPU-busy time against wall time, the costliest kernels). Written to diagnose gpu_check.py's
ratios on one H100-class GPU in about two minutes.

    python benchmarks/gpu_paths.py --out gpu_paths.json     # on the GPU machine
    python benchmarks/gpu_paths.py --dry-run                 # CPU, tiny shapes: checks the script itself
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.gpu_check import DRY, WORKLOADS, median_seconds  # noqa: E402
from hyenadna.utils.io import atomic_write_text  # noqa: E402

# path name: (reference, low_memory, options)
INFER_PATHS = {
    "reference": (True, False, {}),
    "batched": (False, False, {}),
    "low_memory": (False, True, {}),
    "low_memory_chunk1k": (False, True, {"low_memory_chunk": 1024}),  # the CPU default chunk
}


def _model(name: str, device: str, reference: bool, options: dict):
    import torch

    from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel
    from hyenadna.ops.execution import ExecutionOptions

    torch.manual_seed(0)
    lm = HyenaDNALMHeadModel(PUBLISHED_CONFIGS[name]).use_reference_path(reference).to(device)
    lm.backbone.execution = ExecutionOptions(**options)
    return lm


def _step(lm, ids, kind: str, low_memory: bool, opt):
    if kind == "infer":
        return lm.backbone(ids, low_memory=low_memory)
    loss = lm(ids[:, :-1], labels=ids[:, 1:]).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def measure(spec: tuple, path: str, device: str, profile: bool) -> dict:
    import torch

    name, seqlen, batch, kind, repeats = spec
    reference, low_memory, options = INFER_PATHS[path] if kind == "infer" else (path == "reference", False, {})
    lm = _model(name, device, reference, options)
    lm.train(kind == "train")
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    ids = torch.randint(7, 11, (batch, seqlen + (kind == "train")), device=device)
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-4, fused=cuda or None) if kind == "train" else None
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    grad = torch.enable_grad() if kind == "train" else torch.inference_mode()
    with grad:
        sec = median_seconds(lambda: _step(lm, ids, kind, low_memory, opt), repeats, sync)
        row = {"seconds": sec, "tokens_per_s": batch * seqlen / sec}
        row["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        if profile:
            row["profile"] = _profile(lambda: _step(lm, ids, kind, low_memory, opt), cuda, sync)
    return row


def _profile(fn, cuda: bool, sync, passes: int = 3) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync()
    t = time.perf_counter()
    with torch_profile(activities=activities) as prof:
        for _ in range(passes):
            fn()
        sync()
    wall = (time.perf_counter() - t) / passes
    events = prof.key_averages()
    if cuda:
        kernels = [e for e in events if getattr(e, "device_type", None) is not None and "CUDA" in str(e.device_type)]
        gpu_us = sum(e.self_device_time_total for e in kernels) / passes
        top = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:10]
        rows = [[e.key[:70], e.count // passes, round(e.self_device_time_total / passes, 1)] for e in top]
        launches = sum(e.count for e in kernels) / passes
    else:
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
        rows = [[e.key[:70], e.count // passes, round(e.self_cpu_time_total / passes, 1)] for e in top]
        gpu_us, launches = None, None
    ops = sorted(events, key=lambda e: e.count, reverse=True)[:8]
    return {
        "wall_us_per_pass": round(wall * 1e6, 1),
        "gpu_busy_us_per_pass": None if gpu_us is None else round(gpu_us, 1),
        "kernels_per_pass": launches,
        "top_kernels_us_per_pass": rows,
        "most_called_ops_per_pass": [[e.key[:60], e.count // passes] for e in ops],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--budget", type=float, default=150, help="seconds; later rows are skipped")
    args = ap.parse_args()
    import torch

    device = "cpu" if args.dry_run else "cuda"
    specs = DRY if args.dry_run else WORKLOADS
    out = Path(args.out or REPO / "benchmarks" / "results" / f"gpu_paths{'_dry_run' if args.dry_run else ''}.json")
    start, rows = time.time(), []
    for w, spec in specs.items():
        paths = list(INFER_PATHS) if spec[3] == "infer" else ["reference", "train"]
        for path in paths:
            row = {"workload": w, "path": path, "L": spec[1], "batch": spec[2]}
            if time.time() - start > args.budget:
                row["error"] = "skipped: time budget"
            else:
                try:
                    row |= measure(spec, path, device, profile=w in ("tiny1k_b32", "train_tiny1k_b8", "small32k"))
                except Exception as e:
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                    if device == "cuda":
                        torch.cuda.empty_cache()
            rows.append(row)
            atomic_write_text(out, json.dumps({"device": device, "rows": rows}, indent=1) + "\n")
            prof = row.get("profile", {})
            print(
                f"{w:<16} {path:<20} "
                + (
                    f"{row['tokens_per_s']:>13,.0f} tok/s {row['peak_mb'] or 0:>9,.0f} MB"
                    if "seconds" in row
                    else row["error"]
                )
                + (
                    f"  kernels {prof['kernels_per_pass']} busy {prof['gpu_busy_us_per_pass']} us"
                    f" of {prof['wall_us_per_pass']}"
                    if prof
                    else ""
                ),
                flush=True,
            )
    print(f"wrote {out} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
