"""reuse_freed_memory: large allocations come from the heap inside the block and from mmap again after it."""

from __future__ import annotations

import ctypes
import json
import sys

import pytest
import torch

from hyenadna import HyenaConfig, HyenaDNAModel
from hyenadna.ops.execution import ExecutionOptions
from hyenadna.utils import memory
from hyenadna.utils.memory import reuse_freed_memory
from tests.conftest import REPO

LARGE = 64 << 20  # above glibc's largest mmap threshold (32 MB)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _mmapped_chunks() -> int:
    libc = memory._glibc()
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2().hblks


def _mmapped_while_holding_large_tensor() -> bool:
    before = _mmapped_chunks()
    t = torch.empty(LARGE, dtype=torch.uint8)
    t.fill_(1)
    mmapped = _mmapped_chunks() > before
    del t
    return mmapped


glibc_only = pytest.mark.skipif(
    not memory.available() or not hasattr(memory._glibc(), "mallinfo2"), reason="needs glibc >= 2.33"
)


@glibc_only
def test_large_allocations_use_the_heap_only_inside_the_block():
    assert _mmapped_while_holding_large_tensor()
    with reuse_freed_memory():
        assert not _mmapped_while_holding_large_tensor()
    assert _mmapped_while_holding_large_tensor()  # glibc's defaults are back


@glibc_only
def test_nested_blocks_restore_at_the_outermost_exit():
    with reuse_freed_memory():
        with reuse_freed_memory():
            pass
        assert not _mmapped_while_holding_large_tensor()
    assert _mmapped_while_holding_large_tensor()


@glibc_only
def test_disabled_block_changes_nothing():
    with reuse_freed_memory(enabled=False):
        assert _mmapped_while_holding_large_tensor()


def test_no_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    with reuse_freed_memory():
        x = torch.ones(10)
    assert x.sum() == 10
    assert not memory.available()


def test_low_memory_path_same_output_with_and_without_reuse():
    torch.manual_seed(0)
    model = HyenaDNAModel(HyenaConfig(d_model=32, n_layer=2, d_inner=64, l_max=4098)).eval()
    ids = torch.randint(7, 11, (1, 3001))
    with torch.no_grad():
        model.execution = ExecutionOptions(reuse_freed_memory=True)
        on = model(ids, low_memory=True)
        model.execution = ExecutionOptions(reuse_freed_memory=False)
        off = model(ids, low_memory=True)
    assert torch.equal(on, off)


