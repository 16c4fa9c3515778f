"""How far can the first-order map (``mutagenesis(..., method="gradient")``: one forward and backward pass) stand in for
exact ISM (3 x length forward passes)? Both maps of a fine-tuned promoter classifier on promoter_all test windows
(the first ``--per-group`` promoters and non-promoters in file order), compared change by change and position by
position, with the time each took.

    .venv/bin/python benchmarks/ism_first_order.py promoter_model --out docs/ism/promoter/first_order.md  # ~5 min
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from hyenadna.utils.io import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ism_promoter import setup  # the same model, windows and command line


def compare(exact: np.ndarray, fast: np.ndarray) -> dict:
    from scipy.stats import spearmanr

    known = np.isfinite(exact)
    e, f = exact[known], fast[known]
    imp_e, imp_f = -np.nanmean(exact, axis=1), -np.nanmean(fast, axis=1)
    top = max(1, len(imp_e) // 10)
    top_e, top_f = set(np.argsort(-imp_e)[:top]), set(np.argsort(-imp_f)[:top])
    return {
        "effect_pearson": float(np.corrcoef(e, f)[0, 1]),
        "effect_spearman": float(spearmanr(e, f)[0]),
        "sign_agreement": float(np.mean(np.sign(e) == np.sign(f))),
        "importance_pearson": float(np.corrcoef(imp_e, imp_f)[0, 1]),
        "top10pct_overlap": len(top_e & top_f) / top,
    }


def main() -> None:
    import pandas as pd

    args, ft, promoter, groups = setup(__doc__, 10)
    rows = []
    for group, members in groups.items():
        for r in members.itertuples():
            t0 = time.perf_counter()
            exact = ft.mutagenesis(r.sequence, target=promoter).effect
            t1 = time.perf_counter()
            fast = ft.mutagenesis(r.sequence, target=promoter, method="gradient").effect
            t2 = time.perf_counter()
            rows.append(
                {"group": group, "name": r.name, **compare(exact, fast), "exact_s": t1 - t0, "gradient_s": t2 - t1}
            )
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    keys = ["effect_pearson", "effect_spearman", "sign_agreement", "importance_pearson", "top10pct_overlap"]
    lines = [
        f"First-order against exact ISM, promoter classifier (`{Path(args.model).name}`), the first {args.per_group} "
        "test promoters and non-promoters, target the promoter class (`benchmarks/ism_first_order.py`). Median over "
        "sequences (range):",
        "",
        "| group | " + " | ".join(keys) + " | seconds, exact / first order |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    for group, g in table.groupby("group", sort=False):
        cells = [f"{g[k].median():.2f} ({g[k].min():.2f}-{g[k].max():.2f})" for k in keys]
        lines.append(
            f"| {group} | " + " | ".join(cells) + f" | {g['exact_s'].median():.1f} / {g['gradient_s'].median():.2f} |"
        )
    lines += [
        "",
        "effect: each of the 900 changes; importance: minus the mean effect per position; top10pct_overlap: the share "
        "of the exact map's 30 most important positions that the first-order map also ranks in its top 30.",
    ]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
