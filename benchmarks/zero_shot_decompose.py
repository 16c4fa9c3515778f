"""Where a zero-shot splice score comes from: the -LLR of each SNV in `docs/zero_shot/models/scores.csv.gz` split into
the variant's own position and the positions after it (a causal model's positions before it cannot move), beside two
things matching did not control: the reference base's log-probability at the site, and the pyrimidine fraction of
the 20 bases before it (the polypyrimidine tract ahead of an acceptor).

    .venv/bin/python benchmarks/zero_shot_decompose.py --out docs/zero_shot/models/decompose.md   # ~1 min

The parts are summed from the per-position log-probabilities `hyenadna vep` sums (`vep.window_log_probs`; checked:
they add up to the saved score to 1e-5).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hyenadna.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
GENOME = REPO.parent / "shared" / "data" / "genome" / "GRCh37_chr20.fa.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scores", type=Path, default=REPO / "docs" / "zero_shot" / "models" / "scores.csv.gz")
    ap.add_argument("--model", default="hyenadna-tiny-1k-d256-grch37")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from hyenadna import CharacterTokenizer
    from hyenadna.data.readers import GenomeFasta
    from hyenadna.hub import resolve_weights
    from hyenadna.models.hyena_dna import load_model
    from hyenadna.vep import Variant, variant_windows, window_log_probs

    d = pd.read_csv(args.scores)
    d = d[d["class"] == "splice_dinucleotide"].reset_index(drop=True)
    fasta = GenomeFasta(GENOME, {"20"})
    chrom = fasta.fetch("20", 0, fasta.sizes["20"]).upper()
    tok = CharacterTokenizer()
    model = load_model(resolve_weights(args.model))
    windows = [
        variant_windows(Variant(0, "20", int(r.pos), "", r.ref, [r.alt]), r.alt, fasta, args.window)
        for r in d.itertuples()
    ]
    unique = list(dict.fromkeys(w for ref, alt, _ in windows for w in (ref, alt)))
    index = {w: i for i, w in enumerate(unique)}
    lps = [np.asarray(lp[0]) for lp in window_log_probs(model, tok, unique, batch_size=16)[0]]
    at, after, ref_lp = [], [], []
    for ref, alt, offset in windows:
        diff = lps[index[ref]] - lps[index[alt]]  # -LLR per position
        at.append(diff[offset])
        after.append(np.nansum(diff[offset + 1 :]))
        ref_lp.append(lps[index[ref]][offset])
    d["at the site"], d["after it"], d["ref log p"] = at, after, ref_lp
    saved = d[f"minus_llr {args.model}"]
    gap = float(np.abs(d["at the site"] + d["after it"] - saved).max())
    if gap > 1e-4:
        raise SystemExit(f"the parts miss the saved score by up to {gap:.2g}: not the windows that were scored")
    d["pyrimidines before"] = [
        sum(chrom[p - 21 : p - 1].count(b) for b in "CT") / 20 for p in d["pos"]
    ]  # the 20 bases left of the site
    lines = [
        f"Splice-dinucleotide SNVs, {args.model}, {args.window}-base windows (`benchmarks/zero_shot_decompose.py`).",
        "",
        "| site | SNVs (positives / controls) | AUROC: whole -LLR | at the site | after it | mean -LLR at the site, "
        "positives / controls | reference base's log p at the site, positives / controls | pyrimidine fraction of "
        "the 20 bases before, positives / controls |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for site in ("donor", "acceptor"):
        s = d[d["site"] == site]
        pos, ctl = s[s["label"] == 1], s[s["label"] == 0]
        parts = {"whole": s["at the site"] + s["after it"], "at": s["at the site"], "after": s["after it"]}
        auc = {k: roc_auc_score(s["label"], v) for k, v in parts.items()}
        lines.append(
            f"| {site} | {len(pos)} / {len(ctl)} | {auc['whole']:.3f} | {auc['at']:.3f} | {auc['after']:.3f} | "
            f"{pos['at the site'].mean():.3f} / {ctl['at the site'].mean():.3f} | "
            f"{pos['ref log p'].mean():.3f} / {ctl['ref log p'].mean():.3f} | "
            f"{pos['pyrimidines before'].mean():.3f} / {ctl['pyrimidines before'].mean():.3f} |"
        )
    text = "\n".join(lines) + f"\n\nThe parts add up to the saved scores to {gap:.1g}.\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
