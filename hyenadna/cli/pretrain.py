"""``hyenadna pretrain``: pretraining on genome FASTA."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from hyenadna.cli.common import (
    add_memory_args,
    add_runtime_args,
    float_above,
    float_at_least,
    fraction_at_most_one,
    int_at_least,
    seed,
)
from hyenadna.data.regions import HELD_OUT
from hyenadna.utils.io import hold_folder

PRETRAIN_EXAMPLES = """examples:
  # the bundled model's recipe: GRCh37 chr20 + chrX, held-out chr20:32,000,000-63,025,520 excluded automatically
  hyenadna pretrain --fasta ../shared/data/genome/GRCh37_chr20.fa.gz ../shared/data/genome/GRCh37_chrX_0-70Mb.fa.gz \\
      --out runs/tiny-d256 --max-steps 8000 --max-minutes 150
  hyenadna pretrain --out runs/tiny-d256 --resume            # continue exactly where it stopped
  hyenadna pretrain --out runs/tiny-d256 --pack-checkpoint   # checkpoint/ in files under 10 MB, for a repository
  # the long-context bundled model: warm start from the 1k one, then 1k -> 4k -> 16k windows
  hyenadna pretrain --fasta ... --init-from hyenadna-tiny-1k-d256-grch37 --l-max 16386 --seq-len 16384 \
      --batch-size 1 --stages 600:1024:16,1200:4096:4 --max-steps 2400 --out runs/tiny-16k-d256
  torchrun --nproc_per_node=2 -m hyenadna.cli pretrain ...    # data-parallel (gloo on CPU, nccl on GPU)
