"""Are the zero-shot splice scores below 0.5 because the controls sit in repeats? Each SNV's surroundings are scored for
how repeated they are in the genome: the share of the 16-mers around the site (either strand) that occur at least
``--copies`` times in all of the shared DNA (chr20 and chrX 0-70 Mb). The genome files are upper case, so there is
no RepeatMasker track to read; 16-mers are specific enough (a random 16-mer is expected 0.03 times in 133 Mb) that
repeated ones mark interspersed repeats and duplications. The controls were matched for trinucleotide, the
order-12 Markov model's local predictability and GC, none of which sees a repeat's copies elsewhere, which a trained
model has learnt from.

    .venv/bin/python benchmarks/zero_shot_repeats.py --out docs/zero_shot/models/repeats.md   # ~3 min, 4 GB

Reads `docs/zero_shot/models/scores.csv.gz` (every model's -LLR of every matched SNV; no model is run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hyenadna.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
GENOME = REPO.parent / "shared" / "data" / "genome"
K = 16
HELD_OUT = (32_000_100, 63_025_420)  # chr20, 1-based positions with room for the flank
CODE = np.full(256, 255, dtype=np.uint8)
for i, b in enumerate(b"ACGT"):
    CODE[b] = i


def canonical_kmers(seq: str) -> tuple[np.ndarray, np.ndarray]:
    """Every K-mer of ``seq`` as the smaller of its 2-bit code and its reverse complement's, and whether it is free
    of N (or any other non-ACGT base)."""
    b = CODE[np.frombuffer(seq.encode(), dtype=np.uint8)]
    bad = b == 255
    b = np.where(bad, 0, b).astype(np.uint32)
    n = len(b) - K + 1
    fwd = np.zeros(n, dtype=np.uint32)
    rev = np.zeros(n, dtype=np.uint32)
    for i in range(K):
        fwd = (fwd << 2) | b[i : i + n]
        rev |= (3 - b[i : i + n]) << (2 * i)  # the complement of base i is base K-1-i of the reverse complement
    clean = np.convolve(bad, np.ones(K, dtype=np.int64), mode="valid") == 0
    return np.minimum(fwd, rev), clean


def kmer_counts(seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct canonical K-mers of ``seqs`` (sorted) and how often each occurs."""
    parts = []
    for s in seqs:
        codes, clean = canonical_kmers(s)
        parts.append(codes[clean])
    return np.unique(np.concatenate(parts), return_counts=True)


def repeated_share(chrom: str, keys: np.ndarray, counts: np.ndarray, pos: int, flank: int, copies: int) -> float:
    """The share of the K-mers starting within ``flank`` bases of 1-based ``pos`` that occur ``copies`` or more
    times."""
    codes, clean = canonical_kmers(chrom[pos - 1 - flank : pos + flank])
    codes = codes[clean]
    at = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
    n = np.where(keys[at] == codes, counts[at], 0)
    return float(np.mean(n >= copies)) if len(n) else float("nan")


def pair_resamples(pairs: np.ndarray, draws: int = 300):
    """Row indices of ``draws`` bootstrap resamples of matched pairs, each pair's rows kept together (seeded)."""
    rng = np.random.default_rng(0)
    ids = np.unique(pairs)
    rows = {p: np.flatnonzero(pairs == p) for p in ids}
    for _ in range(draws):
        yield np.concatenate([rows[p] for p in rng.choice(ids, len(ids))])


def auroc_interval(labels: np.ndarray, scores: np.ndarray, pairs: np.ndarray, draws: int = 300) -> tuple:
    """AUROC and a 95% bootstrap interval over matched pairs."""
    from sklearn.metrics import roc_auc_score

    stats = [roc_auc_score(labels[take], scores[take]) for take in pair_resamples(pairs, draws)]
    return roc_auc_score(labels, scores), *np.percentile(stats, [2.5, 97.5])


def interval_cell(labels: np.ndarray, scores: np.ndarray, pairs: np.ndarray) -> str:
    """A table cell: the AUROC and its 95% interval over matched pairs."""
    auc, lo, hi = auroc_interval(labels, scores, pairs)
    return f"{auc:.3f} [{lo:.3f}, {hi:.3f}]"


