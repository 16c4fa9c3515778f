"""Is one model's held-out NLL lower than another's by more than the choice of windows explains? Both models score
the same windows, and the difference is paired window by window (mean ± standard error), on the cards' 256 windows
of 1,025 bases and on the position bands' 32 of 16,385 (the whole window as context; a model whose l_max is shorter
is not scored on them). The standard error covers the windows, not the training run: a second seed answers that.

    .venv/bin/python benchmarks/paired_nll.py --pairs docs/pretraining/tiny-16k-d256-geo16/model \\
        /work/runs/tiny-16k-d256-ctrl-zen4/model --labels "16k 2-layer, seed 1" --out /tmp/paired   # ~1 min

(docs/pretraining/tiny-16k-d256-geo16/README.md gives the command behind its committed table, six pairs.)

Writes ``paired_nll.json`` and ``paired_nll.md`` into --out.
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

from context_length import sweep  # per-window means, batched across windows
from long_context_eval import held_out_windows, load_model  # the cards' windows, the same loading

WINDOW_SETS = {"1k": (256, 1025), "16k": (32, 16385)}


def window_nll(model, windows: np.ndarray) -> np.ndarray:
    """Each window's mean NLL over all its targets, the whole window as context."""
    return sweep(model, windows, first=1, cuts=[None])["whole"]


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    d = a - b
    return {
        "a": float(a.mean()),
        "b": float(b.mean()),
        "a_minus_b": float(d.mean()),
        "se": float(d.std(ddof=1) / np.sqrt(len(d))),
        "a_lower_in": int((d < 0).sum()),
        "windows": len(d),
    }


def main() -> None:
    from hyenadna.utils.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", nargs="+", required=True, help="models (names or folders) in pairs: A1 B1 A2 B2 ...")
    ap.add_argument("--labels", nargs="+", help="one label per pair")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("--pairs takes an even number of models: A1 B1 A2 B2 ...")
    pairs = list(zip(args.pairs[::2], args.pairs[1::2], strict=True))
    labels = args.labels or [f"{a} - {b}" for a, b in pairs]
    if len(labels) != len(pairs):
        ap.error(f"--labels: give one per pair ({len(pairs)})")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    windows = dict(zip(WINDOW_SETS, held_out_windows(*WINDOW_SETS.values()), strict=True))
    scores: dict[str, dict[str, np.ndarray]] = {}
    t0 = time.perf_counter()
    for m in dict.fromkeys(args.pairs):  # each model once, in order
        model = load_model(m, args.device)
        scores[m] = {}
        for name, w in windows.items():
            if model.config.l_max >= w.shape[1] - 1:
                scores[m][name] = window_nll(model, w)
                print(f"{m}: {name} windows {scores[m][name].mean():.4f}", flush=True)
    seconds = time.perf_counter() - t0

    results = []
    for label, (a, b) in zip(labels, pairs, strict=True):
        row = {"label": label, "a": a, "b": b}
        for name in windows:
            if name in scores[a] and name in scores[b]:
                row[name] = paired(scores[a][name], scores[b][name])
        results.append(row)
    report = {"window_sets": WINDOW_SETS, "seconds": seconds, "threads": args.threads, "pairs": results}
    atomic_write_text(out / "paired_nll.json", json.dumps(report, indent=1) + "\n")

    lines = [
        "Held-out NLL (nats/base) of model A and model B on the same windows (chr20:32-63 Mb; all targets, the whole "
        "window as context), and A minus B paired over windows in thousandths of a nat/base (mean ± standard error; "
        f"windows where A is lower) (`benchmarks/paired_nll.py`, {seconds:.0f} s on {args.threads} threads):",
        "",
        "| pair | windows | A | B | A - B (thousandths) | A lower in |",
        "|---|---|---|---|---|---|",
    ]
    for row in results:
        for name, (count, length) in WINDOW_SETS.items():
            if name in row:
                r = row[name]
                lines.append(
                    f"| {row['label']} | {count} x {length:,} | {r['a']:.4f} | {r['b']:.4f} | "
                    f"{1000 * r['a_minus_b']:+.2f} ± {1000 * r['se']:.2f} | {r['a_lower_in']} of {count} |"
                )
    lines += ["", "A and B of each pair:", ""] + [
        f"- {row['label']}: A `{row['a']}`, B `{row['b']}`" for row in results
    ]
    atomic_write_text(out / "paired_nll.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
