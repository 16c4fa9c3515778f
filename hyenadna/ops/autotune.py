"""Kernel choices measured on this machine, once, then cached and reused (as ``torch.backends.cudnn.benchmark`` does).

The fastest projection library, FFT length policy and block sizes depend on the CPU. oneDNN ran fp32 projections at
about 2x MKL's speed on AMD EPYC, where MKL does not use its AVX-512 kernels, and that lead need not hold on an Intel
Xeon. So the first model built in a process asks ``tuning()``, which reads
``$HYENADNA_HOME/autotune/<key>.json`` (key: CPU model, torch version, threads) or, the first time on this machine,
times each knob's candidates on small representative inputs (a few seconds) and writes that file.

Processes starting together take turns through a file lock beside the cache file: one measures, the others read
its file. ``HYENADNA_AUTOTUNE=0`` (or ``set_enabled(False)``) uses ``DEFAULTS``, the values measured on AMD EPYC.
``HYENADNA_AUTOTUNE=<file.json>`` pins the choices a file records, an autotune cache file or a benchmark run's JSON
(``environment.kernels``): the choices move float rounding, so repeating a run exactly on the same CPU model takes the
kernels it ran with, whatever this machine would measure.
``hyenadna autotune`` shows the choices and their timings; ``--refresh`` measures again. A cache file that cannot be
read is left as it is (with a warning) and the defaults are used until ``--refresh`` rewrites it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch


@dataclass(frozen=True)
class Tuning:
    # projections (ops/linear.py) in fp32 on the CPU: "onednn" (fused linear + post-op) or "mkl" (F.linear)
    projection_inference: str = "onednn"
    projection_train: str = "onednn"
    # a power of two at most this much longer than the smallest 2,3,5,7-smooth transform length is used instead
    fft_pow2_slack: float = 1.05
    # per-sequence inference micro-batches of about this many tokens (ops/execution.py)
    block_tokens: int = 2048
    # the low-memory path's token chunk
    low_memory_chunk: int = 1024
    # fp32 training: the weight gradient dy^T x through "mm" (torch.mm, MKL) or "onednn" (ops/linear.py)
    weight_gradient: str = "mm"
    # fp32 training: out_proj's forward and input gradient, its input channels first, through "mm" (torch.addmm /
    # torch.mm, MKL) or "onednn" (ops/linear.py, linear_channels_first)
    out_proj_train: str = "mm"


DEFAULTS = Tuning()
CANDIDATES: dict[str, tuple] = {
    "projection_inference": ("onednn", "mkl"),
    "projection_train": ("onednn", "mkl"),
    "fft_pow2_slack": (1.0, 1.05, 1.25),
    "block_tokens": (1024, 2048, 4096, 8192),
    "low_memory_chunk": (512, 1024, 2048),
    "weight_gradient": ("mm", "onednn"),
    "out_proj_train": ("mm", "onednn"),
}
# another candidate replaces the default only when it is at least this much faster, round for round: on a shared
# 2-core machine the same comparison varied by 10-30% from run to run, and noise must not flip a choice
MARGIN = 0.10
# part of the cache key: bump it when the candidates or the way they are measured change
# (3: the training candidates are measured even when the first use is inference, which left them unmeasured before;
# 4: the key holds the CPU's family, model and instruction sets, not only its name; 5: weight_gradient;
# 6: out_proj_train)
VERSION = 6
# knobs that benchmark runs and pins written before them lack (they ran the default)
ADDED_LATER = frozenset({"weight_gradient", "out_proj_train"})
# the instruction sets oneDNN and MKL choose their code paths by
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")

_enabled: bool | None = None
_trying: Tuning | None = None  # while measuring: the candidate being timed
_memo: dict[int, Tuning] = {}


def set_enabled(on: bool | None) -> None:
    """Turn measuring and the cache on or off for this process (None: follow ``HYENADNA_AUTOTUNE``)."""
    global _enabled
    _enabled = on
    _memo.clear()


_OFF = {"0", "off", "no", "false"}
_ON = {"", "1", "on", "yes", "true"}


def enabled() -> bool:
    if _enabled is not None:
        return _enabled
    return os.environ.get("HYENADNA_AUTOTUNE", "1").strip().lower() not in _OFF


def pinned_file() -> Path | None:
    """The file ``HYENADNA_AUTOTUNE`` names, when it names one rather than switching autotune on or off."""
    value = os.environ.get("HYENADNA_AUTOTUNE", "1").strip()
    if _enabled is not None or value.lower() in _OFF | _ON:
        return None
    return Path(value).expanduser()


def pick(rounds: dict, default):
    """The candidate to use, from each candidate's seconds per round (the candidates timed back to back in each
    round): the one whose median ratio to the default, round by round, is lowest, if that is below 1 - ``MARGIN``;
    else the default. Pairing within rounds cancels the machine's load drifting between rounds. Candidates that
    could not run are left out of ``rounds``; without the default, the lowest median time wins."""
    if not rounds:
        return default
    if default not in rounds:
        return min(rounds, key=lambda c: statistics.median(rounds[c]))
    ratios = {
        c: statistics.median(t / d for t, d in zip(times, rounds[default], strict=True))
        for c, times in rounds.items()
        if c != default
    }
    best = min(ratios, key=ratios.get, default=None)
    return best if best is not None and ratios[best] < 1 - MARGIN else default


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():  # the first processor's block ends here
                    break
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


@functools.cache
def cpu_name() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


@functools.cache
def cpu_features() -> str:
    """The CPU's family and model numbers and the instruction sets of ``ISA_FLAGS`` it has. A virtual machine's CPU name
    can hide its generation: "Intel(R) Xeon(R) Processor @ 2.80GHz" named both an Ice Lake (family 6 model 106, no
    AMX) and a Sapphire Rapids with AMX on these machines, whose fastest kernels differ."""
    info = _cpuinfo()
    if not info:
        return platform.machine()
    flags = set(info.get("flags", "").split())
    isa = " ".join(f for f in ISA_FLAGS if f in flags) or "-"
    return f"family {info.get('cpu family', '?')} model {info.get('model', '?')}; {isa}"


def cache_key(threads: int | None = None) -> str:
    threads = threads or torch.get_num_threads()
    cpu = re.sub(r"[^A-Za-z0-9]+", "-", cpu_name()).strip("-")[:60]
    identity = f"{cpu_name()}|{cpu_features()}|{torch.__version__}|{threads}|{VERSION}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return f"{cpu}-torch{torch.__version__.split('+')[0]}-t{threads}-{digest}"


def cache_path(threads: int | None = None) -> Path:
    from hyenadna.hub import cache_dir

    return cache_dir() / "autotune" / f"{cache_key(threads)}.json"


def tuning(device: torch.device | str | None = None) -> Tuning:
    """The choices for this machine and thread count: cached, measured now (the first time), or the defaults. The
    choices are the CPU's: work on another ``device`` gets the defaults, so a GPU user never waits for a measurement."""
    if _trying is not None:
        return _trying
    if not enabled() or (device is not None and _device_type(device) != "cpu"):
        return DEFAULTS
    threads = torch.get_num_threads()  # called on every projection: the memo is keyed by what is cheap to read
    found = _memo.get(threads)
    if found is None:
        pinned = pinned_file()
        found = _memo[threads] = _read_pinned(pinned) if pinned else _load_or_measure(cache_path(threads))
    return found


