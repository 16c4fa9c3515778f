"""Next-token pretraining on genome FASTA, with held-out validation, a Markov baseline, exact resume and DDP.

Run state lives in ``out_dir``: ``checkpoint.pt`` (atomic; model, optimizer, step, RNG), ``metrics.jsonl``,
``markov.json``, ``loss_curve.png`` and ``model/`` (the latest exported weights, ``save_pretrained`` layout).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from hyenadna.data.genome import Genome
from hyenadna.data.regions import HELD_OUT, Interval, merge, overlap, parse_regions, subtract
from hyenadna.models.checkpoint import without_derived_buffers
from hyenadna.models.config import HyenaConfig
from hyenadna.models.hyena_dna import HyenaDNALMHeadModel
from hyenadna.training.markov import MarkovModel, add_reverse_complement, count_kmers, select_markov
from hyenadna.training.optim import build_optimizer, cosine_lr
from hyenadna.training.step_memory import KEPT_FREED_MEMORY_FACTOR, step_memory
from hyenadna.training.windows import WindowSampler, fixed_windows
from hyenadna.utils.device import gather_rng_states, rank_device, rng_state, set_rng_state
from hyenadna.utils.io import atomic_path, atomic_write_text, hold_folder, save_figure
from hyenadna.utils.memory import reuse_freed_memory
from hyenadna.utils.precision import autocast, cpu_has_native_bf16, emulated_bf16
from hyenadna.utils.shards import MAX_SHARD_BYTES


@dataclass
class PretrainConfig:
    fasta: list[str]
    out_dir: str
    model: dict = field(default_factory=lambda: {"d_model": 256, "n_layer": 2, "d_inner": 1024, "l_max": 1026})
    include: list[str] = field(default_factory=list)  # regions or BED files; empty: every chromosome
    exclude: list[str] = field(default_factory=list)
    eval_region: list[str] = field(default_factory=lambda: [str(HELD_OUT)])
    force_overlap: bool = False  # allow training regions that overlap the evaluation region
    seq_len: int = 1024
    batch_size: int = 8
    grad_accum: int = 1
    # sequence-length warm-up: [[until_step, seq_len, batch_size], ...]; after the last stage, seq_len/batch_size
    stages: list[list[int]] = field(default_factory=list)
    max_steps: int = 10_000
    lr: float = 6e-4
    weight_decay: float = 0.1
    warmup_steps: int | None = None  # default: 1% of max_steps
    final_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    max_n_fraction: float = 0.05
    reverse_complement: bool = True
    n_to_pad: bool = False
    bf16: bool | None = None  # bf16 autocast of the projections; None: where faster (training_bf16), kept on resume
    compile: bool = False
    # recompute each block's activations in the backward (the same gradients, less memory); may change on resume
    gradient_checkpointing: bool = False
    # train each block in token chunks, keeping only its input (ops/block_chunked.py): activations O(L x D) at any
    # window; the same gradients to float rounding (not to the bit), so a resume should give the same setting
    sequence_chunked: bool = False
    # on the CPU, keep freed memory between steps (faster; utils/memory.py), or hand it back (the least memory)
    keep_freed_memory: bool | None = None  # None: unless the kept memory would not fit (memory_plan)
    seed: int = 0
    init_from: str | None = None  # warm start: a model name or folder whose same-shaped weights are copied in
    device: str = "cpu"
    threads: int | None = None
    log_every: int = 10
    eval_every: int = 500
    eval_windows: int = 256
    ckpt_every: int = 100
    markov: bool = True
    max_minutes: float | None = None  # stop cleanly (with a checkpoint) after this much wall time in this process
    # schedules changed on resume: [{"at_step", "max_steps", "stages"}, ...], so the record says what really ran
    schedule_changes: list[dict] = field(default_factory=list)
    # precision switched on resume (--resume --bf16 / --no-bf16): [{"at_step", "bf16", "was"}, ...]
    precision_changes: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_stages(self.stages)
        wrong = [
            f"{name}={getattr(self, name)!r} (needs {need})"
            for name, ok, need in (
                ("seq_len", self.seq_len >= 2, ">= 2"),
                ("batch_size", self.batch_size >= 1, ">= 1"),
                ("grad_accum", self.grad_accum >= 1, ">= 1"),
                ("max_steps", self.max_steps >= 1, ">= 1"),
                ("lr", self.lr > 0, "> 0"),
                ("weight_decay", self.weight_decay >= 0, ">= 0"),
                ("grad_clip", self.grad_clip > 0, "> 0"),
                ("max_n_fraction", 0 <= self.max_n_fraction <= 1, "0 to 1"),
                ("eval_windows", self.eval_windows >= 1, ">= 1"),
                ("log_every", self.log_every >= 1, ">= 1"),
                ("eval_every", self.eval_every >= 1, ">= 1"),
                ("ckpt_every", self.ckpt_every >= 1, ">= 1"),
            )
            if not ok  # also catches NaN
        ]
        if wrong:
            raise ValueError(", ".join(wrong))

    def stage(self, step: int) -> tuple[int, int]:
        for until, seq_len, batch in self.stages:
            if step < until:
                return seq_len, batch
        return self.seq_len, self.batch_size

    def longest_window(self) -> int:
        """The longest training window (tokens) that a step of this schedule reads: ``stage`` at each step where a
        stage may begin."""
        starts = [0] + [until for until, _, _ in self.stages]
        return max((self.stage(s)[0] for s in starts if s < self.max_steps), default=self.seq_len)

    def largest_batch_tokens(self) -> int:
        """The most tokens one forward pass of this schedule reads (window x batch; --grad-accum adds passes)."""
        starts = [0] + [until for until, _, _ in self.stages]
        return max((math.prod(self.stage(s)) for s in starts if s < self.max_steps), default=1)


def check_stages(stages: list[list[int]]) -> None:
    """Each stage is [until_step, seq_len, batch_size], whole numbers, with until_step rising from stage to stage."""
    for i, stage in enumerate(stages):
        if len(stage) != 3 or not all(isinstance(x, int) and not isinstance(x, bool) for x in stage):
            raise ValueError(f"stage {i + 1} {stage}: expected [until_step, seq_len, batch_size], whole numbers")
        until, seq_len, batch = stage
        if until < 0 or seq_len < 2 or batch < 1:
            raise ValueError(f"stage {i + 1} {stage}: needs until_step >= 0, seq_len >= 2 and batch_size >= 1")
        if i and until <= stages[i - 1][0]:
            raise ValueError(f"stage {i + 1} {stage}: until_step must rise from one stage to the next")


# how long the other ranks wait while rank 0 works alone (the Markov baseline of a whole genome, an evaluation)
RANK0_WAIT = timedelta(hours=12)


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None

    def __call__(self, signum, frame) -> None:
        self.requested = True
        self.signal = signum


def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def training_intervals(
    cfg: PretrainConfig,
    genome: Genome,
    overlap_hint: str = "exclude it, or pass --force-overlap to train on evaluation DNA anyway",
) -> tuple[list[Interval], list[Interval]]:
    sizes = genome.sizes
    try:
        evaluation = parse_regions(cfg.eval_region, sizes) if cfg.eval_region else []
    except ValueError as e:
        if list(cfg.eval_region) != [str(HELD_OUT)]:
            raise
        raise ValueError(  # a genome other than GRCh37's chr20: the default cannot apply, so say what to give
            f"{e}: the held-out evaluation region defaults to GRCh37's {HELD_OUT}; name one of this genome's with "
            "eval_region (--eval-region)"
        ) from None
    explicit = bool(cfg.include)
    train = parse_regions(cfg.include, sizes) if explicit else [Interval(c, 0, n) for c, n in sizes.items()]
    train = subtract(train, parse_regions(cfg.exclude, sizes, skip_absent=True))  # nothing there to leave out
    shared = overlap(train, evaluation)
    if shared and not cfg.force_overlap:
        if explicit:
            raise ValueError(
                f"the training regions overlap the held-out evaluation region ({', '.join(map(str, evaluation))}) "
                f"by {shared:,} bases; {overlap_hint}"
            )
        train = subtract(train, evaluation)
    return merge(train), evaluation


@torch.no_grad()
def evaluate_nll(
    model: HyenaDNALMHeadModel, windows: np.ndarray, batch_size: int = 16, rank: int = 0, world: int = 1
) -> float:
    """Mean next-token NLL (nats per base) over every target of the windows: positions 1..L-1.

    With ``world`` > 1 every rank of a data-parallel run calls it, and rank r scores batches r, r + world, ...: the
    batches one process would score, summed in the same order, so the result is one process's to the bit
    (evaluation on rank 0 alone kept the other GPUs idle, for minutes at long windows; on 2 CPU ranks, 1.7-1.95x
    faster: benchmarks/ddp_eval.py)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    starts = range(0, len(windows), batch_size)
    sums = torch.zeros(len(starts), dtype=torch.float64)
    for b in range(rank, len(starts), world):
        w = torch.from_numpy(windows[starts[b] : starts[b] + batch_size]).to(device)
        logits = model(w[:, :-1]).logits.float()
        sums[b] = torch.nn.functional.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(), reduction="sum").item()
    if world > 1:  # each batch's sum from its one rank, plus zeros: exact (on the device: NCCL reduces GPU tensors)
        reduced = sums.to(device)
        dist.all_reduce(reduced)
        sums = reduced.cpu()
    model.train(was_training)
    total = 0.0
    for value in sums.tolist():  # one process's order and rounding: not sum(), compensated since Python 3.12
        total += value
    return total / (len(windows) * (windows.shape[1] - 1))


