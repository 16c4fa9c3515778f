"""Turn a finished pretraining run into a shippable model folder with a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from hyenadna.models.checkpoint import weight_files
from hyenadna.models.hyena_dna import load_model
from hyenadna.ops.autotune import cpu_name
from hyenadna.utils.io import atomic_path, atomic_write_text
from hyenadna.utils.shards import MAX_SHARD_BYTES

MAX_BUNDLED_BYTES = 16 * 1024 * 1024  # fp32 weights of a bundled model, in shards of at most MAX_SHARD_BYTES


def pretrain_command(cfg: dict) -> str:
    """The ``hyenadna pretrain`` command line that starts this run (defaults left out where the parser has them)."""
    m = cfg["model"]
    parts = ["hyenadna pretrain --fasta " + " ".join(cfg["fasta"]), f"--out {cfg['out_dir']}"]
    parts += [f"--d-model {m['d_model']}", f"--n-layer {m['n_layer']}", f"--d-inner {m['d_inner']}"]
    parts += [f"--l-max {m['l_max']}", f"--seq-len {cfg['seq_len']}", f"--batch-size {cfg['batch_size']}"]
    if cfg.get("stages"):
        parts.append("--stages " + ",".join(":".join(map(str, s)) for s in cfg["stages"]))
    if cfg.get("grad_accum", 1) != 1:
        parts.append(f"--grad-accum {cfg['grad_accum']}")
    parts += [f"--max-steps {cfg['max_steps']}", f"--lr {cfg['lr']}", f"--weight-decay {cfg['weight_decay']}"]
    if cfg.get("warmup_steps") is not None:
        parts.append(f"--warmup-steps {cfg['warmup_steps']}")
    for key in ("include", "exclude"):
        if cfg.get(key):
            parts.append(f"--{key} " + " ".join(cfg[key]))
    parts.append("--eval-region " + " ".join(cfg["eval_region"]))
    if cfg.get("init_from"):
        parts.append(f"--init-from {cfg['init_from']}")
    flags = {
        "bf16": "--bf16",
        "compile": "--compile",
        "n_to_pad": "--n-to-pad",
        "gradient_checkpointing": "--gradient-checkpointing",
        "sequence_chunked": "--sequence-chunked",
    }
    parts += [flag for key, flag in flags.items() if cfg.get(key)]
    if not cfg.get("reverse_complement", True):
        parts.append("--no-rc")
    if not cfg.get("markov", True):
        parts.append("--no-markov")
    if cfg.get("keep_freed_memory") is not None:
        parts.append("--keep-freed-memory" if cfg["keep_freed_memory"] else "--no-keep-freed-memory")
    parts += [f"--seed {cfg['seed']}", f"--eval-windows {cfg['eval_windows']}"]
    if cfg.get("threads"):
        parts.append(f"--threads {cfg['threads']}")
    return " \\\n    ".join(parts)


def _chromosomes(regions: list[str]) -> str:
    names = sorted({r.split(":")[0] for r in regions}, key=lambda c: (not c.isdigit(), c.zfill(3)))
    return f"{len(names)} chromosome{'s' if len(names) != 1 else ''} ({', '.join(names)})"


def _batch(cfg: dict) -> str:
    stages = [f"{b} x {n} until step {u:,}" for u, n, b in cfg.get("stages") or []]
    final = f"{cfg['batch_size']} x {cfg['seq_len']}"
    return "; ".join([*stages, final + (" after that" if stages else "")])


def _changes(cfg: dict) -> str:
    """The schedule changes made on resume (pretrain_config.json's record), as the card's steps row tells them."""
    notes = []
    for c in cfg.get("schedule_changes") or []:
        if c["max_steps"] <= c["at_step"] and c["stages"] == c["was"]["stages"]:
            notes.append(f"; ended at step {c['at_step']:,} of the {c['was']['max_steps']:,} planned")
            continue
        stages = ", ".join(f"{b} x {n} until step {u:,}" for u, n, b in c["stages"]) or "none"
        notes.append(
            f"; at step {c['at_step']:,} the schedule changed from {c['was']['max_steps']:,} to {c['max_steps']:,} "
            f"steps (stages: {stages}), the learning rate following the new cosine from there"
        )
    for c in cfg.get("precision_changes") or []:
        notes.append(
            f"; from step {c['at_step']:,} in {'bf16' if c['bf16'] else 'fp32'} (before: {_precision(c['was'])})"
        )
    return "".join(notes)


def _precision(bf16: bool | None) -> str:
    return "bf16" if bf16 else "fp32" if bf16 is False else "the default"


def _row_threads(cfg: dict, rows: list[dict]) -> list[int | None]:
    """The CPU threads behind each train row: recorded in the row (since rows carry it), else the config's, which
    holds the last process's setting only."""
    return [r.get("threads", cfg.get("threads")) for r in rows]


def _cpu_threads(cfg: dict, rows: list[dict]) -> list[int] | None:
    """Each train row's CPU thread count, or None off CPU or where any row's count is unknown."""
    threads = _row_threads(cfg, rows)
    if cfg.get("device", "cpu") != "cpu" or not rows or not all(threads):
        return None
    return threads


def _per_cpu_hour(cfg: dict, rows: list[dict]) -> str:
    """Median tokens per thread-second over the train rows, as tokens per CPU hour, and the thread counts behind it."""
    threads = _cpu_threads(cfg, rows)
    if threads is None:
        return ""
    per_thread = sorted(r["tokens_per_s"] / t for r, t in zip(rows, threads, strict=True))
    counts = sorted(set(threads))
    on = (
        f"{counts[0]} thread{'s' if counts[0] > 1 else ''}"
        if len(counts) == 1
        else f"{'/'.join(map(str, counts))} threads"
    )
    return f" on {on}: {per_thread[len(per_thread) // 2] * 3600 / 1e6:.1f}M tokens per CPU hour"


def _cpu_hours(cfg: dict, rows: list[dict]) -> float | None:
    """Thread-hours of a run: each train row's share of the wall time times the threads it ran on (None off CPU, or
    where a row's thread count is unknown). A resumed run's wall time continues from its checkpoint's."""
    threads = _cpu_threads(cfg, rows)
    if threads is None:
        return None
    walls = [0.0] + [r["wall_time"] for r in rows]
    return sum((b - a) * t for a, b, t in zip(walls, walls[1:], threads, strict=False)) / 3600


def read_run(run_dir: str | Path) -> dict:
    """A pretraining run's record: its config, metrics rows, tokens, steps and CPU hours (the card's sources)."""
    run_dir = Path(run_dir)
    for f in ("pretrain_config.json", "metrics.jsonl"):
        if not (run_dir / f).is_file():
            raise ValueError(f"{run_dir} is not a pretraining run: {f} is missing")
    cfg = json.loads((run_dir / "pretrain_config.json").read_text())
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if not rows:
        raise ValueError(f"{run_dir}/metrics.jsonl is empty")
    train = [r for r in rows if r["kind"] == "train"]
    return {
        "name": run_dir.name,
        "cfg": cfg,
        "rows": rows,
        "train": train,
        "steps": rows[-1]["step"],
        "tokens": rows[-1]["tokens_seen"],
        "wall_hours": rows[-1]["wall_time"] / 3600,
        "cpu_hours": _cpu_hours(cfg, train),
    }


def _lineage(this: dict, parents: list[dict]) -> tuple[int, str, str]:
    """The card's tokens-seen and compute rows: this run, and the runs it was warm-started from (oldest first)."""
    runs = [*parents, this]
    total = sum(r["tokens"] for r in runs)
    hours = [r["cpu_hours"] for r in runs]
    known = all(h is not None for h in hours)
    if not parents:
        tokens = f"{total:,}"
        compute = f"~{hours[0]:.1f} CPU hours (thread-hours of the run's wall time)" if known else ""
        return total, tokens, compute
    parts = [f"{r['tokens']:,} in {r['name']} ({r['steps']:,} steps)" for r in parents]
    tokens = f"{total:,} in all: " + ", then ".join(parts) + f", then {this['tokens']:,} in this run (warm-started)"
    compute = ""
    if known:
        each = ", ".join(f"{r['name']} {r['cpu_hours']:.1f}" for r in parents) + f", this run {hours[-1]:.1f}"
        compute = f"~{sum(hours):.1f} CPU hours in all ({each}; thread-hours of each run's wall time)"
    return total, tokens, compute


def _threads_used(cfg: dict, rows: list[dict]) -> str:
    counts = sorted({t for t in _row_threads(cfg, rows) if t})
    return "/".join(map(str, counts)) or "default"


def _copy_card_images(text: str, source: Path | None, dest: Path) -> None:
    """The plots the evaluation's card sections link to, from beside its JSON: a card never links a stale or absent
    image."""
    import re

    for image in re.findall(r"!\[[^\]]*\]\(([^)/]+\.png)\)", text):
        if source is None or not (source / image).is_file():
            raise ValueError(f"the evaluation's card links {image}, which is not beside it ({source}); pass its folder")
        with atomic_path(dest / image) as tmp:
            shutil.copyfile(source / image, tmp)


def export_run(
    run_dir: str | Path,
    dest: str | Path,
    name: str,
    evaluation: dict | None = None,
    bundled: bool = False,
    evaluation_dir: str | Path | None = None,
    parents: list[str | Path] = (),
) -> Path:
    """Copy ``run_dir/model`` to ``dest`` and write its model card from the run's own records only: its config,
    metrics, regions and Markov report. ``bundled``: the card says the model ships inside the package (as the
    default model when ``name`` is the bundled default's). ``parents``: the runs this one was warm-started from,
    oldest first, whose tokens and CPU hours the card counts in."""
    from hyenadna.models.config import PUBLISHED_CONFIGS

    run_dir, dest = Path(run_dir), Path(dest)
    run = read_run(run_dir)  # first: a folder that is no run (a model folder, a typo) is named as such
    if not (run_dir / "model" / "config.json").is_file():
        raise ValueError(f"{run_dir} has no model/ yet: a run writes it with its first checkpoint (--ckpt-every)")
    model = load_model(run_dir / "model")
    size = sum(f.stat().st_size for f in weight_files(run_dir / "model"))
    if bundled and size > MAX_BUNDLED_BYTES:
        raise ValueError(f"{run_dir}/model is {size / 1e6:.1f} MB; a bundled model must be at most 16 MiB")
    cfg, rows, train_rows = run["cfg"], run["rows"], run["train"]
    ancestors = [read_run(p) for p in parents]
    total_tokens, tokens_row, compute_row = _lineage(run, ancestors)
    trained_for = f"{sum(r['wall_hours'] for r in [*ancestors, run]):.1f} hours on CPU"
    if parents:
        trained_for += " (with the runs it was warm-started from)"
    if compute_row:
        compute_row = f"| compute | {compute_row} |\n"
    evals = [r for r in rows if r["kind"] == "eval"]
    if not evals:
        raise ValueError(f"{run_dir} has no held-out evaluation yet; export after the first --eval-every step")
    markov_path = run_dir / "markov.json"
    markov = json.loads(markov_path.read_text()) if markov_path.exists() else None
    if evaluation and "markov" in evaluation:  # scored on the evaluation's own windows: the comparable baseline
        markov = evaluation["markov"]
    last = evals[-1]
    tps = sorted(r["tokens_per_s"] for r in train_rows)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, max_shard_bytes=MAX_SHARD_BYTES)  # files a repository holds; replaces an older save
    from hyenadna.training.pretrain import _plot

    _plot(run_dir / "metrics.jsonl", dest / "loss_curve.png", markov["held_out"]["nll"] if markov else None)
    regions_path = run_dir / "regions.json"
    if regions_path.exists():
        regions = json.loads(regions_path.read_text())
    else:  # runs from before regions.json existed: recompute from the run's own config
        from hyenadna.data.genome import Genome
        from hyenadna.training.pretrain import PretrainConfig, training_intervals

        train_iv, eval_iv = training_intervals(PretrainConfig(**cfg), Genome.from_fasta(cfg["fasta"]))
        regions = {"train": [str(x) for x in train_iv], "evaluation": [str(x) for x in eval_iv]}
    c = model.config
    same_shape = [
        n
        for n, p in PUBLISHED_CONFIGS.items()
        if (p.d_model, p.n_layer, p.d_inner, p.l_max) == (c.d_model, c.n_layer, c.d_inner, c.l_max)
    ]
    shape_note = f" (the shape of {same_shape[0]})" if same_shape else ""
    held_out = evaluation["model_nll"] if evaluation else {k: last[k] for k in ("nll", "bits_per_base", "perplexity")}
    eval_len = (evaluation.get("window_length", cfg["seq_len"]) if evaluation else cfg["seq_len"]) + 1
    eval_count = evaluation.get("windows", cfg["eval_windows"]) if evaluation else cfg["eval_windows"]
    fasta = " ".join(cfg["fasta"])
    trained = sum(int(r.split(":")[1].split("-")[1]) - int(r.split(":")[1].split("-")[0]) for r in regions["train"])
    from hyenadna.hub import BUNDLED_MODEL

    default = bundled and name == BUNDLED_MODEL
    load = "HyenaDNA()  # the bundled default" if default else f'HyenaDNA(HyenaDNAConfig(model_name="{name}"))'
    if default:
        where = "and shipped inside the package as its default model (`HyenaDNA()` with no arguments)"
    elif bundled:
        where = f'and shipped inside the package (`HyenaDNAConfig(model_name="{name}")`, offline)'
    else:
        where = (
            "and exported with `hyenadna export` (load it by its folder, or by name once it sits in "
            f"`$HYENADNA_HOME/{name}`)"
        )
    warm = f"; warm-started from {cfg['init_from']}" if cfg.get("init_from") else ""
    markov_row = ""
    if markov:
        sel = markov["selected"]
        markov_row = (
            f"| best order-k Markov baseline (order {sel['order']}, add-{sel['alpha']} smoothing, "
            f"{'both strands' if sel['both_strands'] else 'forward strand'}; chosen on the last 10% of each training "
            f"interval, refit on all training DNA) | {markov['held_out']['nll']:.4f} | "
            f"{markov['held_out']['bits_per_base']:.4f} | {markov['held_out']['perplexity']:.3f} |\n"
        )
    extra = ""
    if evaluation and evaluation.get("card_sections"):
        extra = "\n" + "\n\n".join(evaluation["card_sections"]) + "\n"
        _copy_card_images(extra, Path(evaluation_dir) if evaluation_dir else None, dest)
    card = f"""# {name}

A HyenaDNA language model pretrained by the hyenadna project on real DNA, on CPU, {where}. It is **not** one of
the published HazyResearch checkpoints: it saw {total_tokens:,} tokens (they saw billions).

| | |
|---|---|
| architecture | HyenaDNA, d_model {c.d_model}, {c.n_layer} layers, d_inner {c.d_inner}, l_max {c.l_max}{shape_note} |
| parameters | {model.num_parameters():,} |
| context | {c.l_max} tokens (training windows: {_batch(cfg)}), one token per nucleotide, no special tokens |
| data | {fasta}: {trained / 1e6:.1f} Mb of training DNA on {_chromosomes(regions["train"])} |
| training regions | {", ".join(regions["train"])} (0-based, half-open) |
| held-out region | {", ".join(regions["evaluation"])}: never trained on |
| objective | next-token cross-entropy; windows with more than {cfg["max_n_fraction"]:.0%} N skipped; reverse-complement augmentation {"on" if cfg["reverse_complement"] else "off"}{warm} |
| optimiser | AdamW lr {cfg["lr"]}, weight decay {cfg["weight_decay"]} (none on the implicit filter, biases, norms), cosine schedule with {cfg["warmup_steps"] if cfg.get("warmup_steps") is not None else max(1, cfg["max_steps"] // 100)} warm-up steps to {cfg.get("final_lr_ratio", 0.1)} x lr, grad clip {cfg["grad_clip"]} |
| batches | {_batch(cfg)} |
| steps | {last["step"]:,} of {cfg["max_steps"]:,}{_changes(cfg)} |
| tokens seen | {tokens_row} |
| wall time | {last["wall_time"] / 3600:.2f} h{" (this run)" if parents else ""} |
{compute_row}| training throughput | median {tps[len(tps) // 2]:,.0f} tokens/s{_per_cpu_hour(cfg, train_rows)} |
| hardware | {cpu_name()}, {_threads_used(cfg, train_rows)} torch threads, torch {torch.__version__}, device {cfg["device"]} |
| seed | {cfg["seed"]} |

## Held-out evaluation

{eval_count} N-free windows of {eval_len} bases from {", ".join(regions["evaluation"])}; every model is scored on the
same {eval_len - 1} next-base targets per window.

| model | nats/base | bits/base | perplexity |
|---|---|---|---|
| this model | {held_out["nll"]:.4f} | {held_out["bits_per_base"]:.4f} | {held_out["perplexity"]:.3f} |
{markov_row}
Reproduce the evaluation: `hyenadna evaluate --model {name} --fasta {fasta}`

Reproduce the training run:

```
{pretrain_command(cfg)}
```

![loss curve](loss_curve.png)
{extra}
## Use

```python
from hyenadna import HyenaDNA, HyenaDNAConfig

model = {load}
emb = model.get_embeddings(model.process_data("ACGT" * 300), pooling="mean")
```

## Licence

The weights carry the project's licence (Apache-2.0); the training DNA keeps its own.

## Limits

Trained on {_chromosomes(regions["train"])} for {trained_for}. Research use only; not
for clinical decisions.
"""
    atomic_write_text(dest / "README.md", card)
    return dest
