"""The order of the bases before a + strand acceptor, or their composition? The at-site term of a splice SNV,
log p(ref) - log p(alt) given the last ``--context`` bases (``zero_shot_context.py``), recomputed with those bases
shuffled, all but the last ``--keep`` (so the base before the site stays where it is): each site's bases are shuffled
the same way for its three alleles, ``--shuffles`` times, and the term averaged. Positives and their matched
controls are treated alike. If shuffling brings the trained model's AUROC back toward 0.5, the gap is in the bases'
order; if it stays, their composition carries it. No model but the one named runs; reads a ``scores.csv.gz``.

    python benchmarks/zero_shot_shuffle.py --scores docs/zero_shot/fresh/scores.csv.gz \
        --out docs/zero_shot/fresh/shuffle.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from zero_shot_context import at_site_terms, markov_last_log_p, model_last_log_p
from zero_shot_repeats import emit, interval_cell
from zero_shot_splice import GENOME, REPO, training_markov


def shuffled_context(context: str, keep: int, seed: tuple[int, ...]) -> str:
    """``context`` with all but its last ``keep`` bases in a random order (the same order for the same seed)."""
    head = list(context[: len(context) - keep])
    np.random.default_rng(list(seed)).shuffle(head)
    return "".join(head) + context[len(context) - keep :]


def plus_strand_acceptors(scores: Path):
    """The SNVs of a ``scores.csv.gz`` at acceptors of + strand introns (positives and their controls), and chr20,
    checked against their reference bases."""
    import pandas as pd

    from hyenadna.data.readers import GenomeFasta

    d = pd.read_csv(scores)
    d = d[(d["class"] == "splice_dinucleotide") & (d["site"] == "acceptor") & (d["intron_strand"] == "+")]
    d = d.reset_index(drop=True)
    fasta = GenomeFasta(GENOME, {"20"})
    chrom = fasta.fetch("20", 0, fasta.sizes["20"]).upper()
    if any(chrom[p - 1] != r for p, r in zip(d["pos"], d["ref"], strict=True)):
        raise SystemExit("a reference base does not match the genome: not the scores' genome")
    return d, chrom


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scores", type=Path, default=REPO / "docs" / "zero_shot" / "fresh" / "scores.csv.gz")
    ap.add_argument("--model", default="hyenadna-tiny-1k-d256-grch37")
    ap.add_argument("--context", type=int, default=16)
    ap.add_argument("--keep", type=int, default=2, help="bases right before the site left in place")
    ap.add_argument("--shuffles", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from hyenadna import CharacterTokenizer
    from hyenadna.hub import resolve_weights
    from hyenadna.models.hyena_dna import load_model

    d, chrom = plus_strand_acceptors(args.scores)
    tok = CharacterTokenizer()
    rows = list(d.itertuples())
    markov, selected = training_markov()
    scorers = (model_last_log_p(load_model(resolve_weights(args.model)), tok, 64), markov_last_log_p(markov, tok))

    def terms(shuffle: int | None) -> np.ndarray:
        """(SNVs, 2): the at-site term of the model and of the Markov model."""
        reorder = None if shuffle is None else (lambda c, pos: shuffled_context(c, args.keep, (shuffle, int(pos))))
        return np.stack([at_site_terms(f, chrom, rows, args.context, reorder) for f in scorers], axis=1)

    intact = terms(None)
    shuffled = np.mean([terms(k) for k in range(args.shuffles)], axis=0)
    labels, pairs = d["label"].to_numpy(), d["pair"].to_numpy()
    names = (args.model, f"order-{selected['order']} Markov")
    lines = [
        f"AUROC of the at-site term at + strand acceptors ({len(np.unique(pairs))} pairs of `{args.scores.name}`), "
        f"given the last {args.context} bases before the site: as in the genome, and with all but the last "
        f"{args.keep} shuffled (the term averaged over {args.shuffles} shuffles; `benchmarks/zero_shot_shuffle.py`).",
        "",
        "| scorer | bases in order | shuffled |",
        "|---|---|---|",
    ]
    for k, name in enumerate(names):
        cells = [interval_cell(labels, t[:, k], pairs) for t in (intact, shuffled)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