def nll_report(nll: float) -> dict:
    return {"nll": nll, "bits_per_base": nll / math.log(2), "perplexity": math.exp(nll)}


def markov_baseline(
    genome: Genome, train: list[Interval], val_windows: np.ndarray, log=print, cache: bool = True
) -> dict:
    """Choose order/smoothing/strands on a split of the training DNA (last 10% of each interval), refit on all of it,
    and score the held-out windows. Minutes of counting on a large genome, so the report is cached under
    ``$HYENADNA_HOME/markov``, keyed by a hash of the training DNA itself and the windows (``cache=False``: refit).
    In data-parallel pretraining rank 0 fits it alone: counting a share on every rank measured 0.97-1.26x on 2 CPU
    ranks (the counting is memory-bound), for the count tables' memory on every rank (benchmarks/ddp_eval.py at
    e9403a3)."""
    import hashlib

    from hyenadna.hub import cache_dir

    sequences = [genome.fetch(iv) for iv in train]
    key = hashlib.sha256(b"markov-v1")
    for iv, seq in zip(train, sequences, strict=True):
        key.update(str(iv).encode() + seq.tobytes())
    key.update(str(val_windows.shape).encode() + val_windows.tobytes())
    cached = cache_dir() / "markov" / f"{key.hexdigest()[:32]}.json"
    if cache and cached.is_file():
        try:
            report = json.loads(cached.read_text())
            log(f"markov baseline: {report['held_out']['nll']:.4f} nats/base (cached in {cached})")
            return report
        except (ValueError, KeyError):
            log(f"markov baseline: ignoring an unreadable cache file {cached}")
    log(f"markov baseline: fitting orders 2-12 on {sum(map(len, sequences)):,} bases (minutes on a chromosome)")
    fit, select = [], []
    for iv, seq in zip(train, sequences, strict=True):
        cut = int(0.9 * len(iv))
        fit.append(seq[:cut])
        select.append(Interval(iv.chrom, iv.start + cut, iv.end))
    length = val_windows.shape[1]
    select = [iv for iv in select if len(iv) > length]
    if not select:  # the last tenth of every training interval is shorter than one window
        raise ValueError(
            f"the Markov baseline picks its order on windows of {length:,} bases from the last tenth of each training "
            "interval, and none is that long: train on longer regions, or leave the baseline out (--no-markov)"
        )
    # the DNA is read once: the heads' counts choose the setting, the tails' added to them give the whole
    # intervals', and the reverse strand's come from the forward strand's (training/markov.py); until 2026-12-08 it
    # was counted 4.7 times over (forward, both strands, then both strands of everything again)
    orders = range(2, 13)
    bar = tqdm(
        total=sum(map(len, sequences)),
        unit="bp",
        unit_scale=True,
        desc="Markov fit",
        leave=False,
        disable=None,
        mininterval=1,
    )
    heads = count_kmers(fit, max(orders), progress=bar.update)
    tails = count_kmers(sequences, max(orders), ends_from=[len(f) for f in fit], progress=bar.update)
    bar.close()
    select_windows = fixed_windows(genome, select, len(val_windows), length, seed=4321)
    best, grid = select_markov(fit, select_windows, orders, log=lambda m: None, counts=heads)
    model = MarkovModel(best["order"], best["alpha"])
    whole = [h + t for h, t in zip(heads[: best["order"] + 1], tails, strict=False)]
    model.counts = add_reverse_complement(whole) if best["both_strands"] else whole
    held_out = model.nll(val_windows)
    log(
        f"markov baseline: order {best['order']} alpha {best['alpha']} both_strands {best['both_strands']} -> "
        f"{held_out:.4f} nats/base on the held-out windows"
    )
    report = {"selected": best, "held_out": nll_report(held_out), "grid": grid}
    if cache:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cached, json.dumps(report, indent=1))
        except OSError as e:  # a read-only home is no reason to fail the run
            log(f"markov baseline: not cached ({e})")
    return report


