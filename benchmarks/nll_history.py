"""Held-out NLL of a run and its continuation on one token axis (both runs evaluate the same fixed windows), or with
``--side-by-side`` of separate runs, each from its own start (the 1k model's two runs):

    .venv/bin/python benchmarks/nll_history.py docs/pretraining docs/pretraining/tiny-1k-d256-v2 --side-by-side \\
        --labels "the bundled 1k model (fp32, AMD EPYC)" "retrained (bf16, Intel Xeon)" \\
        --out docs/pretraining/tiny-1k-d256-v2/nll_vs_first_run.png

    .venv/bin/python benchmarks/nll_history.py docs/pretraining/tiny-16k-d256 docs/pretraining/tiny-16k-d256-cont \\
        --labels "the bundled 16k model's run (fp32, AMD EPYC)" \\
        "continued: fresh AdamW, peak lr 3e-4, bf16 (Intel Xeon)" --from-step 1200 \\
        --out docs/pretraining/tiny-16k-d256-cont/nll_all_tokens.png

    .venv/bin/python benchmarks/nll_history.py docs/pretraining/tiny-16k-d256-geo16 \\
        docs/pretraining/tiny-16k-d256-geo16/control docs/pretraining/tiny-16k-d256-cont --side-by-side --no-target \\
        --labels "16 geometric bands (AMD EPYC Zen 4)" "control, same machine (AMD EPYC Zen 4)" \\
        "control of the first page (Intel Xeon, AMX)" --out docs/pretraining/tiny-16k-d256-geo16/nll_vs_controls.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def evals(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r["kind"] == "eval"]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyenadna.utils.io import save_figure

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders, each continuing the one before")
    ap.add_argument("--side-by-side", action="store_true", help="separate runs, each from 0 tokens")
    ap.add_argument("--labels", nargs="+")
    ap.add_argument("--from-step", type=int, default=0, help="leave out the first run's evaluations before this step")
    ap.add_argument("--target", type=float, default=1.15)
    ap.add_argument("--no-target", action="store_true", help="no target line (runs evaluated on other windows)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fig, ax = plt.subplots(figsize=(7, 4))
    offset, last = 0, None
    for i, run in enumerate(args.runs):
        rows = [r for r in evals(run) if i > 0 or r["step"] >= args.from_step]
        x = [(offset + r["tokens_seen"]) / 1e6 for r in rows]
        y = [r["nll"] for r in rows]
        if last is not None and not args.side_by_side:  # the continuation starts where the run before it ended
            x, y = [last[0], *x], [last[1], *y]
        label = args.labels[i] if args.labels and i < len(args.labels) else run.name
        ax.plot(x, y, "os"[i % 2] + "-", label=label)
        if not args.side_by_side:
            offset, last = offset + rows[-1]["tokens_seen"], (x[-1], y[-1])
    if not args.no_target:
        ax.axhline(args.target, color="grey", ls="--", lw=1, label="issue #18 target (on the 1k windows)")
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("held-out NLL (nats/base)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
