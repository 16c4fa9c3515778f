"""Draw a ``hyenadna score --track`` bedGraph with the annotated exons of its region (docs/tracks/).

python benchmarks/plot_track.py docs/tracks/CBFA2T2.bedgraph docs/tracks/CBFA2T2.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ANNOTATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "annotation"


def main(bedgraph: str, png: str, smooth: int = 50) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pd.read_csv(bedgraph, sep="\t", header=None, names=["chrom", "start", "end", "value"])
    chrom = rows.chrom[0]
    lo, hi = int(rows.start.min()), int(rows.end.max())
    values = np.full(hi - lo, np.nan)
    values[rows.start - lo] = rows.value
    kernel = np.ones(smooth) / smooth
    smoothed = np.convolve(np.nan_to_num(values, nan=np.nanmean(values)), kernel, mode="same")
    exons = pd.read_parquet(ANNOTATION / "exons.parquet")
    exons = exons[(exons._labels == ("chr" + chrom.removeprefix("chr"))) & (exons._ends > lo) & (exons._starts <= hi)]
    fig, ax = plt.subplots(figsize=(11, 3.4), constrained_layout=True)
    x = np.arange(lo, hi) + 1
    ax.plot(x, values, lw=0.3, color="0.75", label="log P(base | left context), per base")
    ax.plot(x, smoothed, lw=1.2, color="C0", label=f"mean of {smooth} bases")
    for i, (s, e) in enumerate(zip(exons._starts, exons._ends, strict=True)):
        ax.axvspan(max(s, lo), min(e, hi), color="C3", alpha=0.25, lw=0, label="annotated exon" if i == 0 else None)
    ax.set_xlim(lo + 1, hi)
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.set_ylim(-4, 0)
    ax.set_xlabel(f"{chrom} position (1-based)")
    ax.set_ylabel("nats")
    ax.legend(loc="lower left", fontsize=7, ncol=3)
    ax.set_title(f"Likelihood track, {chrom}:{lo:,}-{hi:,} (both strands, bundled 1k model)", fontsize=10)
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
