"""Zero-shot splice SNVs split by which base of the dinucleotide they hit: the donor's G (+1) and T (+2), the
acceptor's A (-2) and G (-1), each by the intron's strand (a forward-reading model meets a + strand acceptor's A
right after the polypyrimidine tract, and a - strand one's from the exon's side). Reads a ``scores.csv.gz`` that
``zero_shot_splice.py`` wrote; no model runs. Each positive's control has the same reference base (the matching
keeps the trinucleotide), so every cell is a matched comparison.

    python benchmarks/zero_shot_by_base.py --scores docs/zero_shot/models/scores.csv.gz \
        --out docs/zero_shot/models/by_base.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zero_shot_repeats import emit, interval_cell

REPO = Path(__file__).resolve().parents[1]
COMPLEMENT = str.maketrans("ACGT", "TGCA")
# (site, base as the transcript reads it) -> its place in the intron
PLACE = {("donor", "G"): "+1", ("donor", "T"): "+2", ("acceptor", "A"): "-2", ("acceptor", "G"): "-1"}


def cells(d) -> list[tuple[str, object]]:
    """(label, rows) for each site, intron strand and dinucleotide base, in reading order."""
    d = d[d["class"] == "splice_dinucleotide"]
    base = d["ref"].where(d["intron_strand"] == "+", d["ref"].map(lambda b: b.translate(COMPLEMENT)))
    out = []
    for site in ("donor", "acceptor"):
        for strand in ("+", "-"):
            for b in "GT" if site == "donor" else "AG":
                rows = d[(d["site"] == site) & (d["intron_strand"] == strand) & (base == b)]
                if len(rows):
                    out.append((f"{site} {PLACE[site, b]} ({b}), {strand} strand intron", rows))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scores", type=Path, default=REPO / "docs" / "zero_shot" / "models" / "scores.csv.gz")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import pandas as pd

    d = pd.read_csv(args.scores)
    scorers = [c for c in d.columns if c.startswith("minus_llr ") and "control" not in c]
    lines = [
        f"AUROC of -LLR [95% interval over matched pairs] by the dinucleotide base, from `{args.scores.name}` "
        "(`benchmarks/zero_shot_by_base.py`; no model run).",
        "",
        "| site, base (intron strand) | pairs | " + " | ".join(s.removeprefix("minus_llr ") for s in scorers) + " |",
        "|---|---|" + "---|" * len(scorers),
    ]
    for label, rows in cells(d):
        out = [interval_cell(rows["label"].to_numpy(), rows[s].to_numpy(), rows["pair"].to_numpy()) for s in scorers]
        lines.append(f"| {label} | {rows['pair'].nunique()} | " + " | ".join(out) + " |")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
