"""What does a fine-tuned promoter classifier look at? In-silico mutagenesis of its predictions on promoter_all's
test windows (``HyenaDNAFineTuningModel.mutagenesis``, target: the promoter class, so every map has the same sign:
high importance, changing the base lowers the promoter log-odds).

Each window holds a TSS at index 249 (-249..+50, on the gene strand). Negatives are random windows matched in GC.
The task has almost no TATA boxes (TATAWAW in -40..-15: 12 of 1,255 training promoters, 2 of 723 test ones), so
there is none to look for. Two questions, with the rules decided before the run, each judged on the promoters by the
mean over sequences and a 95% bootstrap interval over sequences:

1. Does the evidence sit at the TSS? Yes if the mean importance of -50..+50 exceeds that of -249..-51, the interval
   of the difference above 0.
2. Do CpGs carry it? Yes if changing a base of a CpG lowers the log-odds more than changing a C or G outside one
   (mean importance of CpG positions less that of the other C and G positions), the interval above 0.

    hyenadna fine-tune ../shared/benchmarks/promoter_all --out promoter_model --epochs 10 --patience 3 --lr 1e-4 \\
        --head-init probe --seed 0
    .venv/bin/python benchmarks/ism_promoter.py promoter_model --out docs/ism/promoter
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hyenadna.utils.io import atomic_write_text, save_figure

REPO = Path(__file__).resolve().parents[1]
TASK = REPO.parent / "shared" / "benchmarks" / "promoter_all"
TSS = 249
CORE = (TSS - 50, 300)  # -50..+50


def cpg_mask(seq: str) -> np.ndarray:
    """True at both bases of every CG."""
    at = np.zeros(len(seq), dtype=bool)
    for i in range(len(seq) - 1):
        if seq[i : i + 2] == "CG":
            at[i : i + 2] = True
    return at


def sequence_stats(seq: str, importance: np.ndarray) -> dict:
    core = importance[CORE[0] : CORE[1]].mean() - importance[: CORE[0]].mean()
    cpg = cpg_mask(seq)
    other_gc = np.array([b in "CG" for b in seq]) & ~cpg
    stats = {"core_minus_upstream": float(core), "cpgs": int(cpg.sum() // 2)}
    if cpg.any() and other_gc.any():
        stats["cpg_minus_other_gc"] = float(importance[cpg].mean() - importance[other_gc].mean())
    return stats


def bootstrap(values: list[float], draws: int = 2000) -> tuple[float, float, float]:
    v = np.asarray(values)
    rng = np.random.default_rng(0)
    means = v[rng.integers(0, len(v), (draws, len(v)))].mean(axis=1)
    return float(v.mean()), *(float(x) for x in np.percentile(means, [2.5, 97.5]))


def setup(description: str, per_group: int):
    """The command line shared with ism_first_order.py: (args, the fine-tuned model, the promoter class, and the first
    ``--per-group`` test promoters and non-promoters in file order)."""
    ap = argparse.ArgumentParser(description=description.split("\n\n")[0])
    ap.add_argument("model", help="a folder written by `hyenadna fine-tune` on promoter_all")
    ap.add_argument("--per-group", type=int, default=per_group)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import pandas as pd
    import torch

    from hyenadna.finetune import HyenaDNAFineTuningModel

    torch.set_num_threads(args.threads)
    ft = HyenaDNAFineTuningModel.load(args.model, batch_size=64)
    promoter = ft.label_names.index("promoter") if ft.label_names else 1
    test = pd.read_csv(TASK / "test.csv.gz")
    groups = {
        "promoters": test[test["label"] == promoter].head(args.per_group),
        "non-promoters": test[test["label"] != promoter].head(args.per_group),
    }
    return args, ft, promoter, groups


def main() -> None:
    import pandas as pd

    from hyenadna.ism import plot_ism

    args, ft, promoter, groups = setup(__doc__, 20)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, profiles = [], {}
    for group, members in groups.items():
        maps = []
        for k, r in enumerate(members.itertuples()):
            result = ft.mutagenesis(r.sequence, target=promoter)
            maps.append(result.importance)
            p = float(ft.predict([r.sequence])[1][0, promoter])
            rows.append({"group": group, "name": r.name, "p_promoter": p, **sequence_stats(r.sequence, maps[-1])})
            print(json.dumps(rows[-1]), flush=True)
            if k == 0:
                result.chrom = r.name
                plot_ism(
                    result,
                    args.out / f"example_{group}.png",
                    title=f"{r.name} ({group[:-1]}, p(promoter) {p:.2f}): TSS at 250",
                    marks={TSS + 1: "TSS"},
                )
        profiles[group] = np.mean(maps, axis=0)
    table = pd.DataFrame(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.4), constrained_layout=True)
    x = np.arange(300) - TSS  # 0 = the TSS (+1)
    for group, profile in profiles.items():
        smooth = np.convolve(profile, np.ones(9) / 9, mode="same")
        ax.plot(x, smooth, lw=1.2, label=f"{group} ({len(groups[group])}), 9-base running mean")
    ax.axvline(0, color="k", lw=0.6, ls="--")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xlabel("position relative to the TSS")
    ax.set_ylabel("mean importance (-mean change\nof the promoter log-odds)")
    ax.legend(fontsize=8)
    save_figure(fig, args.out / "profile.png", dpi=130)

    lines = [
        f"Model: `{Path(args.model).name}` (promoter_all, fine-tuned); the first {args.per_group} test promoters and "
        "non-promoters in file order; target: the promoter class (`benchmarks/ism_promoter.py`, whose docstring holds "
        "the rules, set before the run).",
        "",
        "| question | group | mean over sequences [95% interval] | verdict (promoters) |",
        "|---|---|---|---|",
    ]
    for key, question in (
        ("core_minus_upstream", "TSS -50..+50 less -249..-51"),
        ("cpg_minus_other_gc", "CpG less other C/G"),
    ):
        for group in groups:
            values = table.loc[table["group"] == group, key].dropna().tolist()
            mean, lo, hi = bootstrap(values)
            verdict = ("yes" if lo > 0 else "no") if group == "promoters" else ""
            lines.append(f"| {question} | {group} ({len(values)}) | {mean:.4f} [{lo:.4f}, {hi:.4f}] | {verdict} |")
    lines += [
        "",
        "| group | sequence | p(promoter) | CpGs | TSS core less upstream | CpG less other C/G |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpg = f"{r['cpg_minus_other_gc']:.4f}" if "cpg_minus_other_gc" in r else "-"
        lines.append(
            f"| {r['group']} | {r['name']} | {r['p_promoter']:.3f} | {r['cpgs']} | {r['core_minus_upstream']:.4f} "
            f"| {cpg} |"
        )
    lines += ["", "![mean importance by position](profile.png)"]
    lines += [f"![{g}: first map](example_{g}.png)" for g in groups]
    atomic_write_text(args.out / "results.md", "\n".join(lines) + "\n")
    atomic_write_text(
        args.out / "results.json",
        json.dumps({"rows": rows, "profiles": {g: p.tolist() for g, p in profiles.items()}}, indent=1),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