def memory_plan(
    cfg: PretrainConfig, model: HyenaConfig, device: torch.device, processes: int = 1
) -> tuple[bool, list[str]]:
    """Whether the loop keeps freed memory between steps, and what to say before the first step
    (``training/step_memory.py``). ``cfg.keep_freed_memory`` None (the default) keeps it on the CPU unless the kept
    memory, 2-3x a step's at long windows, would not fit; a step that would not fit at all gets a warning that names
    the switches that lower it, since on the CPU the kernel kills the process without a word."""
    precision = "bf16" if cfg.bf16 else "fp32"  # resolved by now (run_precision)
    est = step_memory(
        model,
        cfg.largest_batch_tokens(),
        device,
        cfg.gradient_checkpointing,
        processes,
        precision,
        cfg.sequence_chunked,
    )
    cpu = device.type == "cpu"
    keep = cpu and cfg.keep_freed_memory is not False
    if cpu and cfg.keep_freed_memory is None and est is not None:
        keep = est.fits(KEPT_FREED_MEMORY_FACTOR)
    lines = []
    if est is not None and not est.fits():
        fixes = []
        if not (cfg.gradient_checkpointing or cfg.sequence_chunked):
            fixes.append(f"--gradient-checkpointing (about {est.need_checkpointed / 1e9:.1f} GB)")
        if not cfg.sequence_chunked:
            fixes.append(f"--sequence-chunked (about {est.need_chunked / 1e9:.1f} GB)")
        fixes.append("a smaller --batch-size with --grad-accum, or shorter windows")
        fixes += ["--no-keep-freed-memory"] if keep else []
        kept = " (freed memory is handed back between steps)" if cpu and not keep else ""
        lines.append(f"warning: {est.describe()}: the run may be killed{kept}. Less memory: " + "; ".join(fixes))
    elif keep and est is not None and not est.fits(KEPT_FREED_MEMORY_FACTOR):
        lines.append(
            f"warning: {est.describe()}, but the freed memory kept between steps can take 2-3x as much at long "
            "windows: if the run is killed, --no-keep-freed-memory"
        )
    elif cpu and not keep and cfg.keep_freed_memory is None:
        lines.append(
            f"note: {est.describe()}; keeping freed memory between steps can take 2-3x as much at long windows, "
            "so it is handed back (slower: page faults; --keep-freed-memory keeps it)"
        )
    return keep, lines


