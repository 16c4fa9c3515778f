"""Two benchmark tables of the same profile, different pretrained models (or one model's column under two recipes):
each column of table B against the same column of table A, paired seed by seed on the task metric (the seeds draw the
same rows and validation splits in both tables, whatever the model, so the k-mer column must come out identical:
checked).

    .venv/bin/python benchmarks/compare_models.py docs/benchmarks/quick-3seeds docs/benchmarks/quick-3seeds-16k \
        --names 1k 16k --out docs/benchmarks/quick-3seeds-16k/vs_1k.md

A column whose recipe differs between the two tables (say, the not-pretrained learning-rate grid) is left out, with a
line that names the difference: it would measure the recipe along with the model. Named in ``--columns`` it is
compared anyway, the difference stated under the table: ``--columns scratch`` compares one table's not-pretrained
runs under two learning-rate grids.

Reads each folder's results.json (``hyenadna benchmark ... --report-only`` writes it) and prints a markdown table;
with --out, writes it and its bar chart (the same path, .png). Where every run of a cell on both sides saved its test
predictions (runs/), the cell also gives the 95% interval of its difference over resampled test rows (the test set's
share, which the seeds' sd cannot show: every seed is tested on the same rows).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hyenadna.benchmark.bootstrap import decode_labels
from hyenadna.benchmark.report import SHORT_NAMES, paired_difference
from hyenadna.benchmark.runner import paired_runs_interval, scratch_schedule
from hyenadna.training.patience import PATIENCE_FROM_VALIDATION
from hyenadna.utils.io import atomic_write_text

COLUMNS = ("probe", "finetune", "scratch")
# the settings (results.json "config") that decide each column's runs besides the model
_SHARED = ("profile", "max_train", "max_test", "batch_size", "rc_augment", "rc_average")
RECIPE_KEYS = {
    "probe": (*_SHARED, "probes"),
    "finetune": (*_SHARED, "epochs", "patience", "finetune_lrs", "head_init"),
    "scratch": (*_SHARED, "scratch_lrs", "scratch_epochs", "scratch_patience", "scratch_patience_from"),
}


def _effective(config: dict, column: str) -> dict:
    """The not-pretrained model's epochs and patience as its runs used them (unset: twice the epochs, the
    pretrained model's patience), so that two ways of asking for one recipe compare equal."""
    if column != "scratch":
        return config
    epochs, patience = scratch_schedule(config)
    patience_from = config.get("scratch_patience_from", PATIENCE_FROM_VALIDATION)  # older tables: the only rule
    return {**config, "scratch_epochs": epochs, "scratch_patience": patience, "scratch_patience_from": patience_from}


def recipe_differences(a: dict, b: dict, column: str) -> dict[str, tuple]:
    """The settings of ``column``'s recipe on which the two tables differ: {name: (A's value, B's value)}."""
    ca, cb = (_effective(t.get("config", {}), column) for t in (a, b))
    return {k: (ca.get(k), cb.get(k)) for k in RECIPE_KEYS[column] if ca.get(k) != cb.get(k)}