def _read_pinned(path: Path) -> Tuning:
    """The choices an autotune cache file (``choices``) or a benchmark run (``environment.kernels``) records. Unlike
    a broken cache file, which falls back to the defaults, a pin that cannot be read is an error: the user asked for
    these kernels, and running others would quietly give other numbers."""
    try:
        record = json.loads(path.read_text())
        choices = record.get("choices") or (record.get("environment") or {}).get("kernels")
        if choices is None:
            raise KeyError("neither 'choices' (an autotune cache file) nor 'environment.kernels' (a benchmark run)")
        return _from_record({"choices": choices})
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"HYENADNA_AUTOTUNE={path}: cannot pin the kernel choices from this file: {err}") from None


def _device_type(device: torch.device | str) -> str:
    if str(device) == "auto":  # as utils.device.resolve_device reads it
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device).type


def tuning_for_threads(threads: int, device: torch.device | str | None = None) -> Tuning:
    """``tuning()`` as a process running ``threads`` threads gets it, read or measured here and now."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return tuning(device)
    finally:
        torch.set_num_threads(previous)


def use(choices: Tuning) -> None:
    """Take ``choices`` for this process's thread count, neither reading nor measuring: a parent hands its workers
    the choices it resolved once, so two workers starting together on a new machine neither measure side by side
    (each one's timings disturbed by the other) nor end up with different kernels for the runs of one call."""
    _memo[torch.get_num_threads()] = choices


def _load_or_measure(path: Path) -> Tuning:
    if path.is_file():
        try:
            return _from_record(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, KeyError) as err:
            warnings.warn(
                f"{path}: unreadable autotune cache ({err}); using the default kernel choices. "
                "`hyenadna autotune --refresh` measures them again and rewrites the file.",
                stacklevel=3,
            )
            return DEFAULTS
    # processes starting together (benchmark workers, torchrun ranks, two commands) take turns: the first measures
    # while the others wait, then read its file, so none times its candidates beside another's measuring
    from filelock import FileLock

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{path}.lock")
        lock.acquire()
    except OSError as err:  # a read-only home (a container, a cluster node): run, with the defaults, and say so
        warnings.warn(
            f"cannot keep kernel choices in {path.parent} ({err}); using the default ones. Set HYENADNA_HOME to a "
            "writable folder to measure them once for this CPU (`hyenadna autotune`)",
            stacklevel=3,
        )
        return DEFAULTS
    try:
        if path.is_file():
            return _load_or_measure(path)
        print(
            f"hyenadna: measuring which kernels are fastest on this CPU, once (5-20 s; cached in {path.parent}; "
            "HYENADNA_AUTOTUNE=0 skips this)",
            file=sys.stderr,
            flush=True,
        )
        record = measure()
        write_record(path, record)
        note = contention_note(record)
        if note:
            print(f"hyenadna: kernel choices {note}", file=sys.stderr, flush=True)
    finally:
        lock.release()
    return _from_record(record)


def _from_record(record: dict) -> Tuning:
    choices = record["choices"]
    values = {}
    for f in fields(Tuning):
        # a run recorded before a knob existed ran that knob's default; any other missing knob is an error
        value = getattr(DEFAULTS, f.name) if f.name in ADDED_LATER and f.name not in choices else choices[f.name]
        if value not in CANDIDATES[f.name]:
            raise ValueError(f"{f.name}={value!r} is not one of {CANDIDATES[f.name]}")
        values[f.name] = value
    return Tuning(**values)


def write_record(path: Path, record: dict) -> None:
    from hyenadna.utils.io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1))


