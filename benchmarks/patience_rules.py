"""Would another early-stopping rule have changed a benchmark column? Replays each saved run's epochs under a rule
(hyenadna/training/patience.py, the code the training loop runs) and says, run by run, whether its result stands.

    .venv/bin/python benchmarks/patience_rules.py docs/benchmarks/quick-3seeds --rule "training loss" \
        --out docs/benchmarks/quick-3seeds/patience_loss/replay.md

Training does not depend on the stopping rule, so a rate's epochs are the same under either rule up to the first
epoch either one stops it. A rate the other rule stops at the same epoch is unchanged; one it stops earlier keeps
the best of fewer epochs (its validation MCC is then known; the test score is known only where the kept model is
the same); one it would train past its saved epochs needs a run. Runs saved before the benchmark kept every rate's
epochs (before December 2026) hold only the selected rate's: the others are "not saved", and the run is undecided.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hyenadna.training.patience import PATIENCE_FROM, PATIENCE_FROM_VALIDATION, stop_epoch
from hyenadna.utils.io import atomic_write_text


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a benchmark output folder (its runs/ holds the saved runs)")
    p.add_argument("--rule", required=True, choices=PATIENCE_FROM)
    p.add_argument("--mode", default="scratch", choices=["finetune", "scratch"])
    p.add_argument("--out", type=Path, help="write the table here (.md) as well")
    args = p.parse_args()
    paths = sorted((args.folder / "runs").glob(f"*/{args.mode}/seed*.json"))
    if not paths:
        raise SystemExit(f"{args.folder}: no saved {args.mode} runs")
    text = table([replay(json.loads(path.read_text()), args.rule) for path in paths], args.rule)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
