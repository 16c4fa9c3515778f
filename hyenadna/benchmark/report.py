"""The benchmark report in the model card's shape: one row per task, probing / fine-tuned / not-pretrained columns."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hyenadna.benchmark.runner import scratch_schedule
from hyenadna.benchmark.suites import PUBLISHED_COLUMNS, published_source
from hyenadna.training.patience import LEFT_CHANCE, PATIENCE_FROM_VALIDATION
from hyenadna.utils.io import atomic_write_text, save_figure

COLUMNS = [
    ("kmer", "k-mer LR baseline"),
    ("probe", "HyenaDNA probing (frozen)"),
    ("finetune", "HyenaDNA pretrained (fine-tuned)"),
    ("scratch", "HyenaDNA not pretrained"),
]


REFERENCE_TITLE = "k-mer LR, full task (task.json)"
# the seeds a cell's mark counts (summarise's lists), and the note under the table where any cell has one
FAILURE_NOTES = {
    "one_class_seeds": "‡ k/n: in k of n seeds the model predicted a single class for every test row (MCC 0): it "
    "learnt nothing, and the mean includes those seeds as they are, so read such a cell as a failure to train, not as "
    "a baseline.",
    "chance_seeds": "§ k/n: in k of n seeds the test MCC was not above chance: below 1.645/sqrt((K-1) n) for K "
    "classes and n test rows, which a model whose predictions are independent of the labels exceeds about one time "
    "in twenty. The mean includes those seeds as they are.",
}


def _cell(entry: dict | None, metric: str, n_seeds: int | None = None) -> str:
    """Mean ± sd over seeds, marked: ``(n=k)`` when only k of the profile's seeds have run, † and ‡ (see the notes)."""
    if entry is None:
        return "-"
    m = entry["metrics"][metric]
    sd = f" ± {100 * m['sd']:.1f}" if len(entry["seeds"]) > 1 else ""
    if n_seeds is not None and len(entry["seeds"]) < n_seeds:
        sd += f" (n={len(entry['seeds'])})"
    probe_only = sum(e == 0 for e in entry.get("selected_epochs", []))
    mark = f" †{probe_only}/{len(entry['seeds'])}" if probe_only else ""
    one_class = len(entry.get("one_class_seeds", []))
    mark += f" ‡{one_class}/{len(entry['seeds'])}" if one_class else ""
    chance = len(entry.get("chance_seeds", []))
    mark += f" §{chance}/{len(entry['seeds'])}" if chance else ""
    return f"{100 * m['mean']:.1f}{sd}{mark}"


def _source_label(source: str) -> str:
    """Bundled weights are named as such, not by this machine's install path."""
    from hyenadna.hub import BUNDLED_DIR

    return re.sub(rf" from {re.escape(str(BUNDLED_DIR))}/\S+", " (bundled)", source)


def _lrs(values: list[float]) -> str:
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"


def _scratch_patience(cfg: dict) -> str:
    """Said only where the not-pretrained model stops on its own patience or rule (older summaries have no such
    keys)."""
    patience = scratch_schedule(cfg)[1]
    text = f", patience {patience}" if patience != cfg["patience"] else ""
    if cfg.get("scratch_patience_from", PATIENCE_FROM_VALIDATION) != PATIENCE_FROM_VALIDATION:
        text += f" from the first epoch whose training loss is {100 - 100 * LEFT_CHANCE:.0f}% below the first's"
    return text


def _published_cell(row: dict, column: str) -> str:
    v = row.get("published", {}).get(column)
    return "-" if v is None else f"{100 * v:.1f}"


def _reference_cell(row: dict, metric: str) -> str:
    full = row.get("reference_kmer_full_train")
    return f"{100 * full[metric]:.1f}" if full else "-"


