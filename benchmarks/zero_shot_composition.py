"""Which part of the composition of the bases before a + strand acceptor carries the trained models' gap?
``zero_shot_shuffle.py`` found that the at-site term, log p(ref) - log p(alt) given the last 16 bases, keeps its gap
when all but the last 2 of them are shuffled: the models react to which bases those are, not their order. Here the
term is regressed (least squares, positives and controls together, no label) on that composition: the counts of C, G
and T among the first ``context - keep`` bases (A the rest), the last ``keep`` bases (one-hot) and the SNV's
ref > alt (one-hot). The mean gap between positives and controls then splits exactly into the part each group of
features explains (its coefficients times the positives' minus the controls' mean features) and a part none does;
95% intervals from resampling matched pairs, the fit redone in each draw. Fitted without the label, the counts are
credited with whatever correlates with them, so an effect of the label itself shows in the unexplained part only in
part. Reads a ``scores.csv.gz``; the networks only score 17-base windows.

    python benchmarks/zero_shot_composition.py --scores docs/zero_shot/fresh/scores.csv.gz \
        --out docs/zero_shot/fresh/composition.md
    python benchmarks/zero_shot_composition.py --scores docs/zero_shot/fresh/scores.csv.gz --fit quadratic \
        --out docs/zero_shot/fresh/composition_quadratic.md
    python benchmarks/zero_shot_composition.py --scores docs/zero_shot/fresh/scores.csv.gz --fit positions \
        --out docs/zero_shot/fresh/composition_positions.md
    python benchmarks/zero_shot_composition.py --scores docs/zero_shot/fresh/scores.csv.gz \
        docs/zero_shot/third/scores.csv.gz --fit positions --label --out docs/zero_shot/third/pooled_label.md

``--label`` fits the label beside the composition; several ``--scores`` pool draws made apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from zero_shot_context import at_site_terms, markov_last_log_p, model_last_log_p
from zero_shot_repeats import emit, interval_cell, pair_resamples
from zero_shot_shuffle import plus_strand_acceptors
from zero_shot_splice import REPO, training_markov

from hyenadna.utils.io import save_figure

GROUPS = (
    "C count",
    "G count",
    "T count",
    "count curvature",
    "C by position",
    "G by position",
    "T by position",
    "last bases",
    "ref > alt",
    "label",
)
FITS = ("linear", "quadratic", "positions")


def design(
    contexts: list[str],
    refs: list[str],
    alts: list[str],
    keep: int,
    fit: str = "linear",
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The regression's features, one row per SNV, and each column's group ("intercept" first). ``fit``: "linear",
    the counts; "quadratic", their squares and pairwise products too (group "count curvature"); "positions", instead
    of the counts each of those bases one-hot (C, G or T at each position, A the reference), which the counts are
    sums of. Given ``labels``, the label is a feature too (last, group "label"): its coefficient is the gap the
    composition leaves once the fit may credit the label, not the composition, with what goes with both."""
    if fit not in FITS:
        raise ValueError(f"fit={fit!r}: one of {FITS}")
    if labels is not None:
        x, groups = design(contexts, refs, alts, keep, fit)
        return np.column_stack([x, np.asarray(labels, dtype=float)]), [*groups, "label"]
    lasts = sorted({c[len(c) - keep :] for c in contexts})
    changes = sorted(set(zip(refs, alts, strict=True)))
    cols, groups = [np.ones(len(contexts))], ["intercept"]
    if fit == "positions":
        for base in "CGT":
            for p in range(len(contexts[0]) - keep):
                cols.append(np.array([c[p] == base for c in contexts], dtype=float))
                groups.append(f"{base} by position")
        cols, groups = _then_one_hots(cols, groups, contexts, refs, alts, keep, lasts, changes)
        return np.stack(cols, axis=1), groups
    for base, group in zip("CGT", GROUPS[:3], strict=True):
        cols.append(np.array([c[: len(c) - keep].count(base) for c in contexts], dtype=float))
        groups.append(group)
    if fit == "quadratic":
        counts = cols[1:4]
        for i in range(3):
            for j in range(i, 3):
                cols.append(counts[i] * counts[j])
                groups.append("count curvature")
    cols, groups = _then_one_hots(cols, groups, contexts, refs, alts, keep, lasts, changes)
    return np.stack(cols, axis=1), groups


def _then_one_hots(cols, groups, contexts, refs, alts, keep, lasts, changes) -> tuple[list, list[str]]:
    for last in lasts[1:]:  # the first level of each one-hot is the intercept's
        cols.append(np.array([c[len(c) - keep :] == last for c in contexts], dtype=float))
        groups.append("last bases")
    for change in changes[1:]:
        cols.append(np.array([(r, a) == change for r, a in zip(refs, alts, strict=True)], dtype=float))
        groups.append("ref > alt")
    return cols, groups