def training_bf16(requested: bool | None, device: torch.device) -> bool:
    """bf16 autocast for training: as asked; by default on where it is the faster mode: a CUDA GPU with bf16 support,
    or a CPU with native bf16 matmuls, AMX tiles or AVX512-BF16 (Intel Xeon 4th generation on: 1.29-1.33x the fp32
    step at tiny-1k batch 8, 1.17-1.32x at 16k tokens; AMD EPYC Zen 4: 1.47x and 1.31x; README "The training step").
    Off on other CPUs, where oneDNN emulates bf16 (an Ice Lake Xeon, AVX-512 without BF16: 0.44-0.49x; an AVX2 AMD
    EPYC, Zen 1: 0.06x)."""
    if requested is not None:
        return requested
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def run_precision(requested: bool | None, device: torch.device, state: dict | None) -> str:
    """ "bf16" or "fp32" for this run. A resumed run left to the default keeps the precision it started with (its
    checkpoint's config says which), so that it resumes as it ran even on another machine; checkpoints from before
    the CPU default could be bf16 ran in fp32 on the CPU."""
    if requested is None and state is not None:
        saved = json.loads(state.get("config", "{}")).get("bf16")
        requested = saved if saved is not None else (device.type == "cuda" and training_bf16(None, device))
    return "bf16" if training_bf16(requested, device) else "fp32"