@glibc_only
def test_after_the_block_tensors_below_32_mb_come_from_the_heap_again():
    """Restoring glibc's static defaults on exit left the mmap threshold where it stood for good (the adaptive
    threshold cannot come back after a mallopt call), at 128 KB in a fresh process: every later activation was
    mmapped and faulted in afresh, and a training step at tiny-1k took 1.8x as long. After the block a 16 MB tensor
    comes from the heap, as in a process whose threshold has adapted. Run in a fresh process, whose threshold has
    not adapted yet."""
    import subprocess
    import sys

    script = """
import torch
from tests.test_memory import _mmapped_chunks
from hyenadna.utils.memory import reuse_freed_memory

with reuse_freed_memory():
    pass
before = _mmapped_chunks()
t = torch.empty(16 << 20, dtype=torch.uint8)
print(_mmapped_chunks() - before)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split()[-1] == "0"


def _libc_heap():
    libc = memory._glibc()
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _allocate(libc, size: int) -> int:
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)  # resident
    return block


@pytest.mark.skipif(not memory.available(), reason="glibc only")
def test_trim_returns_the_holes_that_batches_of_many_lengths_leave():
    """Batches of many lengths left a fine-tuning process's heap holed, and it grew to 7.6 GB. Here ~190 MB of 64 KB
    heap blocks, each followed by a small block that stays, are freed: free() keeps the holes resident, and
    trim_if_grown gives them back once resident memory has grown past its slack; growth then counts from the next
    call. In a fresh process: in the suite's, the blocks could land in heap pages that earlier tests left resident."""
    import subprocess
    import sys

    script = """
import json
import sys
from tests.test_memory import _allocate, _libc_heap
from hyenadna.utils import memory

libc = _libc_heap()
memory.trim_if_grown(min_interval_s=0)  # the base
large, small = [], []
for _ in range(3000):
    large.append(_allocate(libc, 65_000))
    small.append(_allocate(libc, 600))
within = memory.trim_if_grown(slack_mb=10_000, min_interval_s=0)
for block in large:
    libc.free(block)
holed = memory.resident_mb()
trimmed_now = memory.trim_if_grown(slack_mb=50, min_interval_s=0)
trimmed = memory.resident_mb()
rebased = memory.trim_if_grown(slack_mb=50, min_interval_s=0)
print(json.dumps([within, holed, trimmed_now, trimmed, rebased, memory._heap_base]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    within, holed, trimmed_now, trimmed, rebased, base = json.loads(out.stdout.strip().splitlines()[-1])
    assert not within  # grown, but within the slack
    assert trimmed_now and holed - trimmed > 100, (holed, trimmed)
    assert not rebased and base == pytest.approx(trimmed, abs=5)  # the call after a trim sets the base


def test_trim_if_grown_rebases_after_a_batch_waits_its_interval_and_skips_inside_reuse_blocks(monkeypatch):
    """A trim also hands back a step's own freed activations, which the next step faults in again: growth counts from
    the resident size one batch after a trim (the working set back in), and trims wait their interval."""
    rss, clock, trims = [1000.0], [0.0], []
    monkeypatch.setattr(memory, "resident_mb", lambda: rss[0])
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(memory, "release_memory", lambda collect=True, inside_reuse=False: trims.append(collect))
    monkeypatch.setattr(memory, "_glibc", lambda: object())
    monkeypatch.setattr(memory, "_heap_base", None)
    monkeypatch.setattr(memory, "_last_trim", 0.0)

    def at(t: float, mb: float) -> bool:
        clock[0], rss[0] = t, mb
        return memory.trim_if_grown(slack_mb=256, min_interval_s=10)

    assert not at(0, 1000)  # the first call sets the base
    assert not at(20, 1200)  # within the slack
    assert at(30, 1300) and trims == [False]  # 1300 > 1000 + 256
    assert memory._heap_base is None
    assert not at(31, 1250)  # the batch after: its working set is the new base
    assert memory._heap_base == 1250
    assert not at(35, 5000)  # within the interval of that trim
    assert not at(41, 1500)  # within the slack of 1250
    assert at(42, 1507)
    assert trims == [False, False]
    monkeypatch.setattr(memory, "_heap_base", 100.0)
    monkeypatch.setattr(memory, "_depth", 1)  # inside reuse_freed_memory freed memory is kept on purpose
    assert not at(1000, 9000)
    assert len(trims) == 2
    # unless the caller keeps it for speed but bounds the holes (the fine-tuning loop)
    assert memory.trim_if_grown(slack_mb=256, min_interval_s=10, inside_reuse=True)
    assert len(trims) == 3


def test_fine_tuning_and_the_data_path_trim_between_batches(monkeypatch):
    from hyenadna.data import pipeline
    from hyenadna.training import finetune as loop
    from tests.test_finetune import gc_task, make

    calls = {"train": [], "batches": 0}
    monkeypatch.setattr(
        loop, "trim_if_grown", lambda inside_reuse: calls["train"].append((inside_reuse, memory._depth))
    )
    monkeypatch.setattr(pipeline, "trim_if_grown", lambda: calls.__setitem__("batches", calls["batches"] + 1))
    seqs, labels = gc_task(48)
    ft = make()
    ft.train(seqs[:32], labels[:32], seqs[32:], labels[32:], epochs=1, head_init="random")
    # one per training step (32 rows, batches of 16), inside reuse_freed_memory where glibc is there to set
    kept = memory.available()
    assert calls["train"] == [(kept, int(kept))] * 2
    before = calls["batches"]
    ft.predict(seqs)
    assert calls["batches"] - before == 3  # one per inference batch
    calls["train"].clear()
    ft.train(seqs[:32], labels[:32], seqs[32:], labels[32:], epochs=1, head_init="random", keep_freed_memory=False)
    assert calls["train"] == [(False, 0)] * 2


def test_fine_tuning_gives_the_same_results_keeping_freed_memory_or_not():
    """Keeping freed memory between steps changes where tensors live, not what they hold: the same history and
    weights, bit for bit (a read of memory a step left uninitialised would show here)."""
    from tests.test_finetune import gc_task, make

    seqs, labels = gc_task(64)
    runs = []
    for keep in (True, False):
        ft = make()
        history = ft.train(seqs[:48], labels[:48], seqs[48:], labels[48:], epochs=2, keep_freed_memory=keep)
        runs.append((history, {k: v.clone() for k, v in ft.network.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(v, runs[1][1][k]) for k, v in runs[0][1].items())


def test_onednn_caches_are_bounded_by_default_unless_the_user_set_them(monkeypatch):
    import os

    for name in (*memory.ONEDNN_CACHE_VARIABLES, "DNNL_PRIMITIVE_CACHE_CAPACITY"):
        monkeypatch.delenv(name, raising=False)
    memory.bound_onednn_caches()
    assert [os.environ[name] for name in memory.ONEDNN_CACHE_VARIABLES] == [str(memory.ONEDNN_CACHE_CAPACITY)] * 2
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "7")
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    monkeypatch.setenv("DNNL_PRIMITIVE_CACHE_CAPACITY", "9")  # oneDNN's old name, which it still reads
    memory.bound_onednn_caches()
    assert os.environ["LRU_CACHE_CAPACITY"] == "7" and "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ


_SHAPES_SCRIPT = """
import json, os, sys
import torch
from hyenadna.ops.linear import _onednn_linear
from tests.test_memory import _MallInfo2
from hyenadna.utils import memory

