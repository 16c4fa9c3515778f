"""Did a benchmark column train long enough? For each saved run of one mode, in one or more benchmark folders: how many
of its learning rates had their best validation MCC at the schedule's last epoch (the schedule, not early stopping,
ended them while still improving), and whether the selected rate's training loss was still falling at its end.

    .venv/bin/python benchmarks/schedule_ends.py /tmp/old1k/docs/benchmarks/quick-3seeds docs/benchmarks/quick-3seeds \
        --names "6 epochs" "up to 20" --out docs/benchmarks/quick-3seeds/scratch20/schedule_ends.md

(/tmp/old1k: the 1k table on its earlier schedules, from git; docs/benchmarks/quick-3seeds/scratch20/README.md.)

Unlike the kept model's validation MCC, which is a maximum over every epoch and rate and so rises with the number of
epochs even where training gains nothing, a rate cut at its best epoch is evidence of too short a schedule that more
epochs cannot manufacture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hyenadna.benchmark.runner import saved_runs
from hyenadna.training.patience import left_chance
from hyenadna.utils.io import atomic_write_text


def load_runs(folder: Path, mode: str) -> list[dict]:
    runs = saved_runs(folder, mode)
    if not runs:
        raise SystemExit(f"{folder}: no saved {mode} runs")
    return runs


def schedule_end(run: dict) -> dict:
    """One run's counts: its rates, the rates best at the schedule's last epoch, and whether the selected rate ran the
    whole schedule with its training loss falling over the last epoch."""
    epochs = run["recipe"]["epochs"]
    trained = [h for h in run["history"] if h["epoch"] > 0]  # epoch 0: an LP-FT start, not a trained epoch
    falling = len(trained) == epochs > 1 and trained[-1]["train_loss"] < trained[-2]["train_loss"]
    return {
        "rates": len(run["lr_grid"]),
        "cut": sum(g["epoch"] == epochs for g in run["lr_grid"]),
        "selected_cut": run["selected"]["epoch"] == epochs,
        "still_falling": falling,
    }


def never_learned(run: dict) -> bool:
    """Whether the selected rate's training loss never fell 5% below its first epoch's. For a model from random
    weights that is a model still at chance (its first epoch's loss is about ln K), however its validation MCC moved:
    on 100 validation rows a chance model scores 0.1-0.2 by luck, which starts early stopping's patience."""
    losses = [h["train_loss"] for h in run["history"] if h["epoch"] > 0]
    return bool(losses) and not left_chance(min(losses), losses[0])


def table(folders: dict[str, list[dict]], mode: str = "scratch") -> str:
    tasks = sorted({r["task"] for runs in folders.values() for r in runs})
    names = list(folders)
    head = " | ".join(
        f"{n}: rates best at the last epoch | {n}: selected rate ran it all, loss still falling" for n in names
    )
    out = [f"| task | {head} |", "|---|" + "---|---|" * len(names)]
    totals = {n: [0, 0, 0, 0] for n in names}  # runs, rates, rates cut, selected still falling
    for task in tasks:
        cells = []
        for n in names:
            ends = [schedule_end(r) for r in folders[n] if r["task"] == task]
            if not ends:
                cells += ["-", "-"]
                continue
            rates, cut = sum(e["rates"] for e in ends), sum(e["cut"] for e in ends)
            falling = sum(e["still_falling"] for e in ends)
            t = totals[n]
            t[0], t[1], t[2], t[3] = t[0] + len(ends), t[1] + rates, t[2] + cut, t[3] + falling
            cells += [f"{cut} of {rates}", f"{falling} of {len(ends)}"]
        out.append(f"| {task} | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        runs, rates, cut, falling = totals[n]
        cells += [f"**{cut} of {rates}**", f"**{falling} of {runs}**"]
    out.append("| all | " + " | ".join(cells) + " |")
    epochs = {n: sorted({r["recipe"]["epochs"] for r in folders[n]}) for n in names}
    note = "; ".join(
        f"{n}: schedule of {', '.join(map(str, e))} epochs, {len(folders[n])} runs" for n, e in epochs.items()
    )
    if mode != "scratch":  # a fine-tuned model starts from pretrained weights, not from chance
        return "\n".join(out) + f"\n\n{note}.\n"
    stuck = []
    for n in names:
        runs = [r for r in folders[n] if never_learned(r)]
        which = ", ".join(f"{r['task']} seed {r['seed']}" for r in sorted(runs, key=lambda r: (r["task"], r["seed"])))
        stuck.append(f"{n}: {len(runs)} of {len(folders[n])}" + (f" ({which})" if runs else ""))
    return (
        "\n".join(out) + f"\n\n{note}.\n\nRuns whose selected rate's training loss never fell 5% below its first "
        f"epoch's (from random weights: a model that never left chance): {'; '.join(stuck)}.\n"
    )


def paired_validation(short: list[dict], long: list[dict]) -> str:
    """The rule that decides whether the longer schedule becomes the default (docs/benchmarks/quick-3seeds/scratch20,
    written before its seeds 1-2 were in): it cuts under a tenth of its rates, and the kept model's validation MCC is
    not lower on average, paired run by run. Test moves are listed beside it and play no part in it."""
    by_run = {(r["task"], r["seed"]): r for r in short}
    pairs = [(by_run[(r["task"], r["seed"])], r) for r in long if (r["task"], r["seed"]) in by_run]
    if not pairs:
        return "No run is in both folders.\n"
    val = [b["val_mcc"] - a["val_mcc"] for a, b in pairs]
    test = [100 * (b["test"][b["metric"]] - a["test"][a["metric"]]) for a, b in pairs]
    # how far validation is a guide to test here: the direction of the two MCC moves, where validation moved
    moved = [(v, b["test"]["mcc"] - a["test"]["mcc"]) for v, (a, b) in zip(val, pairs, strict=True) if abs(v) > 1e-9]
    same_way = sum((v > 0) == (t > 0) for v, t in moved)
    rates = sum(len(r["lr_grid"]) for r in long)
    cut = sum(g["epoch"] == r["recipe"]["epochs"] for r in long for g in r["lr_grid"])
    higher, lower = sum(v > 1e-9 for v in val), sum(v < -1e-9 for v in val)
    mean_val = sum(val) / len(val)
    few_cut, not_lower = 10 * cut < rates, mean_val >= 0
    complete = len(pairs) == len(short) == len(long)
    return (
        f"Paired on the {len(pairs)} runs (task and seed) both have, the longer schedule's kept model against the "
        f"shorter's: validation MCC higher in {higher}, equal in {len(val) - higher - lower}, lower in {lower}, mean "
        f"{mean_val:+.3f}; test metric (not part of the rule) moved {min(test):+.1f} to {max(test):+.1f} points, mean "
        f"{sum(test) / len(test):+.1f}; where validation MCC moved, test MCC moved the same way in {same_way} of "
        f"{len(moved)}.\n\n"
        f"The rule on these runs: rates cut by the longer schedule {cut} of {rates} "
        f"({'under' if few_cut else 'not under'} a tenth); kept validation MCC {'not lower' if not_lower else 'lower'} "
        f"on average. {'Both hold' if few_cut and not_lower else 'The rule does not hold'}"
        + (
            f" on all {len(pairs)} runs of both arms.\n"
            if complete
            else " so far; it decides only when every run of both arms is in.\n"
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--names", nargs="+")
    p.add_argument("--mode", default="scratch", choices=["finetune", "scratch"])
    p.add_argument("--out", type=Path, help="write the table here (.md) as well")
    args = p.parse_args()
    names = args.names or [str(f) for f in args.folders]
    if len(names) != len(args.folders):
        p.error("one --names entry per folder")
    folders = {n: load_runs(f, args.mode) for n, f in zip(names, args.folders, strict=True)}
    text = table(folders, args.mode)
    if len(folders) == 2:
        text += "\n" + paired_validation(*folders.values())
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