def warm_start(model: HyenaDNALMHeadModel, source: str) -> str:
    """Copy every parameter of the model ``source`` names into ``model``. No parameter of HyenaDNA depends on l_max
    (the filter's position grid is a buffer, built from the new config), so a 1k model can seed a 16k one. A model
    given geometric filter bands its source lacks gets the source's first filter layer for the features both have,
    and zero weights for the new ones, so that it starts as the source model. Any other difference in shape is a
    different architecture and an error."""
    from hyenadna.hub import resolve_weights
    from hyenadna.models.checkpoint import read_checkpoint

    src_cfg, state, path = read_checkpoint(resolve_weights(source))
    params = dict(model.named_parameters())
    grown = _grown_filter_inputs(model.config, src_cfg, params, state)
    wrong = [
        f"{n} {list(state[n].shape)} vs {list(p.shape)}"
        for n, p in params.items()
        if n in state and state[n].shape != p.shape and n not in grown
    ]
    missing = [n for n in params if n not in state]
    if wrong or missing:
        raise ValueError(
            f"--init-from {source}: {path} has another architecture ("
            + "; ".join(
                ([f"shapes differ: {', '.join(wrong[:3])}"] if wrong else [])
                + ([f"missing: {', '.join(missing[:3])}"] if missing else [])
            )
            + "); warm starts keep d_model, n_layer and d_inner, may change l_max, and may add geometric filter bands"
        )
    with torch.no_grad():
        for name, p in params.items():
            if name in grown:
                p.zero_()
                p[:, : state[name].shape[1]] = state[name]
            else:
                p.copy_(state[name])
    note = f"; {len(grown)} filter input layers grown by {2 * model.config.filter_geometric_bands} zero columns"
    return (
        f"warm start from {path}: all {len(params)} parameter tensors copied{note if grown else ''}; the filter grid "
        "is this run's own"
    )


def _grown_filter_inputs(cfg, src_cfg, params: dict, state: dict) -> set[str]:
    """Names of the implicit filters' first-layer weights that take the new geometric bands: the model has them, the
    source has none and the same emb_dim, so its features are the first columns of the model's."""
    if not cfg.filter_geometric_bands or src_cfg.filter_geometric_bands or src_cfg.emb_dim != cfg.emb_dim:
        return set()
    return {
        n
        for n, p in params.items()
        if n.endswith("filter_fn.implicit_filter.0.weight")
        and n in state
        and list(state[n].shape) == [p.shape[0], cfg.emb_dim]
    }


def _save_checkpoint(
    path: Path,
    model,
    optimizer,
    step: int,
    tokens: int,
    wall: float,
    cfg: PretrainConfig,
    rng_ranks: list[dict] | None = None,
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "tokens_seen": tokens,
        "wall_time": wall,
        "rng": rng_state(),
        "config": json.dumps(dataclasses.asdict(cfg)),
    }
    if rng_ranks is not None:  # data-parallel: each rank's own generators (gather_rng_states)
        state["rng_ranks"] = rng_ranks
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _same_checkpoint_on_every_rank(state: dict | None, out: Path) -> None:
    """On resume, every rank must have read the same checkpoint. A rank that finds none (``--out`` on a node-local
    disk) would start afresh beside the others, its optimiser state and step count apart from theirs (in a test the
    two ranks ended with different weights and exited 0). Every rank raises the same error instead."""
    steps: list = [None] * dist.get_world_size()
    dist.all_gather_object(steps, None if state is None else state["step"])
    if len(set(steps)) > 1:
        raise FileNotFoundError(
            f"--resume: the ranks see different checkpoints in {out} (step by rank: "
            + ", ".join("none" if s is None else str(s) for s in steps)
            + "); --out must be on a file system every rank sees"
        )


def restore_rng(state: dict, rank: int, world: int) -> str | None:
    """Set this rank's generators from a checkpoint: its own saved state where the checkpoint holds one per rank of a
    run of this world size, else rank 0's (single-process checkpoints, and older ones). Returns a warning where that
    leaves ranks other than 0 continuing not bit for bit."""
    ranks = state.get("rng_ranks")
    if world > 1 and ranks is not None and len(ranks) == world:
        set_rng_state(ranks[rank])
        return None
    set_rng_state(state["rng"] if "rng" in state else {"cpu": state["torch_rng"]})
    if world == 1:
        return None
    held = f"RNG states of {len(ranks)} ranks" if ranks is not None else "no RNG state per rank (an older checkpoint)"
    return (
        f"warning: the checkpoint holds {held} and this run has {world}: every rank restores rank 0's generators, so "
        "dropout on the other ranks' GPUs continues, but not bit for bit"
    )


