"""Row-by-row test predictions for benchmark runs saved before the runner kept them (thirty-fourth session), so that
the report can bootstrap their paired differences over test rows.

Re-runs a table's saved runs of the given modes with the table's own config (results.json), into a scratch folder,
and only where a re-run's test metrics and recipe equal the saved run's exactly, adds its predictions to the saved
run (atomically; nothing else in it changes, and "predictions_from" says where they came from). A re-run that
differs is named and its saved run left as it was: predictions of another model would make a false interval. Meant
for the cheap modes (k-mer in seconds, probe in a minute or two per task); the trained columns get predictions when
they are run again.

    HYENADNA_AUTOTUNE=docs/benchmarks/quick-3seeds/runs/gb_human_enhancers_cohn/scratch/seed0.json \\
        .venv/bin/python benchmarks/backfill_predictions.py docs/benchmarks/quick-3seeds --modes kmer probe
    hyenadna benchmark --tasks-dir ../shared/benchmarks --quick --out docs/benchmarks/quick-3seeds --report-only
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import fields
from datetime import date
from pathlib import Path

from hyenadna.benchmark.runner import BenchmarkConfig, run_benchmark
from hyenadna.utils.io import atomic_write_text


def backfill(table: Path, modes: list[str], log=print) -> dict[str, int]:
    """Counts of runs {"added", "differ", "had"}; see the module docstring."""
    config = json.loads((table / "results.json").read_text())["config"]
    known = {f.name for f in fields(BenchmarkConfig)}
    cfg = BenchmarkConfig(**{k: v for k, v in config.items() if k in known})
    counts = {"added": 0, "differ": 0, "had": 0}
    todo = [p for m in modes for p in sorted(table.glob(f"runs/*/{m}/seed*.json"))]
    todo = [p for p in todo if json.loads(p.read_text())["seed"] in cfg.seeds]
    if not todo:
        return counts
    with tempfile.TemporaryDirectory() as scratch:
        # a saved path from another machine is not there: then the model by name (None: the bundled one); the
        # recipe holds the weights' fingerprint, so other weights show up as a differing recipe
        model_path = config.get("model_path") if Path(config.get("model_path") or "/nonexistent").exists() else None
        rerun = BenchmarkConfig(
            **{
                **vars(cfg),
                "out_dir": scratch,
                "modes": modes,
                "tasks": sorted({p.parts[-3] for p in todo}),
                "model_path": model_path,
                "weights": None,
            }
        )
        run_benchmark(rerun, log=lambda m: None)
        for path in todo:
            saved = json.loads(path.read_text())
            if "test_predictions" in saved:
                counts["had"] += 1
                continue
            new = json.loads((Path(scratch) / path.relative_to(table)).read_text())
            if new["test"] != saved["test"] or new["recipe"] != saved["recipe"]:
                counts["differ"] += 1
                what = "test metrics" if new["test"] != saved["test"] else "recipe"
                log(f"{path}: the re-run's {what} differ; left without predictions ({new['test']} vs {saved['test']})")
                continue
            saved.update(
                {
                    "test_predictions": new["test_predictions"],
                    "test_labels": new["test_labels"],
                    "predictions_from": f"a re-run on {date.today()} with the same test metrics and recipe",
                }
            )
            atomic_write_text(path, json.dumps(saved, indent=1))
            counts["added"] += 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", type=Path, help="a benchmark output folder (results.json and runs/)")
    ap.add_argument("--modes", nargs="+", default=["kmer", "probe"], choices=["kmer", "probe", "finetune", "scratch"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: leaves a core to other work)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    counts = backfill(args.table, args.modes)
    print(
        f"{args.table}: predictions added to {counts['added']} runs; {counts['differ']} re-runs differed; "
        f"{counts['had']} had them"
    )


if __name__ == "__main__":
    main()
