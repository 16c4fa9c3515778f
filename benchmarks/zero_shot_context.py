"""How far back does the zero-shot splice gap come from? The -LLR of a splice SNV is mostly the variant's own position
(`zero_shot_decompose.py`): log p(reference base) - log p(alternative base) at the site, given what precedes it. Here
that term is recomputed with the context cut to the last ``c`` bases before the site, for c from 4 to 256 (the
256 bases `vep`'s 512-base windows give it), beside the order-12 Markov model given the same bases. If the models'
acceptor AUROC sits near the Markov model's at 12 bases and falls as the context grows, the gap is built from what
they read further back; if it is already low at 12 bases, it is in how they read the nearest ones.

    .venv/bin/python benchmarks/zero_shot_context.py --out docs/zero_shot/context   # 59 min on 2 cores beside 3 jobs

Reads the matched splice-dinucleotide SNVs of `docs/zero_shot/models/scores.csv.gz` (``--scores``: another run's,
such as the fresh draw's); writes results.md, results.csv and context.png. ``--contexts 4 12 32 256`` runs a
subset. Checked on the way: at 256 bases the bundled model's term equals the one read from the full
512-base windows `vep` scores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from zero_shot_repeats import auroc_interval
from zero_shot_splice import GENOME, REPO, training_markov

from hyenadna.utils.io import atomic_write_text, save_figure

CONTEXTS = (4, 8, 12, 16, 24, 32, 64, 128, 256)
MODELS = ("hyenadna-tiny-1k-d256-grch37", "hyenadna-16k-d256-l3-grch37")
GROUPS = {  # (site, intron strand or None for both): a model reading the + strand meets a '-' intron's sites reversed
    "donor": ("donor", None),
    "acceptor": ("acceptor", None),
    "acceptor, + intron": ("acceptor", "+"),
    "acceptor, - intron": ("acceptor", "-"),
}


def at_site_terms(score_windows, chrom: str, rows, context: int, reorder=None) -> np.ndarray:
    """log p(ref) - log p(alt) of each SNV's site given the ``context`` bases before it (1-based ``pos``):
    ``score_windows(windows)`` returns each window's log p of its last base. ``reorder(bases, pos)``, if given,
    rewrites each SNV's context first (``zero_shot_shuffle.py``)."""
    ctxs = [chrom[r.pos - 1 - context : r.pos - 1] for r in rows]
    if reorder is not None:
        ctxs = [reorder(c, r.pos) for c, r in zip(ctxs, rows, strict=True)]
    refs = [c + r.ref for c, r in zip(ctxs, rows, strict=True)]
    alts = [c + r.alt for c, r in zip(ctxs, rows, strict=True)]
    unique = list(dict.fromkeys(refs + alts))
    last = dict(zip(unique, score_windows(unique), strict=True))
    return np.array([last[a] - last[b] for a, b in zip(refs, alts, strict=True)])


def markov_last_log_p(markov, tok):
    """``score_windows`` for the Markov model: each window's log p of its last base."""

    def score(windows: list[str]) -> list[float]:
        wins = np.stack([tok.encode_bases(w) for w in windows]).astype(np.int64)
        return markov.log_probs(wins)[:, -1].tolist()

    return score