def _plot(metrics_path: Path, out: Path, baseline: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train = [(r["tokens_seen"], r["loss"]) for r in rows if r["kind"] == "train"]
    val = [(r["tokens_seen"], r["nll"]) for r in rows if r["kind"] == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if train:
        x, y = zip(*train, strict=True)
        ax.plot(x, y, lw=0.6, alpha=0.35, color="C0", label="train loss (per logged batch)")
        k = max(1, len(y) // 50)
        if k > 1:  # running mean, so the trend is readable through batch noise
            smooth = np.convolve(y, np.ones(k) / k, mode="valid")
            ax.plot(x[k - 1 :], smooth, lw=1.5, color="C0", label=f"train loss (mean of {k})")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="held-out NLL")
    if baseline is not None:
        ax.axhline(baseline, color="k", ls="--", lw=1, label=f"Markov baseline {baseline:.3f}")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("nats / base")
    values = [v for _, v in train + val] + ([baseline] if baseline is not None else [])
    if values:  # the first steps' losses (~2.5) would squash the part worth reading
        ax.set_ylim(min(values) - 0.02, float(np.percentile(values, 95)) + 0.05)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out)


def _last_eval_step(metrics_path: Path) -> int | None:
    rows = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()] if metrics_path.exists() else []
    evals = [r["step"] for r in rows if r.get("kind") == "eval"]
    return evals[-1] if evals else None


def load_run_checkpoint(out: Path) -> dict | None:
    """A run's saved state: ``checkpoint.pt``, or else the packed ``checkpoint/`` folder (training/portable.py) that
    a repository can hold; None when there is neither."""
    if (out / "checkpoint.pt").exists():
        return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    if (out / "checkpoint" / "state.json").exists():
        from hyenadna.training.portable import unpack_checkpoint

        return unpack_checkpoint(out / "checkpoint")
    return None


def pretrain(cfg: PretrainConfig, resume: bool = False) -> dict:
    """Train (or with ``resume`` go on training) the run in ``cfg.out_dir``, which one process writes at a time: a
    second ``pretrain`` there (a requeued job while the first still runs) is refused, not run beside it (the two
    interleaved their metrics.jsonl and overwrote each other's checkpoints). Under torchrun, rank 0 holds it."""
    with hold_folder(cfg.out_dir, "pretraining run") if _dist_info()[0] == 0 else contextlib.nullcontext():
        return _pretrain(cfg, resume)