def _difference_text(diff: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {va} against {vb}" for k, (va, vb) in diff.items())


def _same_recipe_columns(a: dict, b: dict) -> tuple[str, ...]:
    return tuple(c for c in COLUMNS if not recipe_differences(a, b, c))


def _columns(a: dict, b: dict, tasks: list[str], wanted: tuple[str, ...]) -> list[str]:
    return [c for c in wanted if any(c in a["tasks"][t]["modes"] and c in b["tasks"][t]["modes"] for t in tasks)]


def row_intervals(folders: tuple[Path, Path], a: dict, b: dict) -> dict[tuple[str, str], tuple[float, float]]:
    """{(task, column): 95% interval of B minus A over resampled test rows}, where both folders' runs of the seeds
    each table reports saved their test predictions on the same rows."""
    out = {}
    for t in (t for t in a["tasks"] if t in b["tasks"]):
        for c in COLUMNS:
            sides = []
            for folder, table in zip(folders, (a, b), strict=True):
                seeds = table["tasks"][t]["modes"].get(c, {}).get("seeds", [])
                paths = sorted((folder / "runs" / t / c).glob("seed*.json"))
                sides.append([r for r in (json.loads(p.read_text()) for p in paths) if r["seed"] in seeds])
            labels = [r["test_labels"] for side in sides for r in side if "test_labels" in r]
            if not labels:
                continue
            classes = max(2, int(decode_labels(labels[0]).max()) + 1)
            interval = paired_runs_interval(sides[1], sides[0], classes, a["tasks"][t]["metric"])
            if interval is not None:
                out[(t, c)] = interval
    return out


def compare(
    a: dict,
    b: dict,
    names: tuple[str, str],
    columns: tuple[str, ...] | None = None,
    intervals: dict[tuple[str, str], tuple[float, float]] | None = None,
) -> str:
    """B minus A per column. ``columns`` None: every column both tables have run with the same recipe; named columns
    are compared whatever their recipes, with each difference stated. ``intervals``: ``row_intervals``."""
    intervals = intervals or {}
    tasks = [t for t in a["tasks"] if t in b["tasks"]]
    for t in tasks:  # same rows per seed in both tables, or the pairing means nothing
        ka, kb = a["tasks"][t]["modes"].get("kmer"), b["tasks"][t]["modes"].get("kmer")
        if ka and kb:
            va, vb = _values(ka, a["tasks"][t]["metric"]), _values(kb, b["tasks"][t]["metric"])
            if any(va[s] != vb[s] for s in va.keys() & vb.keys()):  # a partial table has run fewer seeds
                raise ValueError(f"{t}: the k-mer column differs between the tables: not the same rows, cannot pair")
    notes = []
    if columns is None:
        for c in _columns(a, b, tasks, COLUMNS):
            if diff := recipe_differences(a, b, c):
                notes.append(f"- {SHORT_NAMES[c]}: left out, its recipes differ ({_difference_text(diff)}).")
        columns = _same_recipe_columns(a, b)
    else:
        for c in columns:
            if diff := recipe_differences(a, b, c):
                notes.append(f"- {SHORT_NAMES[c]}: the recipes differ ({_difference_text(diff)}).")
    columns = _columns(a, b, tasks, columns)
    na, nb = names
    lines = [
        f"{nb} minus {na}, column by column (task metric, percentage points, mean ± sd over the seeds both "
        "have run; * positive in every seed, − negative in every seed"
        + (
            "; [low, high]: its 95% interval over resampled test rows, the test set's share, where both sides' runs "
            "saved their predictions):"
            if intervals
            else "):"
        ),
        "",
        "| Dataset | metric | " + " | ".join(f"{SHORT_NAMES[c]}: {na} / {nb} / difference" for c in columns) + " |",
        "|" + "---|" * (len(columns) + 2),
    ]
    diffs: dict[str, list] = {c: [] for c in columns}
    for t in tasks:
        ra, rb, metric = a["tasks"][t], b["tasks"][t], a["tasks"][t]["metric"]
        cells = []
        for c in columns:
            ma, mb = ra["modes"].get(c), rb["modes"].get(c)
            if ma is None or mb is None:
                cells.append("-")
                continue
            row = {"modes": {"a": ma, "b": mb}}
            mean, sd, n, every = paired_difference(row, "b", "a", metric)
            _, _, _, every_neg = paired_difference(row, "a", "b", metric)
            diffs[c].append((mean, n, every, every_neg))
            mark = " *" if every and n > 1 else (" −" if every_neg and n > 1 else "")
            # each side's mean over the seeds both have run, so the two means and their difference agree
            va, vb = _values(ma, metric), _values(mb, metric)
            both = [s for s in va if s in vb]
            mean_a, mean_b = (sum(v[s] for s in both) / len(both) for v in (va, vb))
            spread = f" ± {100 * sd:.1f}" if n > 1 else ""  # one seed has no spread to show
            count = f" (n={n})" if n < 3 else ""
            ci = f" [{100 * intervals[t, c][0]:+.1f}, {100 * intervals[t, c][1]:+.1f}]" if (t, c) in intervals else ""
            cells.append(f"{100 * mean_a:.1f} / {100 * mean_b:.1f} / {100 * mean:+.1f}{spread}{mark}{count}{ci}")
        lines.append(f"| {t} | {metric} | " + " | ".join(cells) + " |")
    lines.append("")
    for c in columns:
        d = diffs[c]
        better = sum(m > 0 for m, *_ in d)
        every = sum(e and n > 1 for _, n, e, _ in d)
        worse_every = sum(w and n > 1 for _, n, _, w in d)
        rows_ci = [intervals[t, c] for t in tasks if (t, c) in intervals]
        rows_ci = (
            f"; the test rows' 95% interval above 0 on {sum(lo > 0 for lo, _ in rows_ci)} and below on "
            f"{sum(hi < 0 for _, hi in rows_ci)} of the {len(rows_ci)} with one"
            if rows_ci
            else ""
        )
        lines.append(
            f"- {SHORT_NAMES[c]}: {nb} ahead of {na} on {better} of {len(d)} tasks by the mean ({every} in every seed; "
            f"behind in every seed on {worse_every}){rows_ci}."
        )
    return "\n".join(lines + notes) + "\n"


def plot(a: dict, b: dict, names: tuple[str, str], path: Path, columns: tuple[str, ...] | None = None) -> None:
    """The differences of ``compare`` as bars (mean ± sd over seeds) around zero: above the line B is ahead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from hyenadna.utils.io import save_figure

    tasks = [t for t in a["tasks"] if t in b["tasks"]]
    columns = _columns(a, b, tasks, _same_recipe_columns(a, b) if columns is None else columns)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(tasks)), 4.5))
    width, x = 0.8 / max(1, len(columns)), np.arange(len(tasks))
    for i, c in enumerate(columns):
        diffs = []
        for t in tasks:
            ma, mb = a["tasks"][t]["modes"].get(c), b["tasks"][t]["modes"].get(c)
            row = {"modes": {"a": ma, "b": mb}}
            diffs.append(paired_difference(row, "b", "a", a["tasks"][t]["metric"]) if ma and mb else None)
        means = [100 * d[0] if d else np.nan for d in diffs]
        sds = [100 * d[1] if d and d[2] > 1 else np.nan for d in diffs]
        ax.bar(x + (i - (len(columns) - 1) / 2) * width, means, width, yerr=sds, capsize=2, label=SHORT_NAMES[c])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{t}\n({a['tasks'][t]['metric']})" for t in tasks], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("difference, task metric (points)")  # the title names both sides; long names overflow here
    ax.set_title(f"{names[1]} minus {names[0]}, column by column, paired by seed (mean ± sd)", size=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _values(mode: dict, metric: str) -> dict:
    return dict(zip(mode["seeds"], mode["metrics"][metric]["values"], strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="benchmark folder of model A (holds results.json)")
    ap.add_argument("b", type=Path, help="benchmark folder of model B")
    ap.add_argument("--names", nargs=2, default=("A", "B"))
    ap.add_argument(
        "--columns",
        nargs="+",
        choices=COLUMNS,
        help="columns to compare, even with different recipes (default: "
        "every column both tables ran with the same recipe)",
    )
    ap.add_argument("--out", type=Path, help="also write the table here, and its bars beside it (.png)")
    args = ap.parse_args()
    a, b = (json.loads((p / "results.json").read_text()) for p in (args.a, args.b))
    names, columns = tuple(args.names), (tuple(args.columns) if args.columns else None)
    text = compare(a, b, names, columns, row_intervals((args.a, args.b), a, b))
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
        plot(a, b, names, args.out.with_suffix(".png"), columns)


if __name__ == "__main__":
    main()