"""


def _parse_stages(text: str) -> list[list[int]]:
    from hyenadna.training.pretrain import check_stages

    stages = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) != 3 or not all(f.strip().isdigit() for f in fields):
            raise ValueError(
                f"--stages: {part.strip()!r} is not until_step:len:batch in whole numbers (e.g. 500:256:32,1000:512:16)"
            )
        stages.append([int(f) for f in fields])
    try:
        check_stages(stages)
    except ValueError as e:
        raise ValueError(f"--stages: {e}") from None
    return stages


def _checkpoint_step(out: Path) -> int:
    from hyenadna.training.pretrain import load_run_checkpoint

    return int(load_run_checkpoint(out)["step"])


def _record_resume_changes(args: argparse.Namespace, cfg, saved: Path) -> None:
    """Apply a new schedule (--max-steps, --stages) or precision (--bf16 / --no-bf16) given on resume to ``cfg``, and
    record each with the checkpoint's step in pretrain_config.json (rank 0), which the model card is built from, as
    well as where the FASTA files now are if --fasta moved them. The
    weights, optimiser and RNG still resume exactly; the weights and AdamW moments are fp32 in either precision."""
    new_stages = _parse_stages(args.stages) if args.stages else cfg.stages
    new_max = args.max_steps if args.max_steps is not None else cfg.max_steps
    new_schedule = (new_stages, new_max) != (cfg.stages, cfg.max_steps)
    new_precision = args.bf16 is not None and args.bf16 != cfg.bf16
    if not (new_schedule or new_precision or getattr(args, "relocated", False)):
        return
    at_step = _checkpoint_step(Path(args.out))
    if new_schedule:
        was = {"max_steps": cfg.max_steps, "stages": cfg.stages}
        change = {"at_step": at_step, "max_steps": new_max, "stages": new_stages, "was": was}
        cfg.schedule_changes = [*cfg.schedule_changes, change]
        cfg.stages, cfg.max_steps = new_stages, new_max
        print(f"schedule changed at step {at_step}: max steps {new_max}, stages {new_stages}", file=sys.stderr)
    if new_precision:
        cfg.precision_changes = [*cfg.precision_changes, {"at_step": at_step, "bf16": args.bf16, "was": cfg.bf16}]
        cfg.bf16 = args.bf16
        print(f"precision changed at step {at_step}: {'bf16' if args.bf16 else 'fp32'}", file=sys.stderr)
    from hyenadna.training.pretrain import _dist_info

    if _dist_info()[0] == 0:
        from dataclasses import asdict

        from hyenadna.utils.io import atomic_write_text

        atomic_write_text(saved, json.dumps(asdict(cfg), indent=1))


# What a run fixes when it starts: on --resume, one of these given with another value than the run's is refused
# rather than ignored (the run resumes exactly or not at all). Each: (option, the run's value from its config).
_FIXED_ON_RESUME = {
    "include": ("--include", lambda c: c.include),
    "exclude": ("--exclude", lambda c: c.exclude),
    "eval_region": ("--eval-region", lambda c: c.eval_region),
    "force_overlap": ("--force-overlap", lambda c: c.force_overlap),
    "d_model": ("--d-model", lambda c: c.model["d_model"]),
    "n_layer": ("--n-layer", lambda c: c.model["n_layer"]),
    "d_inner": ("--d-inner", lambda c: c.model["d_inner"]),
    "l_max": ("--l-max", lambda c: c.model["l_max"]),
    "filter_geometric_bands": ("--filter-geometric-bands", lambda c: c.model.get("filter_geometric_bands", 0)),
    "seq_len": ("--seq-len", lambda c: c.seq_len),
    "batch_size": ("--batch-size", lambda c: c.batch_size),
    "grad_accum": ("--grad-accum", lambda c: c.grad_accum),
    "lr": ("--lr", lambda c: c.lr),
    "weight_decay": ("--weight-decay", lambda c: c.weight_decay),
    "warmup_steps": ("--warmup-steps", lambda c: c.warmup_steps),
    "grad_clip": ("--grad-clip", lambda c: c.grad_clip),
    "max_n_fraction": ("--max-n-fraction", lambda c: c.max_n_fraction),
    "no_rc": ("--no-rc", lambda c: not c.reverse_complement),
    "n_to_pad": ("--n-to-pad", lambda c: c.n_to_pad),
    "compile": ("--compile", lambda c: c.compile),
    "seed": ("--seed", lambda c: c.seed),
    "init_from": ("--init-from", lambda c: c.init_from),
    "eval_windows": ("--eval-windows", lambda c: c.eval_windows),
}
# what a resumed run may change without moving its training: how often it logs, evaluates and checkpoints
_CHANGEABLE_ON_RESUME = ("log_every", "eval_every", "ckpt_every")


class _Given(argparse.Action):
    """Stores the value as argparse does and records that the option was typed (in ``namespace.given``), so that
    --resume can tell a value given from a default, even one typed equal to the default."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, True if self.nargs == 0 else values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def _apply_resume_options(args: argparse.Namespace, cfg) -> None:
    """Options given with --resume: a fixed one that differs from the run's is an error naming both values; the
    logging, evaluation and checkpoint intervals apply."""
    given = getattr(args, "given", set())
    clashes = []
    if "fasta" in given and args.fasta != cfg.fasta:
        # the same files found elsewhere (another machine, a moved genome folder) are where the run now reads them
        if [Path(p).name for p in args.fasta] == [Path(p).name for p in cfg.fasta]:
            print(
                f"reading the genome from {' '.join(args.fasta)} (the run began with {' '.join(cfg.fasta)})",
                file=sys.stderr,
            )
            cfg.fasta, args.relocated = list(args.fasta), True
        else:
            clashes.append(f"--fasta {' '.join(args.fasta)} (the run has {' '.join(cfg.fasta)})")
    for dest, (flag, recorded) in _FIXED_ON_RESUME.items():
        value, was = getattr(args, dest), recorded(cfg)
        if dest not in given or value == was:
            continue
        if isinstance(value, bool):
            clashes.append(f"{flag} (the run started without it)")
        else:
            shown, was = (" ".join(map(str, v)) if isinstance(v, list) else v for v in (value, was))
            clashes.append(f"{flag} {shown} (the run has {was})")
    if clashes:
        raise ValueError(
            f"{args.out} resumes with the settings it started with, and these differ: {'; '.join(clashes)}. "
            "Resume without them, or start a new run (another --out; --init-from its model to warm-start). A resume "
            "may change --max-steps, --stages, --bf16/--no-bf16, the intervals (--log-every, --eval-every, "
            "--ckpt-every), how it runs (--threads, --device, --max-minutes, memory options) and where its FASTA files "
            "are (--fasta: the same file names)"
        )
    for dest in _CHANGEABLE_ON_RESUME:
        if dest in given:
            setattr(cfg, dest, getattr(args, dest))