def _pretrain(cfg: PretrainConfig, resume: bool) -> dict:
    rank, world = _dist_info()
    out = Path(cfg.out_dir)
    ckpt_path, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if cfg.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
    # where rank 0 works alone (the Markov baseline, export, checkpoints), the others wait on a gloo group of
    # their own with a long timeout, not in the next collective under the backend's (NCCL: 10 minutes; the
    # baseline takes 30 s on our ~100 Mb of training DNA on a Zen 4, and a whole genome is 30 times as much)
    waiting = dist.new_group(backend="gloo", timeout=RANK0_WAIT) if world > 1 else None

    def wait_for_rank0() -> None:
        if waiting is not None:
            dist.barrier(group=waiting)

    device = rank_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    is_main = rank == 0
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if is_main else (lambda msg: None)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if (ckpt_path.exists() or (out / "checkpoint" / "state.json").exists()) and not resume:
            raise FileExistsError(f"{out} holds a checkpoint: pass --resume to continue that run, or use a new --out")

    genome = Genome.from_fasta(cfg.fasta)
    train, evaluation = training_intervals(cfg, genome)
    if not evaluation:
        raise ValueError("no evaluation region in this genome; pass --eval-region")
    if is_main:
        regions = {"train": [str(iv) for iv in train], "evaluation": [str(iv) for iv in evaluation]}
        atomic_write_text(out / "regions.json", json.dumps(regions, indent=1))
    log(
        f"training on {sum(map(len, train)):,} bases in {len(train)} intervals; evaluating on "
        f"{', '.join(map(str, evaluation))}"
    )
    val_windows = fixed_windows(genome, evaluation, cfg.eval_windows, cfg.seq_len + 1)

    baseline = None
    if is_main and cfg.markov:
        markov_path = out / "markov.json"
        if not markov_path.exists():
            t0 = time.time()
            report = markov_baseline(genome, train, val_windows, log=log)
            report["seconds"] = time.time() - t0
            atomic_write_text(markov_path, json.dumps(report, indent=1))
        baseline = json.loads(markov_path.read_text())["held_out"]["nll"]
    wait_for_rank0()

    torch.manual_seed(cfg.seed)  # seeds every GPU as well
    model_cfg = HyenaConfig(**cfg.model)
    if cfg.seq_len + 1 > model_cfg.l_max:
        log(f"note: windows of {cfg.seq_len} tokens exceed l_max {model_cfg.l_max}")
    longest = cfg.longest_window()
    if 2 * (longest + 1) < model_cfg.l_max:
        log(
            f"note: no training window is longer than {longest:,} tokens, under half of l_max "
            f"{model_cfg.l_max:,}: the long filters' taps further back get no gradient, yet move with the filter MLP "
            "they share (the 3-layer 16k model continued on 1k windows alone lost 0.0023 nats/base on 16k windows: "
            "docs/pretraining/16k-d256-l3-geo16); a last stage of long windows (--stages) keeps them trained"
        )
    model = HyenaDNALMHeadModel(model_cfg).gradient_checkpointing(cfg.gradient_checkpointing)
    model.sequence_chunked(cfg.sequence_chunked)
    state = load_run_checkpoint(out) if resume else None
    if resume and world > 1:
        _same_checkpoint_on_every_rank(state, out)
    if cfg.init_from and state is None:
        log(warm_start(model, cfg.init_from))
    model.to(device)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    step, tokens_seen, wall_before = 0, 0, 0.0
    if state is not None:
        model.load_state_dict(without_derived_buffers(state["model"], model, out))
        optimizer.load_state_dict(state["optimizer"])
        step, tokens_seen, wall_before = state["step"], state["tokens_seen"], state["wall_time"]
        warning = restore_rng(state, rank, world)
        if warning:
            log(warning)
        log(f"resumed from {out} at step {step} ({tokens_seen:,} tokens)")
        if is_main and metrics_path.exists():  # drop anything logged after the checkpoint
            kept = [ln for ln in metrics_path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
            atomic_write_text(metrics_path, "".join(x + "\n" for x in kept))
    elif is_main:
        atomic_write_text(metrics_path, "")
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model)
    forward = torch.compile(train_model) if cfg.compile else train_model

    sampler = WindowSampler(genome, train, cfg.max_n_fraction, cfg.reverse_complement, cfg.n_to_pad, cfg.seed, rank)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, cfg.max_steps // 100)
    precision = run_precision(cfg.bf16, device, state)
    cfg = dataclasses.replace(cfg, bf16=precision == "bf16")  # the checkpoints record what ran
    stop = _StopFlag()
    old_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    log(
        f"model: {model.num_parameters():,} parameters; {cfg.max_steps} steps; device {device}; "
        f"threads {torch.get_num_threads()}; world size {world}; {precision}"
    )
    keep_freed, notes = memory_plan(cfg, model_cfg, device, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    for line in notes:
        log(line)
    slow = emulated_bf16(device, precision)
    if slow:  # typically a bf16 run resumed on another kind of machine: exact, but many times slower
        log(f"warning: {slow}; --no-bf16 runs it in fp32, on --resume too (recorded in pretrain_config.json)")

    def log_metrics(row: dict) -> None:
        if is_main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def export_model() -> None:  # in shards a git repository can hold, like the packed checkpoint
        model.save_pretrained(out / "model", max_shard_bytes=MAX_SHARD_BYTES)

    def export_and_eval(step: int, wall: float, ranks: int = world) -> None:
        """Every one of ``ranks`` ranks scores its share of the held-out windows; rank 0 logs and exports."""
        nll = evaluate_nll(model, val_windows, rank=rank, world=ranks)
        if not is_main:
            return
        row = {"kind": "eval", "step": step, "tokens_seen": tokens_seen, "wall_time": wall, **nll_report(nll)}
        if baseline is not None:
            row["markov_nll"] = baseline
        log_metrics(row)
        export_model()
        _plot(metrics_path, out / "loss_curve.png", baseline)
        log(f"step {step}: held-out NLL {nll:.4f} nats/base" + (f" (Markov {baseline:.4f})" if baseline else ""))

    t_start = time.time()
    bar = tqdm(
        total=cfg.max_steps,
        initial=step,
        disable=not is_main,
        unit="step",
        dynamic_ncols=True,
        mininterval=1 if sys.stderr.isatty() else 30,
    )
    model.train()
    tokens_since, t_since = 0, time.time()
    # every step allocates and frees the same large activations: on the CPU, keep freed memory for the next step
    # instead of page-faulting it in again from the kernel (utils/memory.py; 1.19x a bf16 step at 16k tokens)
    # (at long windows the kept memory can outgrow the activations, and memory_plan hands it back instead:
    # README "Training memory")
    with reuse_freed_memory(keep_freed):
        try:
            while step < cfg.max_steps:
                seq_len, batch = cfg.stage(step)
                lr = cosine_lr(step, cfg.max_steps, cfg.lr, warmup, final_ratio=cfg.final_lr_ratio)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                loss_sum = 0.0
                for micro in range(cfg.grad_accum):
                    w = torch.from_numpy(sampler.batch(step * cfg.grad_accum + micro, batch, seq_len + 1)).to(device)
                    # data-parallel: gradients are averaged across ranks once a step, in the last micro-batch's
                    # backward, not after each one
                    last = micro == cfg.grad_accum - 1
                    with train_model.no_sync() if world > 1 and not last else contextlib.nullcontext():
                        with autocast(device, precision, warn_emulated=False):  # logged above
                            loss = forward(w[:, :-1], labels=w[:, 1:]).loss / cfg.grad_accum
                        loss.backward()
                    loss_sum += loss.item()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                step += 1
                n_tok = batch * seq_len * cfg.grad_accum * world
                tokens_seen += n_tok
                tokens_since += n_tok
                wall = wall_before + time.time() - t_start
                if step % cfg.log_every == 0 or step == cfg.max_steps:
                    tps = tokens_since / max(1e-9, time.time() - t_since)
                    tokens_since, t_since = 0, time.time()
                    log_metrics(
                        {
                            "kind": "train",
                            "step": step,
                            "tokens_seen": tokens_seen,
                            "wall_time": wall,
                            "loss": loss_sum,
                            "lr": lr,
                            "grad_norm": float(grad_norm),
                            "tokens_per_s": tps,
                            # per row: a resumed run may use another thread count, and the card's CPU hours follow it
                            "threads": torch.get_num_threads() if device.type == "cpu" else None,
                            "seq_len": seq_len,
                            "batch_size": batch,
                        }
                    )
                    bar.set_postfix(loss=f"{loss_sum:.4f}", tok_s=f"{tps:,.0f}", lr=f"{lr:.2e}", refresh=False)
                bar.update(1)
                if step % cfg.eval_every == 0 or step == cfg.max_steps:
                    export_and_eval(step, wall)
                    wait_for_rank0()
                out_of_time = cfg.max_minutes is not None and (time.time() - t_start) > 60 * cfg.max_minutes
                # whether any rank was signalled, or is out of time: every rank takes the same branch below (NCCL
                # reduces GPU tensors only)
                flags = torch.tensor([float(stop.requested), float(out_of_time)], device=device)
                if world > 1:
                    dist.all_reduce(flags)
                signalled, stopping = flags[0].item() > 0, flags.sum().item() > 0
                if step % cfg.ckpt_every == 0 or step == cfg.max_steps or stopping:
                    rng_ranks = gather_rng_states()  # a collective: before rank 0 alone writes
                    if is_main:
                        _save_checkpoint(ckpt_path, model, optimizer, step, tokens_seen, wall, cfg, rng_ranks)
                    wait_for_rank0()
                if stopping and step < cfg.max_steps:
                    if signalled:  # be quick, but leave model/ matching the checkpoint
                        if is_main:
                            export_model()
                    else:  # the time budget: the caller is waiting anyway, so evaluate as at the end
                        export_and_eval(step, wall)
                    log(f"stopping at step {step} (signal or time budget); resume with --resume")
                    break
            if is_main and step >= cfg.max_steps and _last_eval_step(metrics_path) != step:
                # resumed with --max-steps at or below the checkpoint's step: the run ends here, evaluated and exported
                # by rank 0 alone, which alone reads the metrics
                export_and_eval(step, wall_before, ranks=1)
            elif is_main and step >= cfg.max_steps and not (out / "model" / "config.json").exists():
                # a finished run copied without model/ (a repository holds its packed checkpoint, not an 11 MB file)
                export_model()
        finally:
            bar.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
    with torch.no_grad():  # identical on every rank when data-parallel training is in sync
        checksum = float(sum(p.double().sum() for p in model.parameters()))
    result = {
        "step": step,
        "tokens_seen": tokens_seen,
        "wall_time": wall_before + time.time() - t_start,
        "finished": step >= cfg.max_steps,
        "markov_nll": baseline,
        "stopped_by_signal": stop.signal,  # SIGINT/SIGTERM: the CLI exits 130/143 after the checkpoint
        "rank": rank,
        "param_checksum": checksum,
    }
    if world > 1:
        wait_for_rank0()  # rank 0 may have evaluated and exported alone at a stop
        dist.destroy_process_group()
    return result


def losses(metrics_path: str | Path) -> list[tuple[int, float]]:
    """(step, training loss) rows of a metrics file, for tests and reports."""
    rows = [json.loads(x) for x in Path(metrics_path).read_text().splitlines() if x.strip()]
    return [(r["step"], r["loss"]) for r in rows if r["kind"] == "train"]
