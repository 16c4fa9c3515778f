"""Probe score per layer: which hidden layer of a model separates a task's classes best, on frozen embeddings.

For each task, embeddings of every layer come from one pass (``get_embeddings(layer=[0, ..., n_layer])``), mean
pooled. Per layer and seed: split train 90/10 with the seed, choose the logistic regression's C on the validation part,
refit on all train rows, score the test split once (scikit-learn, whole dataset).

    .venv/bin/python benchmarks/layer_probe.py --tasks promoter_all splice_sites_donors --max-train 2000 --max-test 1000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from hyenadna import HyenaDNA, HyenaDNAConfig
from hyenadna.benchmark.tasks import discover_tasks
from hyenadna.metrics import classification_metrics
from hyenadna.probe import make_probe
from hyenadna.utils.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def probe_layer(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, metric: str, k: int, seed: int):
    tr, va = train_test_split(np.arange(len(y)), test_size=0.1, random_state=seed, stratify=y)
    best = None
    for C in (0.01, 0.1, 1.0):
        pred = make_probe("logreg", seed, C=C).fit(X[tr], y[tr]).predict(X[va])
        score = classification_metrics(y[va], pred, k)[metric]
        if best is None or score > best[0]:
            best = (score, C)
    pred = make_probe("logreg", seed, C=best[1]).fit(X, y).predict(X_test)
    return {"C": best[1], "val": best[0], "test": classification_metrics(y_test, pred, k)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks-dir", default=str(ROOT.parent / "shared" / "benchmarks"))
    ap.add_argument("--tasks", nargs="+", default=["promoter_all", "splice_sites_donors"])
    ap.add_argument("--model", help="model name or path (default: the bundled model)")
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--max-test", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "layer_probe.json"))
    args = ap.parse_args()

    model = HyenaDNA(HyenaDNAConfig(model_name=args.model, batch_size=32, progress=False))
    layers = list(range(model.model.config.n_layer + 1))
    rows = []
    for task in discover_tasks(args.tasks_dir, args.tasks):
        task = task.subsample(args.max_train, args.max_test)
        t0 = time.time()
        X_all = model.get_embeddings(task.train["sequence"].tolist(), pooling="mean", layer=layers)
        T_all = model.get_embeddings(task.test["sequence"].tolist(), pooling="mean", layer=layers)
        seconds = time.time() - t0
        y, y_test = task.train["label"].to_numpy(), task.test["label"].to_numpy()
        for layer, X, X_test in zip(layers, X_all, T_all, strict=True):
            runs = [probe_layer(X, y, X_test, y_test, task.metric, task.num_classes, s) for s in args.seeds]
            scores = np.array([r["test"][task.metric] for r in runs])
            mcc = np.array([r["test"]["mcc"] for r in runs])
            rows.append(
                {
                    "task": task.name,
                    "metric": task.metric,
                    "layer": layer,
                    "mean": float(scores.mean()),
                    "sd": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
                    "mcc_mean": float(mcc.mean()),
                    "runs": runs,
                }
            )
            print(f"{task.name:24s} layer {layer}: {task.metric} {scores.mean():.3f} ± {rows[-1]['sd']:.3f}")
        print(f"{task.name}: embeddings of {len(layers)} layers in one pass, {seconds:.1f} s")
    result = {
        "model": model.source,
        "n_train": args.max_train,
        "n_test": args.max_test,
        "seeds": args.seeds,
        "command": "benchmarks/layer_probe.py " + " ".join(f"--tasks {' '.join(args.tasks)}".split()),
        "rows": rows,
    }
    atomic_write_text(args.out, json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