if sys.argv[1] == "bound":
    memory.bound_onednn_caches()
libc = memory._glibc()
libc.mallinfo2.restype = _MallInfo2
torch.set_num_threads(1)
weight = torch.randn(512, 128)
_onednn_linear(torch.randn(1, 128), weight, None)
before = libc.mallinfo2().uordblks
for rows in range(100, 700):  # a primitive for each shape, as batches of many lengths make
    _onednn_linear(torch.randn(rows, 128), weight, None)
print(json.dumps([os.environ.get(name) for name in memory.ONEDNN_CACHE_VARIABLES] + [
    (libc.mallinfo2().uordblks - before) / 2**20]))
"""


def _without_cache_settings() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if "CACHE_CAPACITY" not in k}


@glibc_only
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this torch")
def test_bounded_onednn_caches_keep_primitives_for_many_shapes_from_piling_up():
    """oneDNN builds a primitive (JIT code and buffers) for each shape, and torch caches up to 1,024 in each of two
    caches: a process fine-tuning on many lengths held hundreds of MB of them, spread through its heap, which then grew
    by a GB a run (utils/memory.py). Bounded, 600 shapes, in fresh processes, hold several times less memory than
    under torch's own bound."""
    import subprocess
    import sys

    from hyenadna.ops.linear import onednn_available

    if not onednn_available():
        pytest.skip("the oneDNN linear op does not run here")
    held = {}
    for how in ("bound", "torch"):
        out = subprocess.run(
            [sys.executable, "-c", _SHAPES_SCRIPT, how],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env=_without_cache_settings(),
        )
        *capacities, held[how] = json.loads(out.stdout.strip().splitlines()[-1])
        assert capacities == ([str(memory.ONEDNN_CACHE_CAPACITY)] * 2 if how == "bound" else [None, None])
    assert held["torch"] > 20 and held["torch"] > 4 * held["bound"], held