def refresh() -> dict:
    """Measure again and rewrite this machine's cache file; returns the record."""
    from filelock import FileLock

    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        record = measure()
        write_record(path, record)
    _memo.clear()
    return record


# --- measuring ---------------------------------------------------------------------------------------------------


def time_candidates(run: dict, repeats: int = 5, clock: Callable[[], float] = time.perf_counter) -> dict:
    """Seconds of each candidate's function in each of ``repeats`` rounds, the candidates back to back within a
    round (in reverse order every other round), so that load from elsewhere hits them alike. A candidate that
    raises is dropped."""
    rounds: dict = {}
    for name, fn in run.items():
        try:
            fn()  # warm-up: first-call allocations and kernel set-up
        except (RuntimeError, NotImplementedError):
            continue
        rounds[name] = []
    order = list(rounds)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            t0 = clock()
            run[name]()
            rounds[name].append(clock() - t0)
    return rounds


def _fft_policy_seconds() -> dict:
    """Each slack's total time over transform lengths whose smooth length is 2% and 20% shorter than the power of
    two (64,000 = 2^9 5^3 and 54,675 = 3^7 5^2, against 65,536), on 32 channels."""
    from hyenadna.ops.fftconv import smooth_fft_length

    wanted = (64_000, 54_675)
    lengths = {smooth_fft_length(n, slack) for n in wanted for slack in CANDIDATES["fft_pow2_slack"]}
    u = torch.randn(32, max(lengths), generator=torch.Generator().manual_seed(0))
    runs = {n: (lambda n=n: torch.fft.irfft(torch.fft.rfft(u[:, :n], n=n), n=n)) for n in sorted(lengths)}
    per_length = time_candidates(runs)
    return {
        s: [sum(rounds) for rounds in zip(*(per_length[smooth_fft_length(n, s)] for n in wanted), strict=True)]
        for s in CANDIDATES["fft_pow2_slack"]
    }


def _knob_seconds(knob: str, work: Callable[[], None]) -> dict:
    """Each candidate of ``knob`` timed on ``work()`` run under it (the other knobs at their defaults)."""
    global _trying

    def run(value):
        def go():
            global _trying
            _trying = replace(DEFAULTS, **{knob: value})
            work()

        return go

    try:
        return time_candidates({v: run(v) for v in CANDIDATES[knob]})
    finally:
        _trying = DEFAULTS


def _weight_gradient_seconds() -> dict:
    """Each candidate's time for the fp32 weight gradients of a training step's in_proj, fc1 and fc2 at the bundled
    model's width (D 256) over 4,096 tokens: measured on the matmuls alone, where the candidates differ by up to 2x,
    since in a whole step their share is too small to clear the margin that noise sets. Where oneDNN is missing the
    "onednn" candidate runs ``torch.mm`` too, and the default stays."""
    from hyenadna.ops.linear import weight_gradient

    g = torch.Generator().manual_seed(0)
    d, tokens = 256, 4096
    shapes = [(3 * d, d), (4 * d, d), (d, 4 * d)]  # (out, in): in_proj, fc1, fc2
    operands = [(torch.randn(tokens, o, generator=g), torch.randn(tokens, i, generator=g)) for o, i in shapes]

    def work():
        for dy, x in operands:
            weight_gradient(dy, x)

    return _knob_seconds("weight_gradient", work)


