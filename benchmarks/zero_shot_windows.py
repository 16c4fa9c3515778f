"""Does a longer ``vep`` window change a model's zero-shot splice scores? Two runs of ``zero_shot_splice.py`` on the
same draw (same seed and exclusions, so the same matched pairs) that differ only in ``--window``: the AUROC of each
model's -LLR at each window, by class (all splice dinucleotides, donors, acceptors), and the paired difference,
longer minus shorter, with a 95% interval over the same resampled pairs.

    python benchmarks/zero_shot_splice.py --seed 3 --positions 1600 --other-positions 0 --exclude \\
        docs/zero_shot/variants.vcf docs/zero_shot/fresh/variants.vcf docs/zero_shot/third/variants.vcf \\
        --models hyenadna-16k-d256-l3-grch37 --window 4096 --out /tmp/w4096      # and --window 512
    python benchmarks/zero_shot_windows.py /tmp/w512 /tmp/w4096 --out docs/zero_shot/windows/results.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from zero_shot_repeats import emit, pair_resamples

KEYS = ["pos", "ref", "alt", "label", "pair", "site"]


def paired_runs(short: Path, long: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' scores, row for row; an error unless they hold the same SNVs in the same pairs."""
    a, b = (pd.read_csv(p / "scores.csv.gz") for p in (short, long))
    if len(a) != len(b) or not a[KEYS].equals(b[KEYS]):
        raise SystemExit(f"{short} and {long} do not hold the same matched pairs: run both on the same draw")
    return a, b


def auroc_change(labels, short, long, pairs, draws: int = 300) -> tuple[float, float, float, float, float]:
    """AUROC of each score and the longer minus the shorter, with its 95% interval over the same pair resamples."""
    diffs = [
        roc_auc_score(labels[t], long[t]) - roc_auc_score(labels[t], short[t]) for t in pair_resamples(pairs, draws)
    ]
    a, b = roc_auc_score(labels, short), roc_auc_score(labels, long)
    return a, b, b - a, *np.percentile(diffs, [2.5, 97.5])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("short", type=Path, help="zero_shot_splice.py output folder, the shorter --window")
    ap.add_argument("long", type=Path, help="... the longer --window, same draw")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    a, b = paired_runs(args.short, args.long)
    windows = [json.loads((p / "results.json").read_text())["window"] for p in (args.short, args.long)]
    columns = [c for c in a.columns if c.startswith("minus_llr ") and c in b.columns]  # the scorers both ran
    lines = [
        f"AUROC of -LLR with `vep` windows of {windows[0]} and {windows[1]} bases, the same {a['pair'].nunique()} "
        "matched pairs (`benchmarks/zero_shot_windows.py`); the change is the longer window's minus the shorter's, "
        "95% interval over 300 resamples of pairs.",
        "",
        f"| scorer | class | {windows[0]} | {windows[1]} | change |",
        "|---|---|---|---|---|",
    ]
    for col in columns:
        for name, rows in (("splice dinucleotide", slice(None)), ("donor", "donor"), ("acceptor", "acceptor")):
            take = np.ones(len(a), bool) if rows == slice(None) else (a["site"] == rows).to_numpy()
            lab, pairs = a["label"].to_numpy()[take], a["pair"].to_numpy()[take]
            s, lo_, d, lo, hi = auroc_change(lab, a[col].to_numpy()[take], b[col].to_numpy()[take], pairs)
            lines.append(
                f"| {col.removeprefix('minus_llr ')} | {name} | {s:.3f} | {lo_:.3f} | {d:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
            )
    emit(lines, args.out)


if __name__ == "__main__":
    main()
