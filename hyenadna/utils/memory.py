"""Reuse of freed memory during inference on long sequences and during pretraining (glibc on Linux; elsewhere a
no-op).

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free, so
each large temporary, such as every FFT output of the long convolution (torch's FFTs allocate their results), is
page-faulted in again from the kernel, zeroed page by page. ``reuse_freed_memory`` routes those allocations to the
heap and keeps freed heap memory while it is active: two large-1m layers at 1M tokens took 0.81x the time
(``benchmarks/long_path_options.py reuse``, benchmarks/results/long_path_reuse.json). The cost is heap fragmentation:
peak RSS of the whole large-1m model at 1M rose from 3.35 GB to 3.46-3.71 GB. The pretraining loop keeps it on too
(a bf16 step at 16k tokens: 1.04-1.19x), and so does fine-tuning, which still trims the holes that batches of many
lengths leave (``trim_if_grown(inside_reuse=True)``; a step at d 256, 16 x 512 tokens: 1.18x).

On exit the freed memory is returned to the system. glibc's adaptive mmap threshold (which rises to the size of the
largest large block freed, up to 32 MB) cannot be switched back on once any mallopt call has turned it off, and
restoring the static defaults left the threshold at 128 KB for the rest of the process: every later activation was
mmapped and page-faulted in afresh, and a tiny-1k training step after an exited block took 1.8x as long (132,000 page
faults a step). So the exit sets the state the adaptive threshold reaches in a process that frees large tensors: an
mmap threshold of 32 MB and a trim threshold of 64 MB. (Huge pages on top measured no faster.)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# mallopt parameters (malloc.h), glibc's default for M_MMAP_MAX, and where its adaptive thresholds end up on 64-bit
# (DEFAULT_MMAP_THRESHOLD_MAX, and twice that for trimming)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
DEFAULT_MMAP_MAX = 65536
ADAPTED_MMAP_THRESHOLD, ADAPTED_TRIM_THRESHOLD = 32 * 2**20, 64 * 2**20
KEEP_ALL = 2**31 - 1  # the largest trim threshold mallopt takes (an int)

_lock = threading.Lock()
_depth = 0


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # glibc only: musl's malloc has no mallopt
            return None
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def available() -> bool:
    return _glibc() is not None


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[None]:
    """Within this block, large allocations come from the heap and freed memory stays with the process. Nests and is
    thread-safe: the settings apply process-wide from the first entry to the last exit."""
    global _depth
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, KEEP_ALL)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_MMAP_THRESHOLD, ADAPTED_MMAP_THRESHOLD)
                libc.mallopt(M_TRIM_THRESHOLD, ADAPTED_TRIM_THRESHOLD)
                libc.malloc_trim(0)


def release_memory(collect: bool = True, inside_reuse: bool = False) -> None:
    """Hand the memory freed so far back to the system: collect Python's cycles (``collect``), then have glibc return
    the free pages of its heap (``malloc_trim(0)``, which since glibc 2.8 also releases free pages inside the heap,
    not only at its top). A no-op for the heap inside ``reuse_freed_memory``, which keeps freed memory on purpose,
    unless ``inside_reuse``: an explicit trim ignores the trim threshold that block sets."""
    if collect:
        import gc

        gc.collect()
    libc = _glibc()
    if libc is not None and (_depth == 0 or inside_reuse):
        libc.malloc_trim(0)


# oneDNN (the matmuls the autotuned kernel choices route there) builds a primitive for every shape it meets, about
# 0.5 MB of JIT code and buffers, and torch keeps up to 1,024 of them in each of two caches: oneDNN's own and ideep's
# (PyTorch's oneDNN wrapper). Fine-tuning on sequences of many lengths meets new shapes every step, so primitives were
# built, cached and evicted all the time, each allocated among a step's activations and outliving them: the heap could
# not reuse the holes between them and grew by 1-1.5 GB a run. Bounded to ONEDNN_CACHE_CAPACITY, still several times
# the 8-10 shapes a step of fixed shape uses, it stays flat: fine-tuning ocr_ensembl run after run peaked at 1.8-1.9
# against 3.5, 4.8, then 5.6 GB, in 0.88x the time (benchmarks/memory_growth.py); embedding 3,000 sequences of
# 100-1,024 bases peaked at 0.79-0.80 against 1.42-1.44 GB, in 0.91x the time, and the small cache's worst case (200
# lengths cycled) took 0.98x (benchmarks/inference_cache_bound.py). The SDK's fine-tuning model and every CLI command
# set it; not every process at import, since single-sequence inference timed too noisily to show it costs nothing.
ONEDNN_CACHE_CAPACITY = 64
ONEDNN_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def onednn_cache_settings(capacity: int | str) -> dict[str, str]:
    """The environment variables that bound both of oneDNN's primitive caches to ``capacity`` primitives each."""
    return dict.fromkeys(ONEDNN_CACHE_VARIABLES, str(capacity))