_TRAIN_SCRIPT = """
import hashlib, json
import numpy as np
from tests.test_finetune import make

rng = np.random.default_rng(0)
seqs = ["".join(rng.choice(list("ACGT"), n)) for n in rng.integers(60, 140, 48)]
labels = [int(s.count("G") + s.count("C") > len(s) / 2) for s in seqs]
ft = make()
history = ft.train(seqs[:32], labels[:32], seqs[32:], labels[32:], epochs=1, head_init="random")
digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in ft.network.state_dict().values())).hexdigest()
print(json.dumps([history[-1]["train_loss"], digest]))
"""


def test_fine_tuning_gives_the_same_results_with_oneDNN_caches_of_any_size():
    """A primitive built again for a shape its cache evicted computes as the first one did: fine-tuning on many
    lengths with one primitive cached, or with torch's 1,024, gives the same weights to the bit."""
    import subprocess
    import sys

    from hyenadna.utils.memory import ONEDNN_CACHE_VARIABLES

    runs = [
        subprocess.run(
            [sys.executable, "-c", _TRAIN_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env={**_without_cache_settings(), **dict.fromkeys(ONEDNN_CACHE_VARIABLES, capacity)},
        ).stdout.split("\n")[-2]
        for capacity in ("1", "1024")
    ]
    assert runs[0] == runs[1]


def test_every_command_bounds_the_caches_before_it_runs(monkeypatch, tmp_path):
    """Embedding 3,000 sequences of many lengths peaked at 0.8 against 1.4 GB bounded (inference_cache_bound.py)."""
    import hyenadna.cli

    calls = []
    monkeypatch.setattr(memory, "bound_onednn_caches", lambda: calls.append("bound"))
    monkeypatch.setattr(hyenadna.cli, "_run", lambda args: calls.append(args.command) or 0)
    seqs = str(tmp_path / "x.fa")
    for argv in (
        ["embed", seqs, "-o", str(tmp_path / "e.npz")],
        ["score", seqs],
        ["predict", str(tmp_path), seqs],
        ["fine-tune", seqs, "--out", str(tmp_path / "o")],
        ["benchmark", "--out", str(tmp_path / "b")],
    ):
        calls.clear()
        assert hyenadna.cli.main(argv) == 0
        assert calls == ["bound", argv[0]]


def test_a_fine_tuning_model_bounds_the_caches_before_its_model_is_built(monkeypatch):
    """In the SDK as in the CLI, before anything runs: oneDNN reads the bound at its first call."""
    import os

    import hyenadna.finetune as sdk_finetune
    from tests.test_finetune import make

    for name in (*memory.ONEDNN_CACHE_VARIABLES, "DNNL_PRIMITIVE_CACHE_CAPACITY"):
        monkeypatch.delenv(name, raising=False)
    order, build = [], sdk_finetune.build_model
    monkeypatch.setattr(sdk_finetune, "build_model", lambda config: order.append("build") or build(config))
    bound = memory.bound_onednn_caches
    monkeypatch.setattr(memory, "bound_onednn_caches", lambda: order.append("bound") or bound())
    make()
    assert order == ["bound", "build"]
    assert os.environ["LRU_CACHE_CAPACITY"] == str(memory.ONEDNN_CACHE_CAPACITY)


def _heap_trace():
    import importlib.util

    spec = importlib.util.spec_from_file_location("heap_trace", REPO / "benchmarks" / "heap_trace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heap_trace_replay_finds_the_rises_and_what_pins_the_holes():
    """benchmarks/heap_trace.py on a made-up trace: two 8 MB blocks, a small one after each that stays, the large
    ones freed, then a 12 MB block that fits neither hole and raises the top."""
    import numpy as np

    ht = _heap_trace()
    mb, lo = 1 << 20, 1 << 40
    events = [  # (kind, size, address, caller)
        (1, 8 * mb, lo, 7),
        (1, 4096, lo + 8 * mb, 9),
        (1, 8 * mb, lo + 9 * mb, 7),
        (1, 4096, lo + 17 * mb, 9),
        (0, 0, lo, 7),
        (0, 0, lo + 9 * mb, 7),
        (1, 12 * mb, lo + 18 * mb, 7),
    ]
    kind, size, address, caller = (np.array(column, dtype=np.uint64) for column in zip(*events, strict=True))
    kind, size = kind.astype(np.int64), size.astype(np.int64)
    live, rises = ht.replay(kind, size, address, caller, lo, lo + 64 * mb)
    assert sorted(live) == [lo + 8 * mb, lo + 17 * mb, lo + 18 * mb]
    assert [(i, top // mb) for i, top, _, _ in rises] == [(0, 8), (2, 17), (6, 30)]
    assert rises[-1][2] == 12 * mb + 2 * 4096  # in use when the top rose last
    before_last, _ = ht.replay(kind, size, address, caller, lo, lo + 64 * mb, stop=6)
    gaps, pins = ht.holes_and_pins(before_last, lo)
    assert gaps == [8 * mb, 9 * mb - 4096] and [c for _, _, c in pins] == [9]  # the small block between the holes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD shim: Linux")
def test_heap_trace_shim_builds_and_records(tmp_path):
    """The shim compiles, and a process that loads it records its allocations and frees."""
    import shutil
    import subprocess

    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler")
    ht = _heap_trace()
    shim = ht.build_shim(tmp_path)
    script = f"""
import ctypes
shim = ctypes.CDLL(None)
shim.heap_trace_stop.argtypes, shim.heap_trace_stop.restype = [ctypes.c_char_p], ctypes.c_int64
libc = ctypes.CDLL(None)  # the global lookup, as a library's call finds malloc: the shim's first
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
assert shim.heap_trace_start() == 0
block = libc.malloc(12345)
libc.free(block)
print(shim.heap_trace_stop({str(tmp_path / "trace.bin")!r}.encode()), block)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env={"LD_PRELOAD": str(shim)}
    )
    seen, block = (int(x) for x in out.stdout.split())
    kind, size, address, _ = ht.read_trace(tmp_path / "trace.bin")
    assert seen == len(kind) >= 2
    mine = [(int(k), int(s)) for k, s, a in zip(kind, size, address, strict=True) if int(a) == block]
    assert mine[-2:] == [(1, 12345), (0, 0)]


def test_cgroup_headroom_counts_the_working_set_not_the_file_cache(tmp_path):
    from hyenadna.utils.memory import _cgroup_headroom

    def tree(lines: str, folder: str, files: dict) -> tuple[str, str]:
        (tmp_path / "cgroup").write_text(lines)
        for name, text in files.items():
            (tmp_path / "fs" / folder).mkdir(parents=True, exist_ok=True)
            (tmp_path / "fs" / folder / name).write_text(text)
        return str(tmp_path / "cgroup"), str(tmp_path / "fs")

    # v2: 8 GB limit, 5 GB used of which 3 GB is inactive file cache (a genome just read): 6 GB of room, not 3
    stat = "anon 1500000000\nfile 3400000000\ninactive_file 3000000000\nactive_file 400000000\n"
    files = {"memory.max": "8000000000\n", "memory.current": "5000000000\n", "memory.stat": stat}
    assert _cgroup_headroom(*tree("0::/job\n", "job", files)) == 6_000_000_000
    (tmp_path / "fs" / "job" / "memory.max").write_text("max\n")
    assert _cgroup_headroom(str(tmp_path / "cgroup"), str(tmp_path / "fs")) is None  # no limit
    # v1, and a memory.stat that cannot be read: the usage as it is
    files = {"memory.limit_in_bytes": "4000000000\n", "memory.usage_in_bytes": "3000000000\n"}
    args = tree("4:memory:/batch/7\n3:cpu:/\n", "memory/batch/7", files)
    assert _cgroup_headroom(*args) == 1_000_000_000
    (tmp_path / "fs" / "memory/batch/7" / "memory.stat").write_text(
        "cache 2000000000\ntotal_inactive_file 1500000000\n"
    )
    assert _cgroup_headroom(*args) == 2_500_000_000
