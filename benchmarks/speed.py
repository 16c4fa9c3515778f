"""Speed and memory suite: ours (fast path) vs the plain reference path vs an equal-width causal Transformer.

Every (workload, implementation) pair runs in a fresh process, so peak RSS is its own; pairs are interleaved so the
ratios come from one run on the same machine state. Random weights.

    .venv/bin/python benchmarks/speed.py                 # everything (~30 min; large-1m reference ~6 min, 17 GB)
    .venv/bin/python benchmarks/speed.py --skip-long     # without medium-160k and large-1m (~8 min)
    .venv/bin/python benchmarks/speed.py --only small32k medium160k large1m --out benchmarks/results/speed_long.json
    .venv/bin/python benchmarks/speed.py --only --out benchmarks/results/crossover.json   # the crossover alone (~2 min)

Implementations: "fast" (our default path, with this machine's autotuned kernel choices; on training workloads run as
the pretraining loop runs it: fused elementwise kernels, freed memory kept between steps), "fast_defaults" (the same
with autotune off: the choices measured on AMD EPYC), "fast_bf16" (the fast path under bf16 autocast), "reference" (the
plain reference path, ``use_reference_path()``), "fast_compile" (training workloads: our path under ``torch.compile``,
timed after two compiling steps), "transformer" (equal-width SDPA Transformer, for the short workloads), with
--reference-reuse W... "reference_reuse" (the reference with freed memory reused, as our long path and pretraining
do), and on request (--impls): "reference_bf16" (the reference under bf16 autocast, the like-for-like ratio for
fast_bf16) and, for the training levers one at a time, a "_noreuse" suffix (freed memory returned to the system after
each step, as before the pretraining loop kept it), an "_eager" suffix (the fused kernels off, ops/fused.py), a
"_foreach" suffix (torch's default AdamW instead of our fused one) and a "_ckpt" suffix (gradient checkpointing:
each block recomputed in the backward, for its time and peak memory) or a "_chunked" suffix (sequence-chunked
training, ops/block_chunked.py), a "_dropout" suffix (every block's inner dropout at 0.1: hyena_dropout and
resid_dropout), e.g. "fast_bf16_noreuse", a "_cacheN" suffix (oneDNN's primitive caches at N primitives each, e.g.
"fast_cache64": ``utils.memory.ONEDNN_CACHE_CAPACITY``, as the commands that fine-tune set it), and a final
"_compile" suffix (under ``torch.compile``, as "fast_compile"), e.g. "fast_chunked_noreuse_compile".

Writes benchmarks/results/speed.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hyenadna.utils.io import atomic_path

WORKLOADS = {
    # name: (published config, L, batch, kind, repeats)
    "tiny1k_b1": ("hyenadna-tiny-1k-seqlen", 1024, 1, "infer", 20),
    "tiny1k_b32": ("hyenadna-tiny-1k-seqlen", 1024, 32, "infer", 5),
    "train_tiny1k": ("hyenadna-tiny-1k-seqlen", 1024, 8, "train", 5),
    "train_16k": ("hyenadna-tiny-16k-seqlen-d128", 16384, 1, "train", 3),
    # the benchmark's fine-tuning shape: the bundled model's width (d 256), 16 sequences of 512 bases
    "train_d256_b16": ("hyenadna-tiny-1k-seqlen-d256", 512, 16, "train", 5),
    # gradient checkpointing's workloads (--impls fast fast_ckpt): deeper models at long windows
    "train_small32k": ("hyenadna-small-32k-seqlen", 32768, 1, "train", 2),
    "train_medium160k": ("hyenadna-medium-160k-seqlen", 160000, 1, "train", 1),
    # sequence-chunked training's (--impls fast_chunked fast_chunked_noreuse): the 1M-token window
    "train_large1m": ("hyenadna-large-1m-seqlen", 1000000, 1, "train", 1),
    "small32k": ("hyenadna-small-32k-seqlen", 32768, 1, "infer", 3),
    "small32k_lmax": ("hyenadna-small-32k-seqlen", 32770, 1, "infer", 3),
    "medium160k": ("hyenadna-medium-160k-seqlen", 160000, 1, "infer", 1),
    "large1m": ("hyenadna-large-1m-seqlen", 1000000, 1, "infer", 1),
}
LONG = {"medium160k", "large1m"}
# run only when named in --only: without checkpointing, medium-160k's training step needs more memory than many
# machines have
ON_REQUEST = {"train_small32k", "train_medium160k", "train_large1m"}
CROSSOVER_LENGTHS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]


def transformer(d_model: int, n_layer: int, d_inner: int):
    import torch.nn.functional as F
    from torch import nn

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = max(1, d_model // 64)
            self.qkv, self.proj = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)
            self.fc1, self.fc2 = nn.Linear(d_model, d_inner), nn.Linear(d_inner, d_model)
            self.n1, self.n2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

        def forward(self, x):
            b, n, d = x.shape
            q, k, v = self.qkv(self.n1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, n, d)
            x = x + self.proj(a)
            return x + self.fc2(F.gelu(self.fc1(self.n2(x)), approximate="tanh"))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(16, d_model)
            self.layers = nn.ModuleList(Layer() for _ in range(n_layer))
            self.ln = nn.LayerNorm(d_model)

        def forward(self, ids):
            x = self.emb(ids)
            for layer in self.layers:
                x = layer(x)
            return self.ln(x)

    return Model()


def measure(workload: str, impl: str, threads: int, length: int | None = None) -> dict:
    """One measurement in this process (called in a child)."""
    import torch

    from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    name, seqlen, batch, kind, repeats = WORKLOADS.get(workload, ("hyenadna-tiny-1k-seqlen", length, 1, "infer", 5))
    seqlen = length or seqlen
    cfg = PUBLISHED_CONFIGS[name]
    if impl == "transformer":
        model = transformer(cfg.d_model, cfg.n_layer, cfg.d_inner)
        run = model
    else:
        reference = impl.startswith("reference")
        lm = HyenaDNALMHeadModel(cfg).use_reference_path(reference).gradient_checkpointing("_ckpt" in impl)
        lm.sequence_chunked("_chunked" in impl)
        if "_dropout" in impl:  # the inner dropout of every block on (hyena_dropout, resid_dropout 0.1)
            for block in lm.backbone.layers:
                block.mixer.dropout.p = block.dropout2.p = 0.1
        model = torch.compile(lm) if impl.endswith("_compile") else lm
        if "_eager" in impl:
            import hyenadna.ops.fused

            hyenadna.ops.fused.USE_COMPILED = False
        run = (lambda ids: lm.backbone(ids, low_memory=False)) if reference else lm.backbone
        if impl == "reference_reuse":  # the reference under the allocator setting our long path uses
            from hyenadna.utils.memory import reuse_freed_memory

            plain = run

            def run(ids):
                with reuse_freed_memory():
                    return plain(ids)

    ids = torch.randint(7, 11, (batch, seqlen + (1 if kind == "train" else 0)))
    times = []
    # fast_bf16 / reference_bf16: under bf16 autocast (the projections; FFT and residual stay fp32)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled="_bf16" in impl):
        _run(kind, impl, model, run, ids, repeats, times)
    sec = statistics.median(times)
    return {
        "workload": workload,
        "impl": impl,
        "L": seqlen,
        "batch": batch,
        "kind": kind,
        "seconds": sec,
        "tokens_per_s": batch * seqlen / sec,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run(kind, impl, model, run, ids, repeats, times) -> None:
    import torch

    if kind == "infer":
        model.eval()
        with torch.inference_mode():
            if repeats > 1:
                run(ids)  # warm-up
            for _ in range(repeats):
                t = time.perf_counter()
                run(ids)
                times.append(time.perf_counter() - t)
    else:
        from hyenadna.utils.memory import reuse_freed_memory

        # as the pretraining loop does (training/pretrain.py)
        keep = (impl.startswith("fast") and "_noreuse" not in impl) or impl == "reference_reuse"
        with reuse_freed_memory(keep):
            _train_steps(impl, model, ids, repeats, times)


def _train_steps(impl, model, ids, repeats, times) -> None:
    import torch

    model.train()
    if impl.startswith("fast") and "_foreach" not in impl:  # ours, as pretraining builds it (fused on the CPU)
        from hyenadna.training.optim import build_optimizer

        opt = build_optimizer(model, lr=1e-4, weight_decay=0.01)
    else:  # the reference's: torch's default AdamW
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    warmup = 2 if impl.endswith("_compile") else 1  # compiling the forward, then the backward
    for i in range(repeats + warmup):
        # past 200k tokens the warm-up (compiling the fused kernels, Adam's state) runs on a short window: a step
        # there takes minutes, and the peak memory is the measured step's
        step_ids = ids[:, :8193] if i < warmup and ids.shape[1] > 200_000 else ids
        t = time.perf_counter()
        if impl == "transformer":
            out = model(step_ids[:, :-1]) @ model.emb.weight.T
            loss = torch.nn.functional.cross_entropy(out.flatten(0, 1), step_ids[:, 1:].flatten())
        else:
            loss = model(step_ids[:, :-1], labels=step_ids[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)


def child(workload: str, impl: str, threads: int, length: int | None = None, timeout: float = 3600) -> dict:
    import os

    cmd = [sys.executable, __file__, "--child", workload, impl, str(threads)] + ([str(length)] if length else [])
    env = dict(os.environ)
    if impl.startswith("fast_defaults"):
        env["HYENADNA_AUTOTUNE"] = "0"
    capacity = re.search(r"_cache(\d+)", impl)
    if capacity:  # read at torch's first oneDNN call in the child
        from hyenadna.utils.memory import onednn_cache_settings

        env.update(onednn_cache_settings(capacity.group(1)))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"workload": workload, "impl": impl, "error": f"timeout after {timeout} s"}
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1:] or [f"exit code {out.returncode}"]  # empty if killed
        return {"workload": workload, "impl": impl, "error": last[0]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    from hyenadna.ops.autotune import cpu_name as name

    return name()


def cpu_features() -> str:
    from hyenadna.ops.autotune import cpu_features as features

    return features()


def autotune_record(threads: int) -> dict | None:
    """This machine's kernel choices at ``threads`` (measured now if not cached), as the "fast" children use them."""
    import torch

    from hyenadna.ops import autotune

    if not autotune.enabled():
        return None
    torch.set_num_threads(threads)
    autotune.tuning()
    return json.loads(autotune.cache_path(threads).read_text())


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def matmul_peak(threads: int, dtype: str = "float32") -> float:
    """GFLOP/s of a 2048^3 matmul, the faster of torch's default (MKL's gemm) and oneDNN (what our fast path uses;
    ~2x MKL in fp32 on AMD CPUs, where MKL does not use its AVX-512 kernels)."""
    import torch

    from hyenadna.ops.linear import linear

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048).to(getattr(torch, dtype)), torch.randn(2048, 2048).to(getattr(torch, dtype))
    candidates = [lambda: a @ b, lambda: linear(a, b)]  # linear falls back to MKL where oneDNN is missing
    best = 0.0
    for run in candidates:
        run()
        t = time.perf_counter()
        for _ in range(5):
            run()
        best = max(best, 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return best


def matmul_flops_per_token(workload: str, kind: str = "infer") -> float:
    """The dense projections every implementation must run: in_proj (D -> 3D), out_proj, fc1 and fc2, per layer.
    Training: forward + two backward matmuls per projection (3x)."""
    from hyenadna import PUBLISHED_CONFIGS

    cfg = PUBLISHED_CONFIGS[WORKLOADS[workload][0]]
    d = cfg.d_model
    per_layer = 2 * d * 3 * d + 2 * d * d + 2 * 2 * d * cfg.d_inner
    return cfg.n_layer * per_layer * (3 if kind == "train" else 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--no-crossover", action="store_true")
    parser.add_argument("--threads", default="2", help="a number, or auto: the cores found idle (as the CLI does)")
    parser.add_argument(
        "--reference-reuse",
        nargs="+",
        metavar="WORKLOAD",
        help="also time the reference path on these workloads inside reuse_freed_memory (utils/memory.py), the "
        "allocator setting our long path uses: the comparison without that advantage (medium160k: 5.8 GB; large1m "
        "would need more than this machine's 24 GB)",
    )
    parser.add_argument(
        "--contended",
        action="store_true",
        help="run a busy neighbour (a spinning process pinned to the last CPU) beside every measurement, as on a "
        "shared server",
    )
    parser.add_argument(
        "--impls",
        nargs="+",
        help="exactly these implementations, on every workload given (see the module docstring: fast, "
        "fast_defaults, fast_bf16, fast_compile, reference, reference_bf16, reference_reuse, transformer, and the "
        "_noreuse / _eager / _foreach variants of fast and fast_bf16 for training workloads, _cacheN on any)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time every implementation this many times, in alternating order; the table shows each one's median "
        "and the median of the per-round ratios to the reference",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "speed.json"))
    args = parser.parse_args()
    if args.child:
        workload, impl, threads = args.child[:3]
        length = int(args.child[3]) if len(args.child) > 3 else None
        print(json.dumps(measure(workload, impl, int(threads), length)))
        return

    names = args.only
    if names is None:
        names = [w for w in WORKLOADS if not (args.skip_long and w in LONG) and w not in ON_REQUEST]
    neighbour = busy_neighbour() if args.contended else None
    if args.threads == "auto":
        import time as _time

        from hyenadna.utils.threads import idle_cores

        _time.sleep(1.0)  # let the neighbour get going before the cores are sampled
        args.threads = max(1, min(2, idle_cores() or 2))
        print(f"--threads auto: {args.threads}", flush=True)
    args.threads = int(args.threads)
    args.autotune = autotune_record(args.threads)  # before the children, so none of them measures inside its timing
    try:
        rows, crossover = run_suite(args, names)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    summarise_suite(args, names, rows, crossover)


def merge_rounds(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """(workload, impl) -> its row with the median seconds over the rounds (tokens/s from that), the largest peak
    RSS, and every round's seconds in round order (``round_seconds``) for paired ratios."""
    by: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "error" not in r:
            by.setdefault((r["workload"], r["impl"]), []).append(r)
    merged = {}
    for key, rs in by.items():
        rs = sorted(rs, key=lambda r: r.get("round", 0))
        sec = statistics.median(r["seconds"] for r in rs)
        merged[key] = {
            **rs[0],
            "seconds": sec,
            "tokens_per_s": rs[0]["batch"] * rs[0]["L"] / sec,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "round_seconds": [r["seconds"] for r in rs],
        }
    return merged


def busy_neighbour() -> subprocess.Popen:
    """A process that spins on the last CPU for as long as it lives: one core of the machine is busy elsewhere."""
    import os

    cpu = max(os.sched_getaffinity(0))
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def run_suite(args, names: list[str]) -> tuple[list[dict], list[dict]]:
    rows = []
    for w in names:
        impls = ["fast", "fast_defaults", "fast_bf16", "reference"]
        impls += ["fast_compile"] if WORKLOADS.get(w, ("", 0, 0, ""))[3] == "train" else []
        impls += ["transformer"] if w in ("tiny1k_b1", "tiny1k_b32", "small32k") else []
        impls += ["reference_reuse"] if w in (args.reference_reuse or []) else []
        impls = list(args.impls) if args.impls else impls
        for rnd in range(args.rounds):  # every other round in reverse order, so drift in the load cancels
            for impl in impls if rnd % 2 == 0 else impls[::-1]:
                r = {**child(w, impl, args.threads), "round": rnd}
                rows.append(r)
                print(json.dumps(r), flush=True)
    crossover = []
    if not args.no_crossover and (args.only is None or not names):
        for length in CROSSOVER_LENGTHS:
            pair = {impl: child(f"crossover_{length}", impl, args.threads, length) for impl in ("fast", "transformer")}
            crossover.append(
                {
                    "L": length,
                    "hyena_tokens_per_s": pair["fast"].get("tokens_per_s"),
                    "transformer_tokens_per_s": pair["transformer"].get("tokens_per_s"),
                }
            )
            print(json.dumps(crossover[-1]), flush=True)
    return rows, crossover


def summarise_suite(args, names: list[str], rows: list[dict], crossover: list[dict]) -> None:
    peak = matmul_peak(args.threads)
    from hyenadna.ops.linear import onednn_available

    # without native bf16 (AVX2-only CPUs) a bf16 2048^3 matmul is emulated and takes minutes: skip the bf16 peak
    peak_bf16 = matmul_peak(args.threads, "bfloat16") if onednn_available(torch_dtype("bfloat16")) else float("nan")
    by = merge_rounds(rows)
    # The matmul floor: the time the projections alone take at the measured peak (the faster of MKL and oneDNN).
    # Reference time / floor is the largest speed-up any implementation that does these matmuls could reach here,
    # with everything else free.
    ceilings = {}
    for w in names:
        r = by.get((w, "reference"))
        if r:
            flops = matmul_flops_per_token(w, r["kind"]) * r["batch"] * r["L"]
            ceilings[w] = {
                "matmul_gflop": flops / 1e9,
                "floor_seconds_fp32": flops / (peak * 1e9),
                "floor_seconds_bf16": flops / (peak_bf16 * 1e9),
                "ceiling_fp32": r["seconds"] / (flops / (peak * 1e9)),
                "ceiling_bf16": r["seconds"] / (flops / (peak_bf16 * 1e9)),
            }
    summary = {
        "threads": args.threads,
        "contended": args.contended,
        "cpu": cpu_name(),
        "cpu_features": cpu_features(),
        "autotune": args.autotune,
        "matmul_peak_gflops": peak,
        "matmul_peak_bf16_gflops": peak_bf16,
        "rows": rows,
        "crossover": crossover,
        "matmul_ceilings": ceilings,
    }
    print(
        f"\n{'workload':16s} {'ours tok/s':>11s} {'bf16 tok/s':>11s} {'ref tok/s':>11s} {'speed-up':>8s} {'bf16':>6s}"
        f" {'ours MB':>8s} {'bf16 MB':>8s} {'ref MB':>8s} {'vs transformer':>14s}"
    )

    def ratio(a, b):
        """b's seconds over a's, round by round (the median of those ratios), where both ran in the same rounds."""
        if not (a and b):
            return "-"
        pairs = [tb / ta for ta, tb in zip(a["round_seconds"], b["round_seconds"], strict=False)]
        return f"{statistics.median(pairs):.2f}x"

    for w in names:
        f, h = by.get((w, "fast")), by.get((w, "fast_bf16"))
        r, t = by.get((w, "reference")), by.get((w, "transformer"))
        if not f:
            continue
        print(
            f"{w:16s} {f['tokens_per_s']:11,.0f} {h['tokens_per_s'] if h else 0:11,.0f} "
            f"{r['tokens_per_s'] if r else 0:11,.0f} {ratio(f, r):>8s} {ratio(h, r):>6s} {f['peak_rss_mb']:8.0f} "
            f"{h['peak_rss_mb'] if h else 0:8.0f} {r['peak_rss_mb'] if r else 0:8.0f} {ratio(f, t):>14s}"
        )
    for w in names:
        c, r = by.get((w, "fast_compile")), by.get((w, "reference"))
        if c:
            print(f"{w:16s} torch.compile: {c['tokens_per_s']:,.0f} tok/s, {ratio(c, r)} the reference")
    for w in names:
        f, d = by.get((w, "fast")), by.get((w, "fast_defaults"))
        if f and d:
            print(f"{w:16s} autotuned / default kernel choices: {ratio(f, d)}")
    for w in names:
        for base in ("fast", "fast_bf16"):
            b, n, e = by.get((w, base)), by.get((w, f"{base}_noreuse")), by.get((w, f"{base}_eager"))
            a = by.get((w, f"{base}_foreach"))
            if b and n:
                print(f"{w:16s} {base}: keeping freed memory between steps / not: {ratio(b, n)}")
            if b and e:
                print(f"{w:16s} {base}: fused elementwise kernels / eager ops: {ratio(b, e)}")
            if b and a:
                print(f"{w:16s} {base}: fused AdamW / torch's default: {ratio(b, a)}")
    for w in names:
        f, h, rr = by.get((w, "fast")), by.get((w, "fast_bf16")), by.get((w, "reference_reuse"))
        if f and rr:
            print(f"{w:16s} vs the reference with freed memory reused too: {ratio(f, rr)} fp32, {ratio(h, rr)} bf16")
    for w in names:
        f, h, rb = by.get((w, "fast")), by.get((w, "fast_bf16")), by.get((w, "reference_bf16"))
        if h and rb:
            print(
                f"{w:16s} both under bf16 autocast: ours {h['tokens_per_s']:,.0f} tok/s, reference "
                f"{rb['tokens_per_s']:,.0f} tok/s, {ratio(h, rb)}; ours bf16 / ours fp32: {ratio(h, f)}"
            )
    if ("tiny1k_b32", "fast") in by:
        gflops = by[("tiny1k_b32", "fast")]["tokens_per_s"] * 0.9e6 / 1e9  # ~0.9 MFLOP per token (perf/REFERENCE.md)
        summary["tiny1k_b32_fraction_of_matmul_peak"] = gflops / peak
        print(
            f"tiny-1k batch 32: ~{gflops:.0f} GFLOP/s = {100 * gflops / peak:.0f}% of the measured fp32 matmul peak "
            f"({peak:.0f} GFLOP/s)"
        )
    print(f"matmul peak: {peak:.0f} GFLOP/s fp32, {peak_bf16:.0f} GFLOP/s bf16")
    for w, c in ceilings.items():
        print(
            f"{w:16s} projections alone at peak: {c['floor_seconds_fp32']:.3g} s fp32 / {c['floor_seconds_bf16']:.3g} s"
            f" bf16 -> highest reachable speed-up {c['ceiling_fp32']:.2f}x fp32, {c['ceiling_bf16']:.2f}x bf16"
        )
    for c in crossover:
        if c["hyena_tokens_per_s"] and c["transformer_tokens_per_s"]:
            print(f"L={c['L']:6d}: Hyena/Transformer = {c['hyena_tokens_per_s'] / c['transformer_tokens_per_s']:.2f}")
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