def markdown_table(summary: dict) -> str:
    modes = [(k, title) for k, title in COLUMNS if any(k in t["modes"] for t in summary["tasks"].values())]
    cfg = summary["config"]
    sources = sorted(
        {
            _source_label(m.get("source", ""))
            for t in summary["tasks"].values()
            for k, m in t["modes"].items()
            if k in ("probe", "finetune") and m.get("source")
        }
    )
    sub = ", ".join(f"{k} {cfg[k]}" for k in ("max_train", "max_test") if cfg.get(k)) or "all rows"
    lines = [
        f"Profile: {cfg['profile']} ({sub}; seeds {cfg['seeds']}; up to {cfg['epochs']} epochs, patience "
        f"{cfg['patience']} from the first epoch above chance, learning rate chosen on validation from "
        f"{_lrs(cfg['finetune_lrs'])} (fine-tuned, "
        f"{cfg['head_init']} head) and {_lrs(cfg['scratch_lrs'])} (not pretrained, random head, up to "
        f"{scratch_schedule(cfg)[0]} epochs{_scratch_patience(cfg)})). Pretrained model: "
        f"{'; '.join(sources) or '-'}. Values are "
        "test-set percentages (mean ± sd over seeds where there are several); the best per row is bold.",
        "",
    ]
    ref = any("reference_kmer_full_train" in t for t in summary["tasks"].values())
    ref_title = [REFERENCE_TITLE] if ref else []
    published = [
        (k, t) for k, t in PUBLISHED_COLUMNS if any(k in r.get("published", {}) for r in summary["tasks"].values())
    ]
    ref_title += [t for _, t in published]
    lines += [
        "| Dataset | Metric | " + " | ".join([t for _, t in modes] + ref_title) + " |",
        "|" + "---|" * (len(modes) + 2 + len(ref_title)),
    ]
    for name, row in summary["tasks"].items():
        metric = row["metric"]
        cells = [_cell(row["modes"].get(k), metric, len(cfg["seeds"])) for k, _ in modes]
        best = max(
            (row["modes"][k]["metrics"][metric]["mean"], i) for i, (k, _) in enumerate(modes) if k in row["modes"]
        )[1]
        cells[best] = f"**{cells[best]}**"
        if ref:
            cells.append(_reference_cell(row, metric))
        cells += [_published_cell(row, k) for k, _ in published]
        lines.append(
            f"| {name} | {metric.upper() if metric != 'accuracy' else 'Accuracy'} | " + " | ".join(cells) + " |"
        )
    if any(
        e == 0 for t in summary["tasks"].values() for m in t["modes"].values() for e in m.get("selected_epochs", [])
    ):
        lines += [
            "",
            "† k/n: in k of n seeds early stopping kept epoch 0, the LP-FT starting point (a logistic-regression head "
            "on the frozen features): no fine-tuned epoch beat it on validation, so "
            "that cell is a probe, not a fine-tuned model.",
        ]
    for key, note in FAILURE_NOTES.items():
        if any(m.get(key) for t in summary["tasks"].values() for m in t["modes"].values()):
            lines += ["", note]
    if ref:
        lines += [
            "",
            f"{REFERENCE_TITLE}: the k-mer logistic regression of the task files (task.json), trained on all train "
            "rows and scored on all test rows; the other columns use this profile's rows.",
        ]
    if published:
        lines += [
            "",
            "(published) columns: the values reported elsewhere on the real datasets, not runs of this report. "
            + published_source("nt_published.csv"),
        ]
    lines += [
        "",
        "MCC for every task:",
        "",
        "| Dataset | " + " | ".join([t for _, t in modes] + ref_title[:ref]) + " |",
        "|" + "---|" * (len(modes) + 1 + ref),
    ]
    for name, row in summary["tasks"].items():
        cells = [_cell(row["modes"].get(k), "mcc", len(cfg["seeds"])) for k, _ in modes]
        if ref:
            cells.append(_reference_cell(row, "mcc"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += baseline_comparison(summary)
    lines += [
        "",
        "Wall time (seconds, all seeds):",
        "",
        "| Dataset | train / test rows | " + " | ".join(t for _, t in modes) + " |",
        "|" + "---|" * (len(modes) + 2),
    ]
    for name, row in summary["tasks"].items():
        first = next(iter(row["modes"].values()))
        cells = [f"{row['modes'][k]['seconds']:.0f}" if k in row["modes"] else "-" for k, _ in modes]
        lines.append(f"| {name} | {first['n_train']} / {first['n_test']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


SHORT_NAMES = {"kmer": "k-mer", "probe": "probing", "finetune": "fine-tuned", "scratch": "not pretrained"}

# (column, baseline it is compared with, what the comparison asks)
COMPARISONS = [
    ("probe", "kmer", "probing beats the k-mer baseline"),
    ("finetune", "kmer", "fine-tuned beats the k-mer baseline"),
    ("scratch", "kmer", "not pretrained beats the k-mer baseline"),
    ("finetune", "scratch", "pretraining helps fine-tuning (fine-tuned beats not pretrained)"),
]


def paired_difference(row: dict, column: str, baseline: str, metric: str) -> tuple[float, float, int, bool] | None:
    """(mean, sd, n, positive in every seed) of column - baseline over the seeds both have run. Both are trained and
    tested on the same rows with the same validation split per seed, so the per-seed difference is the fair one."""
    a, b = row["modes"].get(column), row["modes"].get(baseline)
    if a is None or b is None:
        return None
    va = dict(zip(a["seeds"], a["metrics"][metric]["values"], strict=True))
    vb = dict(zip(b["seeds"], b["metrics"][metric]["values"], strict=True))
    seeds = sorted(set(va) & set(vb))
    if not seeds:
        return None
    d = [va[s] - vb[s] for s in seeds]
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
    return float(np.mean(d)), sd, len(d), all(x > 0 for x in d)


def baseline_comparison(summary: dict) -> list[str]:
    """Each column against the k-mer baseline, and fine-tuned against not pretrained, task by task on the task metric,
    then counted: a win is a positive mean paired difference, a clear win one that is positive in every seed."""
    tasks = summary["tasks"]
    present = [c for c in COMPARISONS if any(c[0] in t["modes"] and c[1] in t["modes"] for t in tasks.values())]
    if not present:
        return []
    lines = [
        "",
        "Paired differences on the task metric (percentage points, mean ± sd over the seeds both columns have run; "
        "the two are trained and tested on the same rows, with the same validation split per seed). * marks a "
        "difference positive in every seed. The sd is the training's noise only, since every seed is tested on the "
        "same rows; [low, high] is the 95% interval of the mean over resampled test rows (paired bootstrap, 2,000 "
        "draws), the test set's share, given where every seed of both columns saved its test predictions:",
        "",
        "| Dataset | " + " | ".join(f"{SHORT_NAMES[c]} − {SHORT_NAMES[b]}" for c, b, _ in present) + " |",
        "|" + "---|" * (len(present) + 1),
    ]
    for name, row in tasks.items():
        cells = []
        for c, b, _ in present:
            d = paired_difference(row, c, b, row["metric"])
            if d is None:
                cells.append("-")
                continue
            mean, sd, n, every = d
            spread = f" ± {100 * sd:.1f}" if n > 1 else " (n=1)"
            interval = row.get("intervals", {}).get(f"{c}-{b}")
            rows_ci = f" [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]" if interval else ""
            cells.append(f"{100 * mean:+.1f}{spread}{' *' if every and n > 1 else ''}{rows_ci}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for c, b, question in present:
        diffs = [paired_difference(row, c, b, row["metric"]) for row in tasks.values()]
        diffs = [d for d in diffs if d is not None]
        wins = sum(d[0] > 0 for d in diffs)
        clear = sum(d[3] and d[2] > 1 for d in diffs)
        claim = question[0].upper() + question[1:]
        intervals = [i for i in (row.get("intervals", {}).get(f"{c}-{b}") for row in tasks.values()) if i]
        rows_ci = ""
        if intervals:
            above = sum(i[0] > 0 for i in intervals)
            rows_ci = f"; the test rows' 95% interval is above 0 on {above} of the {len(intervals)} with one"
        if diffs and all(d[2] == 1 for d in diffs):  # "0 in every seed" would read as a verdict one seed cannot give
            lines.append(
                f"- {claim} on **{wins} of {len(diffs)}** tasks, in one seed (no spread: none counted clear){rows_ci}."
            )
            continue
        lines.append(
            f"- {claim} on **{wins} of {len(diffs)}** tasks by the mean, {clear} of them in every seed" + rows_ci + "."
        )
    return lines


def write_report(summary: dict, out: Path) -> None:
    atomic_write_text(out / "results.md", markdown_table(summary))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary["tasks"])
    modes = [(k, t) for k, t in COLUMNS if any(k in summary["tasks"][n]["modes"] for n in tasks)]
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(tasks)), 4.5))
    width = 0.8 / max(1, len(modes))
    x = np.arange(len(tasks))
    for i, (k, title) in enumerate(modes):
        means, sds = [], []
        for n in tasks:
            e = summary["tasks"][n]["modes"].get(k)
            metric = summary["tasks"][n]["metric"]
            means.append(e["metrics"][metric]["mean"] if e else np.nan)
            sds.append(e["metrics"][metric]["sd"] if e else 0)
        several = len(summary["config"]["seeds"]) > 1  # one seed has no spread to draw
        ax.bar(
            x + (i - (len(modes) - 1) / 2) * width, means, width, yerr=sds if several else None, label=title, capsize=2
        )
    ax.set_xticks(x, [f"{n}\n({summary['tasks'][n]['metric']})" for n in tasks], rotation=30, ha="right", fontsize=8)
    cfg = summary["config"]
    seeds = cfg["seeds"]
    spread = f"mean ± sd over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}, no error bars"
    ax.set_title(f"{cfg['profile']} profile ({spread})", fontsize=10)
    ax.set_ylabel("task metric (test)")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    if modes:
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    save_figure(fig, out / "results.png")
    plot_differences(summary, out / "results_vs_kmer.png")


