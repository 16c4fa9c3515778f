"""Row-by-row test predictions for benchmark runs saved before the runner kept them (thirty-fourth session), so that
the report can bootstrap their paired differences over test rows.

Re-runs a table's saved runs of the given modes with the table's own config (results.json), into a scratch folder,
and only where a re-run's test metrics and recipe equal the saved run's exactly, adds its predictions to the saved
run (atomically; nothing else in it changes, and "predictions_from" says where they came from). A re-run that
differs is named and its saved run left as it was: predictions of another model would make a false interval. The
cheap modes (k-mer in seconds, probe in a minute or two per task) re-run whole; a trained run (finetune, scratch)
re-runs its selected learning rate alone, with the saved run's torch threads, and counts only if its history, kept
epoch and test metrics all equal the saved run's (a rate trains the same inside its grid or alone), at the cost of one
rate of the grid. Pin the kernels the runs recorded, as below, or the float rounding moves; and run it on the CPU
model that ran them (trained runs saved on another are skipped: the same kernel names compile to other instructions).

    HYENADNA_AUTOTUNE=docs/benchmarks/quick-3seeds/runs/gb_human_enhancers_cohn/scratch/seed0.json \\
        .venv/bin/python benchmarks/backfill_predictions.py docs/benchmarks/quick-3seeds --modes kmer probe
    HYENADNA_AUTOTUNE=docs/benchmarks/quick-3seeds/runs/gb_human_enhancers_cohn/scratch/seed0.json \\
        .venv/bin/python benchmarks/backfill_predictions.py docs/benchmarks/quick-3seeds --modes scratch finetune
    hyenadna benchmark --tasks-dir ../shared/benchmarks --quick --out docs/benchmarks/quick-3seeds --report-only
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import fields, replace
from datetime import date
from pathlib import Path

from hyenadna.benchmark.runner import BenchmarkConfig, run_benchmark
from hyenadna.utils.io import atomic_write_text, ignored_folder


def _table_config(table: Path) -> BenchmarkConfig:
    config = json.loads((table / "results.json").read_text())["config"]
    known = {f.name for f in fields(BenchmarkConfig)}
    cfg = BenchmarkConfig(**{k: v for k, v in config.items() if k in known})
    # a saved path from another machine is not there: then the model by name (None: the bundled one); the recipe
    # holds the weights' fingerprint, so other weights show up as a differing recipe
    path = config.get("model_path")
    return replace(cfg, model_path=path if path and Path(path).exists() else None, weights=None)


def _add(path: Path, saved: dict, new: dict, how: str) -> None:
    saved.update(
        {
            "test_predictions": new["test_predictions"],
            "test_labels": new["test_labels"],
            "predictions_from": f"a re-run on {date.today()} {how}",
        }
    )
    atomic_write_text(path, json.dumps(saved, indent=1))


def _rerun_selected_rate(cfg: BenchmarkConfig, saved: dict, scratch: str) -> dict:
    """A trained run again, at its selected learning rate alone. Each rate of a grid trains on its own (the seed's
    own starting weights, data order and schedule), so this rate's model comes out as it did inside the grid, at the
    cost of one rate; the torch threads are the saved run's, since they set the float rounding."""
    import torch

    mode, seed = saved["mode"], saved["seed"]
    lrs = "finetune_lrs" if mode == "finetune" else "scratch_lrs"
    rerun = replace(
        cfg, out_dir=scratch, modes=[mode], tasks=[saved["task"]], seeds=[seed], **{lrs: [saved["selected"]["lr"]]}
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(saved.get("environment", {}).get("threads", threads))
    try:
        run_benchmark(rerun, log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    return json.loads((Path(scratch) / "runs" / saved["task"] / mode / f"seed{seed}.json").read_text())


def _differs(saved: dict, new: dict) -> str | None:
    """What keeps a whole re-run's predictions (k-mer, probe) from standing for the saved run's, if anything."""
    if new["test"] != saved["test"] or new["recipe"] != saved["recipe"]:
        what = "test metrics" if new["test"] != saved["test"] else "recipe"
        return f"{what} differ ({new['test']} vs {saved['test']})"
    return None


def _trained_differs(saved: dict, new: dict) -> str | None:
    """What keeps a selected-rate re-run's predictions from standing for the saved run's kept model, if anything."""
    if new["test"] != saved["test"]:
        kernels = [run.get("environment", {}).get("kernels") for run in (new, saved)]
        hint = "; it ran other kernels (pin the saved ones: HYENADNA_AUTOTUNE)" if kernels[0] != kernels[1] else ""
        return f"test metrics differ ({new['test']} vs {saved['test']}){hint}"
    if {**new["recipe"], "lrs": None} != {**saved["recipe"], "lrs": None}:
        return "recipe differs"
    if new["history"] != saved["history"] or new["selected"] != saved["selected"]:
        return "training differs (history or kept epoch)"
    return None


def backfill(
    table: Path,
    modes: list[str],
    log=print,
    tasks: list[str] | None = None,
    seeds: list[int] | None = None,
    work: Path | None = None,
    any_cpu: bool = False,
) -> dict[str, int]:
    """Counts of runs {"added", "differ", "had", "elsewhere"}; see the module docstring. ``tasks``, ``seeds``: only
    these. ``work``: where the trained re-runs are kept (default: a temporary folder); there a killed backfill resumes
    them from their last epoch, and a finished one is read back, as the benchmark resumes its own runs. A trained run
    saved on another CPU model is skipped ("elsewhere") unless ``any_cpu``: its float rounding follows that CPU's
    kernels (an AVX2-only Zen 1 run re-run on an AVX-512 Zen 4 kept another epoch's model), so hours of re-running
    would only find that it differs."""
    cfg = _table_config(table)
    runs = {p: json.loads(p.read_text()) for m in modes for p in sorted(table.glob(f"runs/*/{m}/seed*.json"))}
    runs = {
        p: r for p, r in runs.items() if r["seed"] in (seeds or cfg.seeds) and (tasks is None or r["task"] in tasks)
    }
    todo = {p: r for p, r in runs.items() if "test_predictions" not in r}
    counts = {"added": 0, "differ": 0, "had": len(runs) - len(todo), "elsewhere": 0}
    from hyenadna.ops.autotune import cpu_features, cpu_name

    here = f"{cpu_name()} ({cpu_features()})"  # as the runner records it
    cheap = {p: r for p, r in todo.items() if r["mode"] in ("kmer", "probe")}
    with tempfile.TemporaryDirectory() as tmp:
        work = work or Path(tmp)
        if cheap:  # the whole grid of seeds at once: seconds to minutes a task
            modes, names = sorted({r["mode"] for r in cheap.values()}), sorted({r["task"] for r in cheap.values()})
            run_benchmark(replace(cfg, out_dir=tmp, modes=modes, tasks=names), log=lambda m: None)
        for path, saved in todo.items():
            if path in cheap:
                new = json.loads((Path(tmp) / path.relative_to(table)).read_text())
                why = _differs(saved, new)
                how = "with the same test metrics and recipe"
            else:
                ran_on = saved.get("environment", {}).get("cpu")
                if ran_on is not None and ran_on != here and not any_cpu:
                    counts["elsewhere"] += 1
                    log(f"{path}: ran on {ran_on}, this is {here}: a re-run would not repeat it; skipped")
                    continue
                lr = saved["selected"]["lr"]
                log(f"{path}: re-running its selected rate alone (lr {lr:g})")
                new = _rerun_selected_rate(cfg, saved, str(work / f"{saved['task']}-{saved['mode']}-{path.stem}"))
                why = _trained_differs(saved, new)
                how = f"of the selected rate alone (lr {lr:g}), same history and test metrics"
            if why is not None:
                counts["differ"] += 1
                log(f"{path}: the re-run's {why}; left without predictions")
                continue
            _add(path, saved, new, how)
            counts["added"] += 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", type=Path, help="a benchmark output folder (results.json and runs/)")
    ap.add_argument("--modes", nargs="+", default=["kmer", "probe"], choices=["kmer", "probe", "finetune", "scratch"])
    ap.add_argument("--tasks", nargs="+", help="only these tasks (default: all)")
    ap.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: the table's)")
    ap.add_argument(
        "--work",
        type=Path,
        help="keep the trained re-runs here, so that a killed backfill resumes them (default: TABLE/backfill, which "
        "git ignores)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: leaves a core to other work)")
    ap.add_argument("--any-cpu", action="store_true", help="re-run trained runs saved on another CPU model too")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work = ignored_folder(args.work or args.table / "backfill", "re-runs of benchmarks/backfill_predictions.py")
    counts = backfill(args.table, args.modes, tasks=args.tasks, seeds=args.seeds, work=work, any_cpu=args.any_cpu)
    print(
        f"{args.table}: predictions added to {counts['added']} runs; {counts['differ']} re-runs differed; "
        f"{counts['had']} had them; {counts['elsewhere']} saved on another CPU model skipped"
    )


if __name__ == "__main__":
    main()