def _out_proj_seconds() -> dict:
    """Each candidate's time for out_proj's fp32 forward and input gradient in a training step, its input channels
    first, at the bundled model's width (D 256) over 4,096 tokens: on the matmuls alone, as for the weight gradient
    (about 2% of a whole step, below the margin noise sets there)."""
    from hyenadna.ops.linear import out_proj_forward, out_proj_input_gradient

    g = torch.Generator().manual_seed(0)
    d, tokens = 256, 4096
    x, w, b = torch.randn(d, tokens, generator=g), torch.randn(d, d, generator=g), torch.randn(d, generator=g)
    dy = torch.randn(tokens, d, generator=g)

    def work():
        out_proj_forward(x, w, b)
        out_proj_input_gradient(dy, w)

    return _knob_seconds("out_proj_train", work)


def _model_seconds(knob: str, repeats: int = 3) -> dict:
    """Each candidate of ``knob`` timed where it matters: a one-layer model of the bundled model's width (D 256),
    in inference (one and four 1k windows; eight for the micro-batch size; one 8k window through the low-memory path
    for its chunk) or a training step (two 1k windows, forward and backward)."""
    global _trying
    from hyenadna.models.config import HyenaConfig
    from hyenadna.models.hyena_dna import HyenaDNAModel
    from hyenadna.ops.execution import ExecutionOptions

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = HyenaDNAModel(HyenaConfig(d_model=256, n_layer=1, d_inner=1024, l_max=8194, vocab_size=12))
    g = torch.Generator().manual_seed(0)
    batches = {
        "projection_inference": [torch.randint(7, 11, (b, 1024), generator=g) for b in (1, 4)],
        "projection_train": [torch.randint(7, 11, (2, 1024), generator=g)],
        "block_tokens": [torch.randint(7, 11, (8, 1024), generator=g)],
        "low_memory_chunk": [torch.randint(7, 11, (1, 8192), generator=g)],
    }[knob]

    def run(value):
        def go():
            global _trying
            _trying = replace(DEFAULTS, **{knob: value})
            model.execution = ExecutionOptions()  # reads the candidate through tuning()
            for ids in batches:
                if knob == "projection_train":
                    model.train()
                    model.zero_grad(set_to_none=True)
                    model(ids).square().mean().backward()
                else:
                    model.eval()
                    with torch.no_grad():
                        model(ids, low_memory=knob == "low_memory_chunk")

        return go

    try:
        return time_candidates({v: run(v) for v in CANDIDATES[knob]}, repeats=repeats)
    finally:
        _trying = DEFAULTS


def contention_note(record: dict) -> str | None:
    """A line for a record measured while other work held cores its threads needed, else None. The paired rounds
    cancel load that drifts, not load that stays: on a Zen 5 with both cores busy the 1-thread measurement chose
    another low-memory chunk (512) than the same measurement on the quiet machine (1024)."""
    idle, threads = record.get("idle_cores"), record.get("threads")
    if idle is None or threads is None or idle >= threads:
        return None
    return (
        f"measured while other work kept cores busy ({idle} idle for {threads} thread{'s' if threads > 1 else ''}): "
        "a quiet machine may choose otherwise; `hyenadna autotune --refresh` measures again"
    )


def measure() -> dict:
    """Time every knob's candidates on this machine now; returns the record the cache file holds."""
    global _trying
    from hyenadna.utils.threads import idle_cores

    idle = idle_cores()
    _trying, t0 = DEFAULTS, time.perf_counter()
    # the first model in a process usually asks from inside an inference-mode forward (embedding, scoring): the
    # training step's candidates need autograd back, or each would raise and leave the default unmeasured
    try:
        with torch.inference_mode(False), torch.enable_grad():
            seconds = {
                "projection_inference": _model_seconds("projection_inference", repeats=5),
                "projection_train": _model_seconds("projection_train", repeats=5),
                "fft_pow2_slack": _fft_policy_seconds(),
                "block_tokens": _model_seconds("block_tokens"),
                "low_memory_chunk": _model_seconds("low_memory_chunk"),
                "weight_gradient": _weight_gradient_seconds(),
                "out_proj_train": _out_proj_seconds(),
            }
    finally:
        _trying = None
    choices = {name: pick(s, getattr(DEFAULTS, name)) for name, s in seconds.items()}
    return {
        "cpu": cpu_name(),
        "cpu_features": cpu_features(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "version": VERSION,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "measure_seconds": round(time.perf_counter() - t0, 2),
        "idle_cores": idle,  # cores found idle just before measuring (None: unknown)
        "choices": choices,
        "defaults": asdict(DEFAULTS),
        # the fastest round of each candidate, and every round
        "seconds": {name: {str(k): min(v) for k, v in s.items()} for name, s in seconds.items()},
        "rounds": {name: {str(k): v for k, v in s.items()} for name, s in seconds.items()},
    }