def _pack(out: Path) -> int:
    from hyenadna.training.portable import pack_checkpoint
    from hyenadna.training.pretrain import load_run_checkpoint

    if not (out / "checkpoint.pt").exists():
        print(f"hyenadna pretrain: error: {out}/checkpoint.pt: no such file", file=sys.stderr)
        return 1
    files = pack_checkpoint(load_run_checkpoint(out), out / "checkpoint")
    size = sum(f.stat().st_size for f in files)
    print(
        f"packed {out}/checkpoint.pt into {len(files)} files in {out}/checkpoint/ ({size / 1e6:.1f} MB)",
        file=sys.stderr,
    )
    return 0


def _precision_asked_or_default(args: argparse.Namespace) -> bool:
    """--bf16/--no-bf16, or this machine's default resolved now, so that pretrain_config.json and the model card's
    command record what the run used, not a default that differs between machines."""
    if args.bf16 is not None:
        return args.bf16
    from hyenadna.training.pretrain import training_bf16
    from hyenadna.utils.device import resolve_device

    return training_bf16(None, resolve_device(args.device))


def cmd_pretrain(args: argparse.Namespace) -> int:
    from hyenadna.training.pretrain import _dist_info

    if args.pack_checkpoint:
        return _pack(Path(args.out))
    # the run's folder is one process's from here: a second one (a requeued job while the first still runs) rewrote
    # pretrain_config.json under it before pretrain() could refuse it
    with hold_folder(args.out, "pretraining run") if _dist_info()[0] == 0 else contextlib.nullcontext():
        return _pretrain(args)