def plot_differences(summary: dict, path: Path) -> bool:
    """The paired differences of ``baseline_comparison`` as bars (mean ± sd over seeds) around zero: above the line a
    column beats its baseline. False (and no file) when no task has a pair to compare."""
    import matplotlib.pyplot as plt

    tasks = summary["tasks"]
    names = list(tasks)
    present = [c for c in COMPARISONS if any(c[0] in t["modes"] and c[1] in t["modes"] for t in tasks.values())]
    if not present:
        return False
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(names)), 4.5))
    width = 0.8 / len(present)
    x = np.arange(len(names))
    drawn = False
    for i, (column, baseline, _) in enumerate(present):
        diffs = [paired_difference(tasks[n], column, baseline, tasks[n]["metric"]) for n in names]
        means = [100 * d[0] if d else np.nan for d in diffs]
        sds = [100 * d[1] if d and d[2] > 1 else np.nan for d in diffs]  # one seed: no bar of spread
        offset = (i - (len(present) - 1) / 2) * width
        label = f"{SHORT_NAMES[column]} − {SHORT_NAMES[baseline]}"
        ax.bar(x + offset, means, width, yerr=sds, capsize=2, ecolor="0.5", label=label)
        rows_ci = [tasks[n].get("intervals", {}).get(f"{column}-{baseline}") for n in names]
        at = [j for j, ci in enumerate(rows_ci) if ci]
        if at:
            low, high = ([100 * rows_ci[j][k] for j in at] for k in (0, 1))
            label = None if drawn else "95% interval over test rows"
            ax.vlines(x[at] + offset + width / 4, low, high, color="black", linewidth=1.5, label=label)
            drawn = True
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{n}\n({tasks[n]['metric']})" for n in names], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("paired difference, task metric (points)")
    ax.set_title(
        "Each column against its baseline, seed by seed (mean ± sd over the seeds both have, grey)", fontsize=10
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
    return True