def bound_onednn_caches(capacity: int = ONEDNN_CACHE_CAPACITY) -> None:
    """Bound oneDNN's primitive caches (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, or its old name
    ``DNNL_PRIMITIVE_CACHE_CAPACITY``, and ideep's ``LRU_CACHE_CAPACITY``) to ``capacity`` primitives each, unless
    the user set them: for a process that fine-tunes on, embeds or scores sequences of many lengths. Both are read
    once, at torch's first oneDNN call, so call it before that: ``HyenaDNAFineTuningModel`` and every ``hyenadna``
    command do."""
    if "DNNL_PRIMITIVE_CACHE_CAPACITY" in os.environ:
        os.environ.setdefault("LRU_CACHE_CAPACITY", str(capacity))
        return
    for name, value in onednn_cache_settings(capacity).items():
        os.environ.setdefault(name, value)


# Batches of many different lengths leave the heap holed: each shape's activations are freed into pieces the next
# shape does not fit (around oneDNN's cached primitives, above), glibc keeps every freed page resident, and a
# long-lived process grows without bound (a benchmark process fine-tuning run after run was OOM-killed at 7.6 GB; at
# one length it stays flat). A trim gives the holes back, but also the step's own freed activations, which the next
# step faults in again (about 0.3 s a trim at tiny-1k on one core). So growth is measured from the resident size one
# batch after the last trim, the step's working set back in, and a trim runs only when the holes have added
# HEAP_SLACK_MB to that, at most once per TRIM_INTERVAL_S. Two fine-tuning runs side by side
# (benchmarks/memory_growth.py, Zen 4, one thread each): every 30 s, peak 3.44 GB against 3.89 GB untrimmed for 1.03x
# the time; every 10 s, 2.91 GB for 1.06x. Untrimmed it grows on.
HEAP_SLACK_MB = 256.0
TRIM_INTERVAL_S = 30.0
_heap_base: float | None = None
_last_trim = 0.0


def trim_if_grown(
    slack_mb: float | None = None, min_interval_s: float | None = None, inside_reuse: bool = False
) -> bool:
    """Call between batches: returns freed heap memory to the system (``malloc_trim``) when this process's resident
    memory has grown by ``slack_mb`` (default ``HEAP_SLACK_MB``; inf: never) since the first call or the first call
    after the last trim, at most once per ``min_interval_s`` (default ``TRIM_INTERVAL_S``). Returns whether it
    trimmed. Inside ``reuse_freed_memory`` it does nothing unless ``inside_reuse``: the fine-tuning loop keeps freed
    memory for speed but still bounds the holes that batches of many lengths leave."""
    global _heap_base, _last_trim
    slack_mb = HEAP_SLACK_MB if slack_mb is None else slack_mb
    min_interval_s = TRIM_INTERVAL_S if min_interval_s is None else min_interval_s
    if _glibc() is None or (_depth and not inside_reuse):
        return False
    now = time.monotonic()
    if _heap_base is not None and now - _last_trim < min_interval_s:
        return False  # one clock read: cheap enough for every batch
    rss = resident_mb()
    with _lock:
        if _heap_base is None or rss < _heap_base:
            _heap_base = rss  # the working set with this batch's activations resident
            return False
        if rss <= _heap_base + slack_mb:
            return False
        release_memory(collect=False, inside_reuse=inside_reuse)
        _heap_base, _last_trim = None, now  # the base is read again at the next batch
        return True


def resident_mb() -> float:
    """This process's resident memory now, in MB (Linux; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def available_bytes(device: str | torch.device = "cpu") -> int | None:
    """Memory a new allocation can still get, in bytes: on a GPU, the free CUDA memory plus what torch's allocator
    holds unused; on Linux, ``MemAvailable`` capped by this process's cgroup limit (a container's or a batch job's
    share, which the kernel's OOM killer enforces); None where unknown."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    headroom = _cgroup_headroom()
    if headroom is not None:
        found.append(headroom)
    return min(found) if found else None


def _cgroup_headroom(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int | None:
    """This process's cgroup memory limit less its working set (cgroup v2, else v1); None without a limit. The
    working set is the usage less the inactive file cache, which the kernel reclaims before it kills anything (as
    ``docker stats`` and Kubernetes count it): a genome file just read counts in the usage as cache."""
    try:
        with open(proc_cgroup) as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    places = []
    for _, controllers, path in (x for x in lines if len(x) == 3):
        if controllers == "":  # v2: one hierarchy, at /sys/fs/cgroup or, on hybrid systems, /sys/fs/cgroup/unified
            places += [
                (f"{base}{path}", "memory.max", "memory.current", "inactive_file") for base in (root, f"{root}/unified")
            ]
        elif "memory" in controllers.split(","):
            places.append(
                (f"{root}/memory{path}", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
            )
    for folder, limit, usage, inactive in places:
        folder = folder.rstrip("/")
        try:
            with open(f"{folder}/{limit}") as a, open(f"{folder}/{usage}") as b:
                cap, used = a.read().strip(), b.read().strip()
        except OSError:
            continue
        if cap.isdigit() and int(cap) < 2**60:  # "max" (v2) or a huge number (v1): no limit
            return int(cap) - max(0, int(used) - _stat_field(f"{folder}/memory.stat", inactive))
    return None


def _stat_field(path: str, key: str) -> int:
    """A field of a cgroup's memory.stat, 0 where it cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key and value.strip().isdigit():
                    return int(value)
    except OSError:
        pass
    return 0
