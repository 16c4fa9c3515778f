"""One script for a machine with a GPU: the GPU tests, then our path against the plain reference path (and an
equal-width SDPA Transformer) side by side, in fp32 and bf16, with peak GPU memory. On one H200 it took 34-74 s,
its tests included (docs/speed/gpu.md).

    python benchmarks/gpu_check.py                      # on the GPU machine; writes benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --dry-run            # CPU, tiny shapes: checks the script itself (CI runs this)

Robust by design: the JSON is rewritten after every measurement, each measurement catches its own failure (an
out-of-memory is recorded, not fatal), and a time budget skips what would not fit, so one run always leaves its file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.speed import transformer  # noqa: E402
from hyenadna.utils.io import atomic_write_text  # noqa: E402

# name: (published config, L, batch, kind, repeats)
WORKLOADS = {
    "tiny1k_b32": ("hyenadna-tiny-1k-seqlen", 1024, 32, "infer", 10),
    "train_tiny1k_b8": ("hyenadna-tiny-1k-seqlen", 1024, 8, "train", 10),
    "small32k": ("hyenadna-small-32k-seqlen", 32768, 1, "infer", 5),
    "medium160k": ("hyenadna-medium-160k-seqlen", 160000, 1, "infer", 3),
    "large1m": ("hyenadna-large-1m-seqlen", 1000000, 1, "infer", 2),
}
# the dry run: the same code on the CPU with shapes that take seconds
DRY = {
    "tiny1k_b32": ("hyenadna-tiny-1k-seqlen", 256, 4, "infer", 2),
    "train_tiny1k_b8": ("hyenadna-tiny-1k-seqlen", 128, 2, "train", 2),
    "small32k": ("hyenadna-tiny-1k-seqlen", 512, 1, "infer", 2),
    "medium160k": ("hyenadna-tiny-1k-seqlen", 1024, 1, "infer", 1),
    "large1m": ("hyenadna-tiny-1k-seqlen", 9000, 1, "infer", 1),  # crosses into the low-memory path
}
TRANSFORMER_WORKLOADS = {"tiny1k_b32", "train_tiny1k_b8", "small32k"}


def run_gpu_tests(timeout: float, log: Path) -> dict:
    """Runs the tests marked gpu; the whole pytest output goes to `log`, so a failure's traceback comes back too."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rP", "-m", "gpu", "tests", "-p", "no:cacheprovider"]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        atomic_write_text(log, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""))
        return {"error": f"timeout after {timeout:.0f} s", "seconds": time.time() - t0}
    atomic_write_text(log, p.stdout + p.stderr)
    tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", tail)}
    failures = [line for line in p.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"exit": p.returncode, "counts": counts, "summary": tail, "failures": failures, "seconds": time.time() - t0}


