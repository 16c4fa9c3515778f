"""Why does the not-pretrained model fail on a task? One seed of the quick benchmark's not-pretrained run, with the
recipe's knobs open: learning rate, epochs, batch size, head initialisation. Every epoch's train loss and validation
MCC is printed (chance for a balanced binary task: train loss ln 2 = 0.693), so a run that never fits its own
training rows tells itself apart from one that overfits.

It first scores the random model's frozen features: a logistic regression on the mean-pooled features of the
training split (standardised, C in 0.01, 0.1, 1), on the validation split. Signal there and none after training means
training loses it; none anywhere, that the random features carry little.

    .venv/bin/python benchmarks/scratch_diagnosis.py --task gb_human_ocr_ensembl --seed 1 --lr 3e-4 1e-4
    .venv/bin/python benchmarks/scratch_diagnosis.py --task gb_human_ocr_ensembl --seed 1 --lr 1e-3 --epochs 20
    .venv/bin/python benchmarks/scratch_diagnosis.py --task gb_human_ocr_ensembl --seed 1 --batch-size 4 --lr 3e-4

Rows, seed and validation split are the quick benchmark's (``hyenadna benchmark --quick``: 1,000 training rows, 100
of them for validation); one thread, ~1 minute an epoch at ocr's 593 bases. ``--max-train 0`` trains on every row of
the task instead (ocr: 5,310, 531 for validation; ~5 minutes an epoch), to tell a model that cannot learn the task
from one that has too few rows to. Early stopping is off (patience = epochs): every epoch runs, and ``--out`` is
rewritten after each.

    .venv/bin/python benchmarks/scratch_diagnosis.py --plot curves.png a.json b.json   # validation MCC, all runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
QUICK_TRAIN_ROWS = 900  # the quick profile's 1,000 rows less the 10% validation split


def random_feature_probe(ft, seqs: list[str], y: np.ndarray, tr: np.ndarray, va: np.ndarray) -> dict[float, float]:
    """Validation MCC of a logistic regression on the random model's frozen mean-pooled features, per C."""
    from sklearn.metrics import matthews_corrcoef

    from hyenadna.probe import make_probe

    feats = ft._pooled_features(ft.process_data(seqs))
    out = {}
    for c in (0.01, 0.1, 1.0):
        model = make_probe("logreg", C=c).fit(feats[tr], y[tr])
        out[c] = float(matthews_corrcoef(y[va], model.predict(feats[va])))
    return out


def plot(out: str, paths: list[str]) -> None:
    """Validation MCC against training sequences seen, a line per run in the JSON files, labelled by rows and rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyenadna.utils.io import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4))
    colours: dict[float, str] = {}  # one colour per rate; solid lines for more rows than the quick profile's
    for path in paths:
        diag = json.loads(Path(path).read_text())
        a = diag["args"]
        for run in diag["runs"]:
            h, rows = run["history"], diag.get("train_rows", QUICK_TRAIN_ROWS)  # written before --max-train
            label = f"{rows:,} rows, lr {run['lr']:g}, batch {a['batch_size']}"
            seen = [r["epoch"] * rows for r in h]
            colour = colours.setdefault(run["lr"], f"C{len(colours)}")
            style = "-" if rows > QUICK_TRAIN_ROWS else ":"
            ax.plot(seen, [r["val_mcc"] for r in h], style, color=colour, marker="o", ms=3, label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("training sequences seen (epochs x rows)")
    ax.set_ylabel("validation MCC")
    ax.set_title(f"{diag['task']}, seed {diag['seed']}: the not-pretrained model")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main() -> None:
    from hyenadna.benchmark.runner import BenchmarkConfig, _fine_tuning_model, _pretrained_config, _split
    from hyenadna.benchmark.tasks import discover_tasks

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="gb_human_ocr_ensembl")
    ap.add_argument("--tasks-dir", default=str(REPO.parent / "shared" / "benchmarks"))
    ap.add_argument("--model", default="hyenadna-16k-d256-l3-grch37", help="the architecture to initialise at random")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, nargs="*", default=[1e-3], help="one run per rate (none: no training)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--head-init", choices=("random", "probe"), default="random")
    ap.add_argument(
        "--max-train", type=int, default=None, help="training rows, stratified (default: the quick profile's; 0: all)"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-probe", action="store_true", help="skip the probe on the random features")
    ap.add_argument("--kmer", action="store_true", help="also the k-mer model's best validation score on the split")
    ap.add_argument("--out", help="write the histories as JSON here")
    ap.add_argument("--plot", nargs="+", metavar=("PNG", "JSON"), help="plot the JSON files' runs and exit")
    args = ap.parse_args()
    if args.plot:
        return plot(args.plot[0], args.plot[1:])
    torch.set_num_threads(args.threads)

    cfg = BenchmarkConfig.quick(
        tasks_dir=args.tasks_dir, model_name=args.model, out_dir="unused", batch_size=args.batch_size
    )
    max_train = cfg.max_train if args.max_train is None else (args.max_train or None)
    task = discover_tasks(cfg.tasks_dir, [args.task])[0].subsample(max_train, cfg.max_test, seed=0)
    y = task.train["label"].to_numpy()
    tr, va = _split(len(y), y, args.seed)
    seqs = task.train["sequence"].tolist()
    shape = _pretrained_config(cfg)
    result = {"task": args.task, "seed": args.seed, "args": vars(args), "train_rows": len(tr), "val_rows": len(va)}
    result["runs"] = []
    print(f"{args.task}: {len(tr)} training rows, {len(va)} validation rows")

    def save() -> None:
        if args.out:
            from hyenadna.utils.io import atomic_write_text

            atomic_write_text(Path(args.out), json.dumps(result, indent=1, default=float))

    if not args.no_probe:
        probe = random_feature_probe(_fine_tuning_model(task, args.seed, cfg, shape), seqs, y, tr, va)
        scores = ", ".join(f"C {c:g} val MCC {m:.3f}" for c, m in probe.items())
        print(f"random features, logistic regression: {scores}")
        result["random_feature_probe"] = {str(c): m for c, m in probe.items()}
    if args.kmer:  # the benchmark's own k-mer selection, on validation only
        from hyenadna.benchmark.runner import select_kmer

        score, k, c = select_kmer(task, args.seed)
        selected = {"k": k, "C": c}
        print(f"k-mer logistic regression: best val {task.metric} {score:.3f} ({selected})")
        result["kmer"] = {"val_score": score, "metric": task.metric, "selected": selected}
    save()
    for lr in args.lr:
        ft = _fine_tuning_model(task, args.seed, cfg, shape)
        run = {"lr": lr, "history": []}
        result["runs"].append(run)

        def line(row: dict, lr: float = lr, run: dict = run) -> None:
            print(f"lr {lr:g} epoch {row['epoch']}: train loss {row['train_loss']:.4f}, val MCC {row['val_mcc']:.3f}")
            run["history"].append(row)
            save()

        run["history"] = ft.train(
            [seqs[i] for i in tr],
            y[tr],
            [seqs[i] for i in va],
            y[va],
            epochs=args.epochs,
            lr=lr,
            patience=args.epochs,
            head_init=args.head_init,
            seed=args.seed,
            progress=False,
            on_epoch=line,
        )
        save()


if __name__ == "__main__":
    main()