def model_last_log_p(model, tok, batch_size: int = 32):
    """``score_windows`` for a network, as ``vep`` scores windows."""
    from hyenadna.vep import window_log_probs

    def score(windows: list[str]) -> list[float]:
        return [float(lp[0][-1]) for lp in window_log_probs(model, tok, windows, batch_size=batch_size)[0]]

    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scores", type=Path, default=REPO / "docs" / "zero_shot" / "models" / "scores.csv.gz")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--contexts", type=int, nargs="+", default=list(CONTEXTS), help="bases of context (256: checked)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.time()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from hyenadna import CharacterTokenizer
    from hyenadna.data.readers import GenomeFasta
    from hyenadna.hub import resolve_weights
    from hyenadna.models.hyena_dna import load_model
    from hyenadna.vep import Variant, variant_windows, window_log_probs

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)

    d = pd.read_csv(args.scores)
    d = d[d["class"] == "splice_dinucleotide"].reset_index(drop=True)
    fasta = GenomeFasta(GENOME, {"20"})
    chrom = fasta.fetch("20", 0, fasta.sizes["20"]).upper()
    rows = list(d.itertuples())
    if any(chrom[r.pos - 1] != r.ref for r in rows):
        raise SystemExit("a reference base does not match the genome: not the scores' genome")
    tok = CharacterTokenizer()
    terms: dict[tuple[str, int], np.ndarray] = {}

    log("fitting the Markov baseline on the training DNA (chr20:0-32,000,000 and chrX, both strands)")
    markov, selected = training_markov()
    markov_name = f"order-{selected['order']} Markov"

    markov_last = markov_last_log_p(markov, tok)
    for c in args.contexts:
        terms[(markov_name, c)] = at_site_terms(markov_last, chrom, rows, c)

    for name in args.models:
        model = load_model(resolve_weights(name))
        model_last = model_last_log_p(model, tok)

        for c in args.contexts:
            log(f"{name}: {c} bases of context")
            terms[(name, c)] = at_site_terms(model_last, chrom, rows, c)
        if name == args.models[0] and 256 in args.contexts:  # the same term read from vep's own windows
            full = [variant_windows(Variant(0, "20", r.pos, "", r.ref, [r.alt]), r.alt, fasta, 512) for r in rows]
            if {off for _, _, off in full} != {256}:
                raise SystemExit("vep's 512-base windows do not give every site 256 bases of context")
            unique = list(dict.fromkeys(w for ref, alt, _ in full for w in (ref, alt)))
            lp = dict(zip(unique, (x[0] for x in window_log_probs(model, tok, unique, batch_size=16)[0]), strict=True))
            from_vep = np.array([lp[ref][256] - lp[alt][256] for ref, alt, _ in full])
            gap = float(np.abs(from_vep - terms[(name, 256)]).max())
            log(f"at 256 bases the term differs from vep's windows' by at most {gap:.2g}")
            if gap > 1e-4:
                raise SystemExit(f"the cut windows miss vep's term by {gap:.2g}: the model is not reading them alike")

    records = []
    for (name, c), t in terms.items():
        for group, (site, strand) in GROUPS.items():
            m = (d["site"] == site) & ((d["intron_strand"] == strand) if strand else True)
            auc, lo, hi = auroc_interval(d["label"][m].to_numpy(), t[m.to_numpy()], d["pair"][m].to_numpy())
            records.append(
                {
                    "scorer": name,
                    "context": c,
                    "group": group,
                    "pairs": int(d["pair"][m].nunique()),
                    "auroc": auc,
                    "low": lo,
                    "high": hi,
                    "term positives": float(t[(m & (d["label"] == 1)).to_numpy()].mean()),
                    "term controls": float(t[(m & (d["label"] == 0)).to_numpy()].mean()),
                }
            )
    res = pd.DataFrame(records)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.csv", res.to_csv(index=False, float_format="%.5f"))

    scores = args.scores.resolve()
    shown = scores.relative_to(REPO) if scores.is_relative_to(REPO) else scores
    lines = [
        "AUROC of the at-site term, log p(ref) - log p(alt) at the splice site given the last c bases before it, "
        "positives against matched controls (95% interval over matched pairs; `benchmarks/zero_shot_context.py`, "
        f"the SNVs of `{shown}`).",
        "",
    ]
    for group in GROUPS:
        g = res[res["group"] == group]
        lines += [
            f"**{group}** ({g['pairs'].iloc[0]} pairs)",
            "",
            "| scorer | " + " | ".join(f"{c}" for c in args.contexts) + " |",
            "|---|" + "---|" * len(args.contexts),
        ]
        for name in dict.fromkeys(g["scorer"]):
            s = g[g["scorer"] == name].set_index("context")
            cells = [f"{s.auroc[c]:.3f} [{s.low[c]:.3f}, {s.high[c]:.3f}]" for c in args.contexts]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    atomic_write_text(args.out / "results.md", "\n".join(lines))

    fig, axes = plt.subplots(1, len(GROUPS), figsize=(4 * len(GROUPS), 3.6), sharey=True)
    for ax, group in zip(axes, GROUPS, strict=True):
        g = res[res["group"] == group]
        for name in dict.fromkeys(g["scorer"]):
            s = g[g["scorer"] == name]
            ax.plot(s["context"], s["auroc"], marker="o", label=name)
            ax.fill_between(s["context"], s["low"], s["high"], alpha=0.15)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_title(group)
        ax.set_xlabel("bases of context before the site")
    axes[0].set_ylabel("AUROC of log p(ref) - log p(alt) at the site")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, args.out / "context.png")
    print("\n".join(lines))
    log("done")


if __name__ == "__main__":
    main()