def median_seconds(fn, repeats: int, sync) -> float:
    """One warm-up pass (kernels, FFT plans, the filter cache), then the median of ``repeats`` timed passes, each
    between two device synchronisations."""
    fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(workload: str, spec: tuple, impl: str, precision: str, device: str) -> dict:
    import torch

    from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel

    name, seqlen, batch, kind, repeats = spec
    cfg = PUBLISHED_CONFIGS[name]
    torch.manual_seed(0)
    if impl == "transformer":
        model = transformer(cfg.d_model, cfg.n_layer, cfg.d_inner).to(device)
        run = model
    else:
        lm = HyenaDNALMHeadModel(cfg).use_reference_path(impl == "reference").to(device)
        model = lm
        run = (lambda ids: lm.backbone(ids, low_memory=False)) if impl == "reference" else lm.backbone
    ids = torch.randint(7, 11, (batch, seqlen + (1 if kind == "train" else 0)), device=device)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
    with autocast:
        if kind == "infer":
            model.eval()
            with torch.inference_mode():
                sec = median_seconds(lambda: run(ids), repeats, sync)
        else:
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda or None)

            def step() -> None:
                if impl == "transformer":
                    out = model(ids[:, :-1]) @ model.emb.weight.T
                    loss = torch.nn.functional.cross_entropy(out.flatten(0, 1).float(), ids[:, 1:].flatten())
                else:
                    loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            sec = median_seconds(step, repeats, sync)
    return {
        "seconds": sec,
        "tokens_per_s": batch * seqlen / sec,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def environment(device: str) -> dict:
    import torch

    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "device": device,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        env |= {
            "gpu": props.name,
            "gpu_memory_gb": round(props.total_memory / 2**30, 1),
            "gpus": torch.cuda.device_count(),
        }
    return env


def table(rows: list[dict]) -> str:
    lines = [
        f"{'workload':<16} {'precision':<9} {'ours tok/s':>12} {'reference':>12} {'ratio':>7} {'transformer':>12} "
        f"{'ours MB':>9} {'ref MB':>9}"
    ]
    keys = sorted({(r["workload"], r["precision"]) for r in rows}, key=lambda k: (list(WORKLOADS).index(k[0]), k[1]))
    for w, p in keys:
        by = {r["impl"]: r for r in rows if r["workload"] == w and r["precision"] == p}

        def tps(impl, by=by):
            r = by.get(impl, {})
            return f"{r['tokens_per_s']:,.0f}" if "tokens_per_s" in r else (r.get("error", "-")[:12] or "-")

        def mb(impl, by=by):
            v = by.get(impl, {}).get("peak_gpu_mb")
            return f"{v:,.0f}" if v is not None else "-"

        ours, ref = by.get("fast", {}), by.get("reference", {})
        ratio = (
            f"{ours['tokens_per_s'] / ref['tokens_per_s']:.2f}x"
            if "tokens_per_s" in ours and "tokens_per_s" in ref
            else "-"
        )
        lines.append(
            f"{w:<16} {p:<9} {tps('fast'):>12} {tps('reference'):>12} {ratio:>7} {tps('transformer'):>12} "
            f"{mb('fast'):>9} {mb('reference'):>9}"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes: checks the script (for CI)")
    ap.add_argument("--out", help="JSON output (default: benchmarks/results/gpu_check[_dry_run].json)")
    ap.add_argument("--budget", type=float, default=420, help="seconds for everything; later rows are skipped")
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args()

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device here: run with --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    specs = DRY if args.dry_run else WORKLOADS
    out = Path(args.out or REPO / "benchmarks" / "results" / f"gpu_check{'_dry_run' if args.dry_run else ''}.json")
    start = time.time()
    report = {"dry_run": args.dry_run, "environment": environment(device), "tests": None, "rows": []}

    def save() -> None:
        report["seconds"] = time.time() - start
        atomic_write_text(out, json.dumps(report, indent=1) + "\n")

    save()
    if not args.skip_tests:
        report["tests"] = run_gpu_tests(timeout=min(240, args.budget / 2), log=out.with_suffix(".pytest.txt"))
        print(f"GPU tests: {report['tests'].get('summary') or report['tests'].get('error')}", file=sys.stderr)
        save()
    plan = []
    for w in specs:
        for precision in ("fp32", "bf16"):
            impls = ["fast", "reference"] + (["transformer"] if w in TRANSFORMER_WORKLOADS else [])
            plan += [(w, impl, precision) for impl in impls]
    for w, impl, precision in plan:
        row = {
            "workload": w,
            "impl": impl,
            "precision": precision,
            "L": specs[w][1],
            "batch": specs[w][2],
            "kind": specs[w][3],
        }
        if time.time() - start > args.budget:
            row["error"] = "skipped: time budget"
        else:
            try:
                row |= measure(w, specs[w], impl, precision, device)
            except Exception as e:  # an OOM or a kernel error is a result to report, not the end of the run
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                if device == "cuda":
                    torch.cuda.empty_cache()
        report["rows"].append(row)
        save()
        done = f"{row['tokens_per_s']:,.0f} tok/s" if "tokens_per_s" in row else row["error"]
        print(f"{w:<16} {impl:<11} {precision}: {done}", file=sys.stderr)
    print(table(report["rows"]))
    print(f"wrote {out} in {time.time() - start:.0f} s", file=sys.stderr)
    tests_ok = args.skip_tests or (report["tests"] or {}).get("exit") in (0, 5)  # 5: every test skipped (dry run)
    return 0 if tests_ok and not any("Error" in r.get("error", "") for r in report["rows"]) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    sys.exit(main())
