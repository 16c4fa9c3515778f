"""Does the long-context model copy from far back when there is something to copy? Held-out NLL of the targets that
follow a repeated k-mer, by how far back its last occurrence is, with the whole window as context and with it cut to
1,024 tokens.

The position bands (long_context_eval.py) average over every target, and most targets have nothing in the far
context that predicts them. A target whose preceding k bases occurred earlier in the window does: the base after that
occurrence is a prediction a model can copy (as an induction head does). If the model uses its long context, its NLL
on the targets whose only earlier occurrence lies beyond the cut is lower with the whole window than with the cut.

    .venv/bin/python benchmarks/repeat_context.py   # ~5 min on one core -> docs/pretraining/tiny-16k-d256/eval/
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from long_context_eval import held_out_windows, load_model  # noqa: E402  the position bands' windows

DISTANCE_EDGES = (1, 64, 256, 1024, 4096, 16384)


def copier_nll(agree: float) -> float:
    """Mean NLL of a model that gives the copied base probability ``agree`` (its hit rate) and the other three bases
    the rest: what copying alone would score on those targets."""
    miss = min(max(1.0 - agree, 1e-12), 1.0)
    return float(-(agree * np.log(max(agree, 1e-12)) + miss * np.log(miss / 3)))


def summarise(rows: dict, distance, copied, target, visible, keep) -> list[dict]:
    """One row per distance bin (and one for targets with no earlier occurrence) of the kept targets."""
    bins = [("no earlier occurrence", distance == 0)]
    bins += [(f"{lo:,}-{hi:,}", (distance >= lo) & (distance < hi)) for lo, hi in itertools.pairwise(DISTANCE_EDGES)]
    out = []
    for label, mask in bins:
        mask = mask & keep
        if not mask.any():
            continue
        row = {"distance": label, "targets": int(mask.sum()), "share": float(mask.sum() / keep.sum())}
        if label != "no earlier occurrence":
            agree = float((copied[mask] == target[mask]).mean())
            row["copy_agrees"] = agree
            row["calibrated_copier"] = copier_nll(agree)
            row["visible_with_cut"] = float(visible[mask].mean())
        row.update({name: float(nll[mask].mean()) for name, nll in rows.items()})
        out.append(row)
    return out


def plot(table: list[dict], names: dict[str, str], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyenadna.utils.io import save_figure

    fig, ax = plt.subplots(figsize=(7.5, 4))
    x = np.arange(len(table))
    for key, label in names.items():
        ax.plot(x, [r[key] for r in table], marker="o", label=label)
    ax.set_xticks(x, [r["distance"] for r in table], rotation=15, fontsize=8)
    ax.set_xlabel("distance back to the last earlier occurrence of the k bases before the target")
    ax.set_ylabel("held-out NLL (nats/base)")
    copies = [(i, r["calibrated_copier"]) for i, r in enumerate(table) if "calibrated_copier" in r]
    ax.plot(*zip(*copies, strict=True), ls="--", color="black", lw=1, label="copying alone (calibrated)")
    ax2 = ax.twinx()
    agree = [r.get("copy_agrees", np.nan) for r in table]
    ax2.bar(x, agree, color="grey", alpha=0.2, width=0.5, label="copying the base after it is right")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("share of targets copying gets right", color="grey")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    bars, bar_labels = ax2.get_legend_handles_labels()
    ax.legend(lines + bars, labels + bar_labels, fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, str(out))


def main() -> None:
    from hyenadna.hub import BUNDLED_MODEL
    from hyenadna.training.context import cut_context_start, repeat_lookup, target_nll
    from hyenadna.utils.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hyenadna-tiny-16k-d256-grch37")
    ap.add_argument("--baseline", default=BUNDLED_MODEL)
    ap.add_argument("--windows", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=16384)
    ap.add_argument("--cut", type=int, default=1024)
    ap.add_argument("-k", type=int, nargs="+", default=[16, 12, 32], help="repeat lengths (the first is plotted)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "docs/pretraining/tiny-16k-d256/eval"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, base = load_model(args.model), load_model(args.baseline)
    (windows,) = held_out_windows((args.windows, args.seq_len + 1))
    t0 = time.perf_counter()
    nll = {
        "model_whole": target_nll(model, windows),
        "model_cut": target_nll(model, windows, context=args.cut),
        "baseline_cut": target_nll(base, windows, context=args.cut),
    }
    seconds = time.perf_counter() - t0
    target = windows[:, 1:]
    j = np.arange(windows.shape[1] - 1)
    position = np.broadcast_to(j + 1, target.shape)
    keep = position > args.cut  # targets whose context the cut shortens
    tables = {}
    for k in args.k:
        lookups = [repeat_lookup(w, k) for w in windows]
        distance = np.stack([d for d, _ in lookups])
        copied = np.stack([c for _, c in lookups])
        # the occurrence's k-mer starts at j - d - k + 1: the cut context shows it when that is at or after its start
        visible = (distance > 0) & (j - distance - k + 1 >= cut_context_start(position, args.cut))
        tables[k] = summarise(nll, distance, copied, target, visible, keep)

    m, b = args.model, args.baseline
    names = {"model_whole": f"{m}, whole window", "model_cut": f"{m}, context cut to {args.cut:,}"}
    names["baseline_cut"] = f"{b}, context cut to {args.cut:,}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = (
        f"{args.windows} held-out windows of {args.seq_len:,} bases, targets past position {args.cut:,},\n"
        f"by the last earlier occurrence of their {args.k[0]} preceding bases"
    )
    plot(tables[args.k[0]], names, out / "repeat_context.png", title)
    report = {
        "model": m,
        "baseline": b,
        "windows": args.windows,
        "seq_len": args.seq_len,
        "cut": args.cut,
        "whole_window_minus_cut": float((nll["model_whole"][keep] - nll["model_cut"][keep]).mean()),
        "seconds": seconds,
        "threads": args.threads,
        "columns": names,
        "rows_by_k": {str(k): rows for k, rows in tables.items()},
    }
    atomic_write_text(out / "repeat_context.json", json.dumps(report, indent=1) + "\n")
    print(
        f"| k | distance | share of targets | copying right | seen with cut | copying alone | "
        f"{' | '.join(names.values())} |"
    )
    for k, r in ((k, r) for k, rows in tables.items() for r in rows):
        agree = f"{100 * r['copy_agrees']:.0f}%" if "copy_agrees" in r else "-"
        seen = f"{100 * r['visible_with_cut']:.0f}%" if "visible_with_cut" in r else "-"
        copier = f"{r['calibrated_copier']:.4f}" if "calibrated_copier" in r else "-"
        print(
            f"| {k} | {r['distance']} | {100 * r['share']:.2f}% | {agree} | {seen} | {copier} | "
            + " | ".join(f"{r[key]:.4f}" for key in names)
            + " |"
        )
    print(f"{seconds:.0f} s")


if __name__ == "__main__":
    main()
