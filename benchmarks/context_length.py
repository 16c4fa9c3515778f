"""How much context does each model use? Held-out NLL of the targets far into long windows, with the context cut to
C tokens for C from 16 up to the whole window.

The position bands (long_context_eval.py) compare two contexts, the whole window and 1,024 tokens. This sweeps the
cut: where the curve stops falling is how far back the model reads. Every model scores the same targets (positions
``--from`` to the end of each window), so the curves are comparable, and a model whose l_max is shorter than the
window is swept only up to its l_max. With a cut C a target sees between C/2 and C tokens (``target_nll``).

    .venv/bin/python benchmarks/context_length.py --out docs/pretraining/context_length   # ~21 min on 2 cores

Writes ``context_length.json``, ``context_length.md`` and ``context_length.png`` into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from long_context_eval import held_out_windows, load_model  # the position bands' windows, the same loading

MODELS = ("hyenadna-tiny-1k-d256-grch37", "hyenadna-tiny-16k-d256-grch37", "hyenadna-16k-d256-l3-grch37")
CUTS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
TOKENS_PER_CALL = 65536  # pieces of a short cut are batched across windows up to about this many tokens


def l_max(model) -> int:
    return model.config.l_max


def sweep(model, windows: np.ndarray, first: int, cuts: list[int | None]) -> dict:
    """Per window, the mean NLL of targets ``first``.. for each cut (None: the whole window)."""
    from hyenadna.training.context import target_nll

    out = {}
    for c in cuts:
        t0 = time.perf_counter()
        key = "whole" if c is None else str(c)
        batch = max(1, TOKENS_PER_CALL // (windows.shape[1] if c is None else c + 1))
        nll = target_nll(model, windows, batch_size=batch, context=c)  # (N, T-1); column j is position j + 1
        out[key] = nll[:, first - 1 :].mean(1)
        print(f"  cut {key}: {out[key].mean():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def plot(results: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyenadna.utils.io import save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        xs = [int(k) if k != "whole" else r["window"] for k in r["mean"]]
        ax.plot(xs, list(r["mean"].values()), marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context cut to C tokens (each target sees C/2 to C; last point: the whole window)")
    ax.set_ylabel("held-out NLL (nats/base)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, str(out))


def main() -> None:
    from hyenadna.utils.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="names or folders")
    ap.add_argument("--windows", type=int, default=32, help="held-out windows (the position bands' 32)")
    ap.add_argument("--seq-len", type=int, default=16384)
    ap.add_argument("--from", dest="first", type=int, default=4096, help="score targets from this position on")
    ap.add_argument("--cuts", type=int, nargs="+", default=list(CUTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 1 <= args.first <= args.seq_len:
        ap.error(f"--from {args.first}: give a target position from 1 to --seq-len ({args.seq_len})")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    (windows,) = held_out_windows((args.windows, args.seq_len + 1))
    results = {}
    t0 = time.perf_counter()
    for m in args.models:
        model = load_model(m, args.device)
        reach = l_max(model)
        cuts = [c for c in sorted(args.cuts) if c <= reach]  # the model reads c tokens a piece (as `evaluate`)
        if reach >= windows.shape[1] - 1:
            cuts.append(None)
        label = m  # a name, or the folder as given (a run's folder is often just "model")
        print(f"{label} (l_max {reach:,}):", flush=True)
        per_window = sweep(model, windows, args.first, cuts)
        ref = per_window["whole"] if "whole" in per_window else per_window[str(max(c for c in cuts if c))]
        results[label] = {
            "l_max": reach,
            "window": args.seq_len,
            "mean": {k: float(v.mean()) for k, v in per_window.items()},
            # paired over windows: the cut's NLL minus the longest context's, and its standard error
            "minus_longest": {k: float((v - ref).mean()) for k, v in per_window.items()},
            "minus_longest_se": {k: float((v - ref).std(ddof=1) / np.sqrt(len(v))) for k, v in per_window.items()},
        }
    seconds = time.perf_counter() - t0

    cols = [str(c) for c in sorted(args.cuts)] + ["whole"]
    head = "| model | " + " | ".join(f"{int(c):,}" if c != "whole" else "whole window" for c in cols) + " |"
    lines = [head, "|---|" + "---|" * len(cols)]
    for label, r in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{r['mean'][c]:.4f}" if c in r["mean"] else "" for c in cols) + " |")
    lines += [
        "",
        "Minus the longest context each model takes (the whole window; for a model whose l_max is shorter, its "
        "longest cut), in thousandths of a nat/base, paired over windows (mean ± standard error):",
        "",
        head,
        "|---|" + "---|" * len(cols),
    ]
    for label, r in results.items():
        cells = [
            f"{1000 * r['minus_longest'][c]:+.1f} ± {1000 * r['minus_longest_se'][c]:.1f}" if c in r["mean"] else ""
            for c in cols
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    windows_text = f"{args.windows} held-out windows of {args.seq_len + 1:,} bases (chr20:32-63 Mb)"
    title = f"{windows_text}, targets at positions {args.first:,}+"
    table = (
        f"NLL (nats/base) of the targets at positions {args.first:,}-{args.seq_len:,} of {windows_text}, with the "
        "context cut to C tokens (each target sees C/2 to C) and with the whole window "
        f"(`benchmarks/context_length.py`, {seconds:.0f} s on {args.threads} threads):\n\n"
    )
    atomic_write_text(out / "context_length.md", table + "\n".join(lines) + "\n")
    report = {
        "windows": args.windows,
        "seq_len": args.seq_len,
        "first_target": args.first,
        "cuts": sorted(args.cuts),
        "seconds": seconds,
        "threads": args.threads,
        "models": results,
    }
    atomic_write_text(out / "context_length.json", json.dumps(report, indent=1) + "\n")
    plot(results, out / "context_length.png", title)
    print(table + "\n".join(lines))


if __name__ == "__main__":
    main()