def explained_gap(x: np.ndarray, groups: list[str], term: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The positives' minus the controls' mean term, split into each group's share of the least-squares fit and
    what none explains; the parts sum to the gap exactly (the fit has an intercept)."""
    coef = np.linalg.lstsq(x, term, rcond=None)[0]
    diff = x[labels == 1].mean(0) - x[labels == 0].mean(0)
    parts = {g: float(sum(coef[j] * diff[j] for j in range(len(groups)) if groups[j] == g)) for g in _present(groups)}
    gap = float(term[labels == 1].mean() - term[labels == 0].mean())
    return {"gap": gap, **parts, "unexplained": gap - sum(parts.values())}


def _present(groups: list[str]) -> list[str]:
    return [g for g in GROUPS if g in groups]


def gap_intervals(x, groups, term, labels, pairs, draws: int = 300) -> dict[str, tuple[float, float, float]]:
    """Each part of ``explained_gap`` with a 95% interval over matched pairs."""
    stats = [explained_gap(x[take], groups, term[take], labels[take]) for take in pair_resamples(pairs, draws)]
    point = explained_gap(x, groups, term, labels)
    return {k: (v, *np.percentile([s[k] for s in stats], [2.5, 97.5])) for k, v in point.items()}


def share_difference(x, groups, term_a, term_b, labels, pairs, part: str = "label") -> tuple[float, float, float]:
    """``part``'s share for term_a minus term_b's, with a 95% interval over matched pairs, both on the same resamples.
    Least squares is linear in the term for a fixed design, so this is ``part``'s share of term_a - term_b."""
    return gap_intervals(x, groups, term_a - term_b, labels, pairs)[part]


def pooled_acceptors(paths: list[Path]):
    """``plus_strand_acceptors`` of each draw, one table: pair ids renumbered so that no two draws share one."""
    import pandas as pd

    tables = []
    for path in paths:
        d, chrom = plus_strand_acceptors(path)
        d["pair"] = pd.factorize(d["pair"])[0] + sum(t["pair"].nunique() for t in tables)
        tables.append(d)
    d = pd.concat(tables, ignore_index=True)
    if d.duplicated(["pos", "alt"]).any():
        raise SystemExit("the draws share an SNV: pool draws made apart (zero_shot_splice.py --exclude)")
    return d, chrom


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--scores",
        type=Path,
        nargs="+",
        default=[REPO / "docs" / "zero_shot" / "fresh" / "scores.csv.gz"],
        help="one or more draws' scores.csv.gz, pooled (each draw's pairs kept apart)",
    )
    ap.add_argument("--models", nargs="+", default=["hyenadna-tiny-1k-d256-grch37", "hyenadna-16k-d256-l3-grch37"])
    ap.add_argument("--context", type=int, default=16)
    ap.add_argument("--keep", type=int, default=2, help="bases right before the site taken one-hot, not counted")
    ap.add_argument(
        "--fit",
        choices=FITS,
        default="linear",
        help="quadratic: the counts' squares and pairwise products too, a group of their own; positions: each base "
        "one-hot instead of the counts",
    )
    ap.add_argument(
        "--label",
        action="store_true",
        help="the label as a feature too: its coefficient is the gap left once the composition is fitted beside it",
    )
    ap.add_argument(
        "--versus",
        metavar="SCORER",
        help="with --label: each other scorer's label share minus this one's (e.g. 'order-12 Markov'), its interval "
        "over the same pair resamples",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.versus and not args.label:
        ap.error("--versus compares label shares: give --label too")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyenadna import CharacterTokenizer
    from hyenadna.hub import resolve_weights
    from hyenadna.models.hyena_dna import load_model

    d, chrom = pooled_acceptors(args.scores)
    rows = list(d.itertuples())
    contexts = [chrom[r.pos - 1 - args.context : r.pos - 1] for r in rows]
    if any(set(c) - set("ACGT") for c in contexts):
        raise SystemExit("a context holds a base other than A/C/G/T")
    tok = CharacterTokenizer()
    markov, selected = training_markov()
    scorers = {f"order-{selected['order']} Markov": markov_last_log_p(markov, tok)}
    for name in args.models:
        scorers[name] = model_last_log_p(load_model(resolve_weights(name)), tok, 64)
    terms = {name: at_site_terms(f, chrom, rows, args.context) for name, f in scorers.items()}
    if args.versus and args.versus not in terms:
        raise SystemExit(f"--versus {args.versus!r}: not among the scorers {list(terms)}")

    labels, pairs = d["label"].to_numpy(), d["pair"].to_numpy()
    draws = " and ".join(f"`{p.parent.name}/{p.name}`" for p in args.scores)
    x, groups = design(
        contexts, list(d["ref"]), list(d["alt"]), args.keep, fit=args.fit, labels=labels if args.label else None
    )
    shown = _present(groups)
    n = args.context - args.keep
    head = np.array([[c[:n].count(b) for b in "CGT"] for c in contexts], dtype=float)
    means = {
        side: {b: float(v) for b, v in zip("CGT", head[labels == lab].mean(0), strict=True)}
        for side, lab in (("positives", 1), ("controls", 0))
    }
    features = {
        "linear": f"the counts of C, G and T among the first {n} (A the rest)",
        "quadratic": f"the counts of C, G and T among the first {n} (A the rest), their squares and pairwise products",
        "positions": f"each of the first {n} bases one-hot (C, G or T at each position, A the reference)",
    }[args.fit]
    lines = [
        f"The at-site term at + strand acceptors ({len(np.unique(pairs))} pairs of {draws}), log p(ref) - "
        f"log p(alt) given the last {args.context} bases, regressed on their composition: {features}"
        + f", the last {args.keep} bases one-hot and the SNV's ref > alt one-hot "
        + (
            "(least squares over positives and controls, the label a feature too: its share is its coefficient, and "
            "nothing is left unexplained; the residual column is the term less the composition's part of the fit; "
            if args.label
            else "(least squares over positives and controls, no label; "
        )
        + "`benchmarks/zero_shot_composition.py`). The "
        "positives' minus the controls' mean term (nats) splits into what each group explains and what none does; "
        "95% intervals over matched pairs, the fit redone in each resample.",
        "",
        f"Mean counts among the first {n} bases: positives "
        + ", ".join(f"{b} {v:.2f}" for b, v in means["positives"].items())
        + f", A {n - sum(means['positives'].values()):.2f}; controls "
        + ", ".join(f"{b} {v:.2f}" for b, v in means["controls"].items())
        + f", A {n - sum(means['controls'].values()):.2f}.",
        "",
        "| scorer | AUROC of the term | AUROC of its residual | mean gap | "
        + " | ".join(f"{g} explains" for g in shown)
        + " | unexplained | R^2 |",
        "|---|---|---|---|" + "---|" * (len(shown) + 2),
    ]
    results = {}
    for name, term in terms.items():
        coef = np.linalg.lstsq(x, term, rcond=None)[0]
        fitted = x @ coef
        r2 = 1 - float(((term - fitted) ** 2).sum() / ((term - term.mean()) ** 2).sum())
        if args.label:  # the term less the composition's part: the label's part stays in
            fitted = fitted - coef[-1] * labels
        parts = results[name] = gap_intervals(x, groups, term, labels, pairs)
        cells = [f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]" for k, (v, lo, hi) in parts.items()]
        lines.append(
            f"| {name} | {interval_cell(labels, term, pairs)} | {interval_cell(labels, term - fitted, pairs)} | "
            + " | ".join(cells)
            + f" | {r2:.2f} |"
        )
    if args.fit == "linear":  # with curvature, a count has no single coefficient
        lines += [
            "",
            f"Per-count coefficients (nats of the term per extra base among the first {n}, against an A):",
            "",
            "| scorer | " + " | ".join(f"per {b}" for b in "CGT") + " |",
            "|---|---|---|---|",
        ]
        for name, term in terms.items():
            coef = np.linalg.lstsq(x, term, rcond=None)[0]
            lines.append(f"| {name} | " + " | ".join(f"{c:+.3f}" for c in coef[1:4]) + " |")
    if args.versus:
        lines += [
            "",
            f"Each scorer's label share minus {args.versus}'s, paired (the same pair resamples for both; by the "
            "fit's linearity in the term, the label share of the difference of the two terms):",
            "",
            f"| scorer | label share minus {args.versus}'s |",
            "|---|---|",
        ]
        for name, term in terms.items():
            if name != args.versus:
                v, lo, hi = share_difference(x, groups, term, terms[args.versus], labels, pairs)
                lines.append(f"| {name} | {v:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
    emit(lines, args.out)

    if args.out:
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        keys = [*shown, "unexplained"]
        width = 0.8 / len(results)
        for k, (name, parts) in enumerate(results.items()):
            v = np.array([parts[g][0] for g in keys])
            err = np.array([[parts[g][0] - parts[g][1], parts[g][2] - parts[g][0]] for g in keys]).T
            pos = np.arange(len(keys)) + (k - (len(results) - 1) / 2) * width
            ax.bar(pos, v, width, yerr=err, capsize=2, label=f"{name} (gap {parts['gap'][0]:+.3f})")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(np.arange(len(keys)), keys, fontsize=8)
        ax.set_ylabel("share of the mean term gap (nats)")
        ax.set_title(f"+ strand acceptors: what the last {args.context} bases' composition explains", fontsize=10)
        ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
