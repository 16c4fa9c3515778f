"""The benchmark report in the model card's shape: one row per task, probing / fine-tuned / not-pretrained columns."""

from __future__ import annotations

import re
from pathlib import Path

from hyenadna.benchmark.suites import PUBLISHED_COLUMNS, published_source
from hyenadna.utils.io import atomic_write_text, save_png

COLUMNS = [
    ("kmer", "k-mer LR baseline"),
    ("probe", "HyenaDNA probing (frozen)"),
    ("finetune", "HyenaDNA pretrained (fine-tuned)"),
    ("scratch", "HyenaDNA not pretrained"),
]


REFERENCE_TITLE = "k-mer LR, full task (task.json)"


def _cell(entry: dict | None, metric: str) -> str:
    if entry is None:
        return "-"
    m = entry["metrics"][metric]
    sd = f" ± {100 * m['sd']:.1f}" if len(entry["seeds"]) > 1 else ""
    probe_only = sum(e == 0 for e in entry.get("selected_epochs", []))
    mark = f" †{probe_only}/{len(entry['seeds'])}" if probe_only else ""
    one_class = len(entry.get("one_class_seeds", []))
    mark += f" ‡{one_class}/{len(entry['seeds'])}" if one_class else ""
    return f"{100 * m['mean']:.1f}{sd}{mark}"


def _source_label(source: str) -> str:
    """Bundled weights are named as such, not by this machine's install path."""
    from hyenadna.hub import BUNDLED_DIR

    return re.sub(rf" from {re.escape(str(BUNDLED_DIR))}/\S+", " (bundled)", source)


def _lrs(values: list[float]) -> str:
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"


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
        f"{cfg['patience']}, learning rate chosen on validation from {_lrs(cfg['finetune_lrs'])} (fine-tuned, "
        f"{cfg['head_init']} head) and {_lrs(cfg['scratch_lrs'])} (not pretrained, random head, up to "
        f"{cfg.get('scratch_epochs') or 2 * cfg['epochs']} epochs)). Pretrained model: "
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
        cells = [_cell(row["modes"].get(k), metric) for k, _ in modes]
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
    if any(m.get("one_class_seeds") for t in summary["tasks"].values() for m in t["modes"].values()):
        lines += [
            "",
            "‡ k/n: in k of n seeds the model predicted a single class for every test row (MCC 0): it learnt "
            "nothing, and the mean includes those seeds as they are, so read such a cell as a failure to train, "
            "not as a baseline.",
        ]
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
        cells = [_cell(row["modes"].get(k), "mcc") for k, _ in modes]
        if ref:
            cells.append(_reference_cell(row, "mcc"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
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


def write_report(summary: dict, out: Path) -> None:
    atomic_write_text(out / "results.md", markdown_table(summary))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    save_png(fig, out / "results.png")
