"""Would another early-stopping rule have changed a benchmark column? Replays each saved run's epochs under a rule
(hyenadna/training/patience.py, the code the training loop runs) and says, run by run, whether its result stands.

    .venv/bin/python benchmarks/patience_rules.py docs/benchmarks/quick-3seeds --rule "training loss"
    .venv/bin/python benchmarks/patience_rules.py docs/benchmarks/quick-3seeds --rule "training loss" \
        --against docs/benchmarks/quick-3seeds/patience_loss   # the runs that needed one, paired, and the rule

Training does not depend on the stopping rule, so a rate's epochs are the same under either rule up to the first
epoch either one stops it. A rate the other rule stops at the same epoch is unchanged; one it stops earlier keeps
the best of fewer epochs (its validation MCC is then known; the test score is known only where the kept model is
the same); one it would train past its saved epochs needs a run. Runs saved before the benchmark kept every rate's
epochs (before December 2026) hold only the selected rate's: the others are "not saved", and the run is undecided.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hyenadna.benchmark.runner import saved_runs
from hyenadna.training.patience import PATIENCE_FROM, PATIENCE_FROM_VALIDATION, left_chance, stop_epoch
from hyenadna.utils.io import atomic_write_text


def load_runs(folder: Path, mode: str) -> list[dict]:
    runs = saved_runs(folder, mode)
    if not runs:
        raise SystemExit(f"{folder}: no saved {mode} runs")
    return runs


def rate_under(history: list[dict], patience: int, rule: str, epochs: int) -> dict:
    """One rate's saved epochs replayed under ``rule``: ``status`` (same / earlier / longer) and, unless it needs a
    longer run, the kept epoch and its validation MCC."""
    trained = [h for h in history if h["epoch"] > 0]
    ran = trained[-1]["epoch"] if trained else 0
    stop = stop_epoch(history, patience, rule)
    if stop is None and ran < epochs:
        return {"status": "longer"}
    end = ran if stop is None else stop
    kept = max((h for h in history if h["epoch"] <= end), key=lambda h: h["val_mcc"])
    return {"status": "same" if end == ran else "earlier", "epoch": kept["epoch"], "val_mcc": kept["val_mcc"]}


def replay(run: dict, rule: str) -> dict:
    """A saved run under ``rule``: each rate's status, and the run's verdict (unchanged, another kept model, needs a
    run, or undecided)."""
    recipe = run["recipe"]
    saved_rule = recipe.get("patience_from", PATIENCE_FROM_VALIDATION)
    rates = []
    for g in run["lr_grid"]:
        history = g.get("history") or (run["history"] if g["lr"] == run["selected"]["lr"] else None)
        if history is None:
            rates.append({"lr": g["lr"], "status": "not saved"})
        else:
            rates.append({"lr": g["lr"], **rate_under(history, recipe["patience"], rule, recipe["epochs"])})
    statuses = {r["status"] for r in rates}
    if rule == saved_rule or statuses == {"same"}:
        verdict = "unchanged"
    elif "longer" in statuses:
        verdict = "needs a run"
    elif "not saved" in statuses:
        verdict = "undecided"
    else:  # every rate known, some stopped earlier: the kept model is the best of what remains
        best = max(rates, key=lambda r: r["val_mcc"])
        same = best["lr"] == run["selected"]["lr"] and best["epoch"] == run["selected"]["epoch"]
        verdict = "unchanged" if same else f"another kept model (validation MCC {best['val_mcc']:.3f})"
    return {"task": run["task"], "seed": run["seed"], "rule": saved_rule, "rates": rates, "verdict": verdict}


def table(replays: list[dict], rule: str) -> str:
    out = [
        f"| task | seed | each rate under {rule!r} | verdict |",
        "|---|---|---|---|",
    ]
    for r in replays:
        rates = "; ".join(
            f"{x['lr']:g}: {x['status']}" + (f" (kept epoch {x['epoch']})" if x["status"] == "earlier" else "")
            for x in r["rates"]
        )
        out.append(f"| {r['task']} | {r['seed']} | {rates} | {r['verdict']} |")
    verdicts = [r["verdict"].split(" (")[0] for r in replays]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
    return "\n".join(out) + f"\n\n{len(replays)} runs: {counts}.\n"


def kept_left_chance(run: dict) -> bool:
    """Whether the kept epoch's training loss is 5% below the first epoch's: the kept model has left chance."""
    trained = [h for h in run["history"] if h["epoch"] > 0]
    kept = next(h for h in trained if h["epoch"] == run["selected"]["epoch"])
    return left_chance(kept["train_loss"], trained[0]["train_loss"])


def paired(saved: list[dict], rerun: list[dict], rule: str) -> str:
    """The re-run runs against the saved ones, task and seed paired, and the rule written before the last two of the
    first five were in (docs/benchmarks/quick-3seeds/README.md): ``rule`` becomes the default if in at least 4 of 5
    runs the kept model's validation MCC is more than 0.1 higher and it has left chance. Test plays no part in it."""
    by_run = {(r["task"], r["seed"]): r for r in saved}
    head = "validation MCC, saved -> re-run | kept epoch left chance | test metric | test MCC | CPU (saved)"
    out = [f"| task | seed | {head} |", "|---|---|---|---|---|---|---|"]
    passed = 0
    pairs = [(by_run[(r["task"], r["seed"])], r) for r in rerun if (r["task"], r["seed"]) in by_run]
    for a, b in pairs:
        rise, learnt = b["val_mcc"] - a["val_mcc"], kept_left_chance(b)
        passed += rise > 0.1 and learnt
        metric = b["metric"]
        out.append(
            f"| {b['task']} | {b['seed']} | {a['val_mcc']:.3f} -> {b['val_mcc']:.3f} ({rise:+.3f}) | "
            f"{'yes' if learnt else 'no'} | {metric} {100 * a['test'][metric]:.1f} -> {100 * b['test'][metric]:.1f} | "
            f"{a['test']['mcc']:.3f} -> {b['test']['mcc']:.3f} | {a.get('environment', {}).get('cpu', '?')} |"
        )
    holds = len(pairs) >= 5 and 5 * passed >= 4 * len(pairs)
    return "\n".join(out) + (
        f"\n\nValidation more than 0.1 higher with the kept model out of chance in {passed} of {len(pairs)} runs: "
        f"{rule!r} {'becomes' if holds else 'does not become'} the default by the rule (at least 4 of 5).\n"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a benchmark output folder (its runs/ holds the saved runs)")
    p.add_argument("--rule", required=True, choices=PATIENCE_FROM)
    p.add_argument("--mode", default="scratch", choices=["finetune", "scratch"])
    p.add_argument("--against", type=Path, help="a folder of the same runs re-run under --rule: pair them")
    p.add_argument("--out", type=Path, help="write the table here (.md) as well")
    args = p.parse_args()
    runs = load_runs(args.folder, args.mode)
    if args.against:
        text = paired(runs, load_runs(args.against, args.mode), args.rule)
    else:
        text = table([replay(run, args.rule) for run in runs], args.rule)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