def _pretrain(args: argparse.Namespace) -> int:
    from hyenadna.training.pretrain import PretrainConfig, _dist_info, pretrain

    saved = Path(args.out) / "pretrain_config.json"
    runtime = {
        "threads": args.threads,
        "max_minutes": args.max_minutes,
        "device": args.device,
        "gradient_checkpointing": args.gradient_checkpointing,
        "sequence_chunked": args.sequence_chunked,
        "keep_freed_memory": args.keep_freed_memory,
    }
    if args.resume and saved.exists():
        # the folder given now, not the one recorded: a run copied to another machine or path continues there
        cfg = PretrainConfig(**{**json.loads(saved.read_text()), **runtime, "out_dir": args.out})
        _apply_resume_options(args, cfg)
        _record_resume_changes(args, cfg, saved)
    else:
        if not args.fasta:
            why = f"{args.out} holds no run to resume (no pretrain_config.json), and " if args.resume else ""
            print(f"hyenadna pretrain: error: {why}--fasta is required for a new run", file=sys.stderr)
            return 2
        model = {
            "d_model": args.d_model,
            "n_layer": args.n_layer,
            "d_inner": args.d_inner or 4 * args.d_model,
            "l_max": args.l_max or args.seq_len + 2,
        }
        if args.filter_geometric_bands:
            model["filter_geometric_bands"] = args.filter_geometric_bands
        stages = _parse_stages(args.stages) if args.stages else []
        cfg = PretrainConfig(
            fasta=args.fasta,
            out_dir=args.out,
            model=model,
            include=args.include,
            exclude=args.exclude,
            eval_region=args.eval_region,
            force_overlap=args.force_overlap,
            seq_len=args.seq_len,
            batch_size=args.batch_size,
            grad_accum=args.grad_accum,
            stages=stages,
            max_steps=args.max_steps or 10_000,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup_steps,
            grad_clip=args.grad_clip,
            max_n_fraction=args.max_n_fraction,
            reverse_complement=not args.no_rc,
            n_to_pad=args.n_to_pad,
            bf16=_precision_asked_or_default(args),
            compile=args.compile,
            seed=args.seed,
            init_from=args.init_from,
            log_every=args.log_every,
            eval_every=args.eval_every,
            eval_windows=args.eval_windows,
            ckpt_every=args.ckpt_every,
            markov=not args.no_markov,
            **runtime,
        )
    if _dist_info()[0] == 0 and not (args.resume and saved.exists()):
        from dataclasses import asdict

        from hyenadna.utils.io import atomic_write_text

        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, json.dumps(asdict(cfg), indent=1))
    result = pretrain(cfg, resume=args.resume)
    print(json.dumps(result), file=sys.stderr)
    if result.get("stopped_by_signal"):  # checkpointed; still a Ctrl-C / SIGTERM to whoever started it
        print(f"hyenadna pretrain: stopped by signal at step {result['step']}; checkpoint written", file=sys.stderr)
        return 128 + int(result["stopped_by_signal"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain a next-token model on genome FASTA",
        epilog=PRETRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--fasta", nargs="+", help="FASTA files (.fa, .fa.gz, bgzip; many records)", action=_Given)
    p.add_argument("--out", required=True, help="run directory (checkpoint, metrics, plots, exported model)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out exactly where it stopped (from checkpoint.pt, or a packed checkpoint/)",
    )
    p.add_argument(
        "--pack-checkpoint",
        action="store_true",
        help="write --out's checkpoint.pt as checkpoint/: safetensors shards under 10 MB and a JSON file, which a "
        "git repository can hold; --resume reads it on another machine",
    )
    p.add_argument(
        "--include", nargs="*", default=[], help="regions (chrom, chrom:start-end) or BED files", action=_Given
    )
    p.add_argument("--exclude", nargs="*", default=[], help="regions or BED files to leave out", action=_Given)
    p.add_argument(
        "--eval-region",
        nargs="+",
        default=[str(HELD_OUT)],
        help="held-out validation region (default: GRCh37 chr20:32,000,000-63,025,520)",
        action=_Given,
    )
    p.add_argument(
        "--force-overlap",
        action=_Given,
        nargs=0,
        default=False,
        help="allow training regions overlapping --eval-region",
    )
    p.add_argument("--d-model", type=int_at_least(1), default=256, action=_Given)
    p.add_argument("--n-layer", type=int_at_least(1), default=2, action=_Given)
    p.add_argument("--d-inner", type=int_at_least(1), action=_Given)
    p.add_argument("--l-max", type=int_at_least(2), help="filter grid / context (default: seq-len + 2)", action=_Given)
    p.add_argument(
        "--filter-geometric-bands",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="N more positional bands for the implicit filter, geometric from 1 cycle to Nyquist, so that a filter "
        "can read one position far back (0: as every published model; --init-from a model without them starts "
        "their weights at zero, so the warm start begins as the source model)",
        action=_Given,
    )
    p.add_argument("--seq-len", type=int_at_least(2), default=1024, action=_Given)
    p.add_argument("--batch-size", type=int_at_least(1), default=8, action=_Given)
    p.add_argument("--grad-accum", type=int_at_least(1), default=1, action=_Given)
    p.add_argument("--stages", help="sequence-length warm-up, e.g. 500:256:32,1000:512:16 (until_step:len:batch)")
    p.add_argument("--max-steps", type=int_at_least(1))
    p.add_argument("--lr", type=float_above(0), default=6e-4, action=_Given)
    p.add_argument("--weight-decay", type=float_at_least(0), default=0.1, action=_Given)
    p.add_argument("--warmup-steps", type=int_at_least(0), action=_Given)
    p.add_argument("--grad-clip", type=float_above(0), default=1.0, action=_Given)
    p.add_argument("--max-n-fraction", type=fraction_at_most_one, default=0.05, action=_Given)
    p.add_argument("--no-rc", action=_Given, nargs=0, default=False, help="no reverse-complement augmentation")
    p.add_argument("--n-to-pad", action=_Given, nargs=0, default=False)
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast for the projections (the FFT and residual stream stay fp32); default: on where it is "
        "faster (CUDA GPUs with bf16, CPUs with native bf16: AMX or AVX512-BF16), off elsewhere; a resumed run keeps "
        "what it last ran in unless given one of these (the change is recorded in pretrain_config.json and the "
        "model card)",
    )
    p.add_argument("--compile", action=_Given, nargs=0, default=False, help="torch.compile the model")
    add_memory_args(p)
    p.add_argument("--seed", type=seed, default=0, action=_Given)
    p.add_argument(
        "--init-from",
        metavar="MODEL",
        help="warm start: copy the weights of this model (name or folder), e.g. the 1k model into a 16k one",
        action=_Given,
    )
    add_runtime_args(p, batch_size=None)
    p.add_argument("--log-every", type=int_at_least(1), default=10, action=_Given)
    p.add_argument("--eval-every", type=int_at_least(1), default=500, action=_Given)
    p.add_argument("--eval-windows", type=int_at_least(1), default=256, action=_Given)
    p.add_argument("--ckpt-every", type=int_at_least(1), default=100, action=_Given)
    p.add_argument("--no-markov", action="store_true", help="skip the Markov baseline")
    p.add_argument("--max-minutes", type=float_above(0), help="stop cleanly with a checkpoint after this long")
    p.set_defaults(func=cmd_pretrain)
