"""Epoch by epoch, the selected learning rate's training loss and validation MCC of one task and mode, from the saved
runs of one or more benchmark folders (the same rows and validation split per seed in each): what a longer schedule
changes, or where a run stopped.

    .venv/bin/python benchmarks/validation_curves.py /work/runs/scratch6 /work/runs/scratch20 \
        --names "6 epochs" "20 epochs" --task gb_human_ocr_ensembl --mode scratch \
        --out docs/benchmarks/quick-3seeds/scratch_epochs/curves.png

Prints one markdown row per run (selected epoch, its validation MCC, test MCC, classes predicted) and, with --out,
draws the curves beside it (.png) and writes the rows (.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hyenadna.utils.io import atomic_write_text, save_figure


def load_runs(folder: Path, task: str, mode: str) -> dict[int, dict]:
    """{seed: run} for the runs saved under ``folder``/runs/``task``/``mode``."""
    runs = {}
    for path in sorted((folder / "runs" / task / mode).glob("seed*.json")):
        run = json.loads(path.read_text())
        runs[int(run["seed"])] = run
    if not runs:
        raise SystemExit(f"{folder}: no saved {mode} runs of {task}")
    return runs


def rows(tables: dict[str, dict[int, dict]]) -> list[str]:
    out = [
        "| runs | seed | epochs run | selected (lr, epoch) | validation MCC | test MCC | classes predicted |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in tables.items():
        for seed, run in sorted(runs.items()):
            sel = run["selected"]
            out.append(
                f"| {name} | {seed} | {len(run['history'])} | {sel['lr']:g}, {sel['epoch']} | {run['val_mcc']:.3f} | "
                f"{run['test']['mcc']:.3f} | {run['test'].get('predicted_classes', '-')} |"
            )
    return out


def plot(tables: dict[str, dict[int, dict]], title: str, path: Path) -> None:
    fig, (ax_loss, ax_mcc) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, runs) in enumerate(tables.items()):
        for seed, run in sorted(runs.items()):
            epochs = [h["epoch"] for h in run["history"]]
            style = {"color": colours[i % len(colours)], "marker": "o", "ms": 3, "lw": 1}
            label = f"{name}, seed {seed}"
            line = ["-", "--", ":"][seed % 3]
            ax_loss.plot(epochs, [h["train_loss"] for h in run["history"]], line, label=label, **style)
            ax_mcc.plot(epochs, [h["val_mcc"] for h in run["history"]], line, label=label, **style)
            best = run["selected"]["epoch"]
            if best:
                ax_mcc.plot([best], [run["val_mcc"]], "*", color=style["color"], ms=10)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss (selected learning rate)")
    ax_mcc.set(xlabel="epoch", ylabel="validation MCC", title="validation MCC (*: the epoch kept)")
    ax_mcc.axhline(0, color="grey", lw=0.5)
    for ax in (ax_loss, ax_mcc):
        ax.grid(alpha=0.3)
    ax_mcc.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)  # closes it


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--names", nargs="+")
    p.add_argument("--task", required=True)
    p.add_argument("--mode", default="scratch", choices=["finetune", "scratch"])
    p.add_argument("--out", type=Path, help="the plot (.png); the table goes beside it (.md)")
    args = p.parse_args()
    names = args.names or [str(f) for f in args.folders]
    if len(names) != len(args.folders):
        p.error("one --names entry per folder")
    tables = {n: load_runs(f, args.task, args.mode) for n, f in zip(names, args.folders, strict=True)}
    table = "\n".join(rows(tables)) + "\n"
    print(table)
    if args.out:
        plot(tables, f"{args.task}, {args.mode}", args.out)
        atomic_write_text(args.out.with_suffix(".md"), table)


if __name__ == "__main__":
    main()