def emit(lines: list[str], out: Path | None) -> None:
    """Print a report and, with ``out``, write it there atomically."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        atomic_write_text(out, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scores", type=Path, default=REPO / "docs" / "zero_shot" / "models" / "scores.csv.gz")
    ap.add_argument("--flank", type=int, default=64, help="bases either side of the site whose 16-mers are counted")
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--unique-below", type=float, default=0.05, help="a site is unique below this repeated share")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import pandas as pd

    from hyenadna.data.readers import GenomeFasta

    genome = {
        "20": GenomeFasta(GENOME / "GRCh37_chr20.fa.gz", {"20"}),
        "X": GenomeFasta(GENOME / "GRCh37_chrX_0-70Mb.fa.gz", {"X"}),
    }
    seqs = {c: f.fetch(c, 0, f.sizes[c]).upper() for c, f in genome.items()}
    keys, counts = kmer_counts(list(seqs.values()))
    d = pd.read_csv(args.scores)
    sites = d.drop_duplicates("pos")[["pos"]].copy()
    sites["repeated"] = [repeated_share(seqs["20"], keys, counts, p, args.flank, args.copies) for p in sites["pos"]]
    d = d.merge(sites, on="pos")
    scorers = [c for c in d.columns if c.startswith("minus_llr ")]
    d["unique pair"] = d.groupby(["class", "pair"])["repeated"].transform("max") < args.unique_below

    lines = [
        f"Share of the {K}-mers within {args.flank} bases of each site (either strand) that occur {args.copies} or "
        f"more times in chr20 + chrX 0-70 Mb; a pair is unique where both sites are below {args.unique_below} "
        "(`benchmarks/zero_shot_repeats.py`).",
        "",
        "| class | pairs | repeated share, positives / controls | sites in repeats (share >= 0.5), positives / "
        "controls | unique pairs |",
        "|---|---|---|---|---|",
    ]
    classes = [("splice_dinucleotide", None), ("splice_dinucleotide", "donor"), ("splice_dinucleotide", "acceptor")]
    classes += [(c, None) for c in d["class"].unique() if c != "splice_dinucleotide"]

    def subset(cls, site):
        s = d[d["class"] == cls]
        return s if site is None else s[s["site"] == site]

    # the yardstick: random held-out positions (about half of human DNA is annotated repeat; exact 16-mers catch
    # the younger, less diverged copies)
    rng = np.random.default_rng(0)
    background = np.array(
        [
            repeated_share(seqs["20"], keys, counts, int(p), args.flank, args.copies)
            for p in rng.integers(*HELD_OUT, 3000)
        ]
    )
    background = background[~np.isnan(background)]  # N runs
    lines.append(
        f"| random held-out positions (seed 0) | {len(background)} sites | {background.mean():.3f} | "
        f"{(background >= 0.5).mean():.1%} | |"
    )
    for cls, site in classes:
        s = subset(cls, site)
        pos, ctl = s[s["label"] == 1], s[s["label"] == 0]
        lines.append(
            f"| {site or cls} | {s['pair'].nunique()} | {pos['repeated'].mean():.3f} / {ctl['repeated'].mean():.3f} "
            f"| {(pos['repeated'] >= 0.5).mean():.1%} / {(ctl['repeated'] >= 0.5).mean():.1%} | "
            f"{s.loc[s['unique pair'], 'pair'].nunique()} |"
        )
    lines += [
        "",
        "AUROC of -LLR (95% interval over matched pairs), all pairs and unique pairs only:",
        "",
        "| scorer | " + " | ".join(f"{site or cls}: all / unique" for cls, site in classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for col in scorers:
        cells = []
        for cls, site in classes:
            s = subset(cls, site)
            u = s[s["unique pair"]]
            a = interval_cell(s["label"].to_numpy(), s[col].to_numpy(), s["pair"].to_numpy())
            b = interval_cell(u["label"].to_numpy(), u[col].to_numpy(), u["pair"].to_numpy())
            cells.append(f"{a} / {b}")
        lines.append(f"| {col.removeprefix('minus_llr ')} | " + " | ".join(cells) + " |")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
