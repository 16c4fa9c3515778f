"""``hyenadna fine-tune``: fine-tuning a classifier on a task folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hyenadna.cli.common import (
    add_command,
    add_memory_args,
    add_model_args,
    float_above,
    fraction,
    int_at_least,
    sdk_config,
    seed,
)
from hyenadna.training.patience import PATIENCE_FROM, PATIENCE_FROM_VALIDATION
from hyenadna.utils.io import LOCK_FILE, hold_folder


def check_out_folder(out: Path, overwrite: bool) -> None:
    """--out is new or empty, a killed run's (resumed), or, with --overwrite, a fine-tuned model to replace: a
    finished model was replaced in silence, and a folder of other files (--out .) got our README.md over its own."""
    if not out.is_dir():  # new (a file given as --out is refused before any command runs)
        return
    files = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)  # a killed run's lock holds nothing
    if (out / "training_state.pt").exists() or not files:
        return
    if (out / "finetune.json").exists():
        if not overwrite:
            raise FileExistsError(f"--out {out} holds a fine-tuned model; pass --overwrite to replace it")
        return
    raise FileExistsError(
        f"--out {out} holds other files ({files[0]}, ...), which the model folder's would replace: give a new folder"
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    check_out_folder(Path(args.out), args.overwrite)
    # one process at a time: a second `fine-tune --out` there took the first's training state for a killed run's
    with hold_folder(args.out, "fine-tuning run"):
        return _finetune(args)


def _finetune(args: argparse.Namespace) -> int:
    from hyenadna.benchmark.tasks import load_task
    from hyenadna.finetune import HyenaDNAFineTuningModel

    task = load_task(args.task).subsample(args.max_train, args.max_test, seed=args.seed)
    ft = HyenaDNAFineTuningModel(
        sdk_config(
            args,
            seed=args.seed,
            gradient_checkpointing=args.gradient_checkpointing,
            sequence_chunked=args.sequence_chunked,
        ),
        "classification",
        task.num_classes,
        label_names=task.label_names,
    )
    print(f"model: {ft.source}", file=sys.stderr)
    # the training state after every epoch: a killed run started again with the same arguments goes on from it
    state = Path(args.out) / "training_state.pt"
    if state.exists():
        print(f"resuming from {state}", file=sys.stderr)
    ft.train(
        task.train["sequence"].tolist(),
        task.train["label"].to_numpy(),
        epochs=args.epochs,
        lr=args.lr,
        patience=args.patience,
        patience_from=args.patience_from,
        rc_augment=args.rc_augment,
        head_init=args.head_init,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        checkpoint=state,
        keep_freed_memory=args.keep_freed_memory,
    )
    ft.save(args.out)
    state.unlink()
    scores = ft.evaluate(task.test["sequence"].tolist(), task.test["label"].to_numpy(), rc_average=args.rc_augment)
    print(json.dumps({"task": task.name, "test": scores}), file=sys.stderr)
    write_card(Path(args.out), args, task, ft, scores)
    return 0


RECIPE_ARGS = (
    "epochs",
    "lr",
    "patience",
    "patience_from",
    "head_init",
    "rc_augment",
    "seed",
    "max_train",
    "max_test",
    "validation_fraction",
)


def kept_epoch(history: list[dict], key: str = "val_mcc") -> int | None:
    """The epoch whose weights were kept: the first with the best validation score (epoch 0: the LP-FT head)."""
    scored = [h for h in history if h.get(key) is not None]
    return max(scored, key=lambda h: h[key])["epoch"] if scored else None


def write_card(out: Path, args: argparse.Namespace, task, ft, scores: dict[str, float]) -> None:
    """``results.json`` and a ``README.md`` model card beside the saved model: what it was trained on, from which
    model, with which arguments, the validation history, the epoch kept and the test metrics, so a folder that
    travels says what it is."""
    from hyenadna.utils.io import atomic_write_text

    kept = kept_epoch(ft.history)
    record = {
        "task": task.name,
        "base_model": ft.source,
        "command": "hyenadna " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["fine-tune"] else None,
        "recipe": {k: getattr(args, k) for k in RECIPE_ARGS},
        "rows": {"train": len(task.train), "test": len(task.test)},
        "train_lengths": ft.train_lengths,
        "kept_epoch": kept,
        "test": scores,
    }
    atomic_write_text(out / "results.json", json.dumps(record, indent=1))
    metrics = list(scores)
    lines = [
        f"# HyenaDNA fine-tuned on {task.name}",
        "",
        f"Base model: `{ft.source}`. Labels: {', '.join(ft.label_names or [])}. "
        f"Trained on {len(task.train):,} rows of {_lengths(ft.train_lengths)} ({args.validation_fraction:.0%} of "
        f"them held out for validation), tested once on {len(task.test):,}; `hyenadna vep --classifier` reads "
        f"windows of {ft.input_length:,} bases by default.",
        "",
        *([f"Command: `{record['command']}`", ""] if record["command"] else []),
        "Recipe: " + ", ".join(f"{k} {getattr(args, k)}" for k in RECIPE_ARGS if getattr(args, k) is not None) + ".",
        "",
        "| test | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
        "| | " + " | ".join(f"{scores[m]:.4f}" for m in metrics) + " |",
        "",
        f"Validation by epoch{' (epoch 0: the LP-FT head)' if ft.history and ft.history[0]['epoch'] == 0 else ''}; "
        f"the weights of epoch {kept} were kept:",
        "",
        "| epoch | train loss | validation " + " | validation ".join(metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for h in ft.history:
        loss = "-" if h["train_loss"] is None else f"{h['train_loss']:.4f}"
        lines.append(
            f"| {h['epoch']} | {loss} | " + " | ".join(f"{h.get('val_' + m, float('nan')):.4f}" for m in metrics) + " |"
        )
    lines += ["", "Load it with `HyenaDNAFineTuningModel.load(folder)`, or `hyenadna predict folder seqs.fa`."]
    atomic_write_text(out / "README.md", "\n".join(lines) + "\n")


def _lengths(lengths: dict[str, int]) -> str:
    if lengths["min"] == lengths["max"]:
        return f"{lengths['min']:,} bases"
    return f"{lengths['min']:,}-{lengths['max']:,} bases (median {lengths['median']:,})"


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "fine-tune", "fine-tune a classifier on a task folder and save it", cmd_finetune)
    p.add_argument("task", help="task folder (train/test csv.gz or parquet, columns sequence,label)")
    p.add_argument(
        "--out",
        required=True,
        help="output folder for the fine-tuned model; it holds the training state while training runs, and the same "
        "command resumes a killed run from its last epoch",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the fine-tuned model already in --out")
    p.add_argument("--epochs", type=int_at_least(1), default=10)
    p.add_argument("--lr", type=float_above(0), default=6e-4)
    p.add_argument(
        "--patience",
        type=int_at_least(1),
        default=3,
        help="epochs without validation gain before stopping, counted from the first above chance (MCC > 0)",
    )
    p.add_argument(
        "--patience-from",
        choices=PATIENCE_FROM,
        default=PATIENCE_FROM_VALIDATION,
        help="count epochs against --patience once validation MCC beats chance, or once the training loss is 5%% "
        "below the first epoch's (a lucky score on a small validation split cannot start it)",
    )
    p.add_argument("--max-train", type=int_at_least(2), help="cap the train rows (stratified, seeded)")
    p.add_argument("--max-test", type=int_at_least(1), help="cap the test rows (stratified, seeded)")
    p.add_argument("--rc-augment", action="store_true", help="reverse-complement augmentation and test-time averaging")
    p.add_argument(
        "--head-init", choices=["random", "probe"], default="random", help="probe: logistic-regression head, then FT"
    )
    p.add_argument(
        "--validation-fraction",
        type=fraction,
        default=0.1,
        help="share of the train rows held out (stratified, seeded) to choose the epoch kept (default 0.1); with few "
        "rows, a larger share tells epochs apart better",
    )
    p.add_argument("--seed", type=seed, default=0)
    add_memory_args(p)
    add_model_args(p)
