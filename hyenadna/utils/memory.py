"""Reuse of freed memory during inference on long sequences (glibc on Linux; elsewhere a no-op).

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free, so
each large temporary, such as every FFT output of the long convolution (torch's FFTs allocate their results), is
page-faulted in again from the kernel, zeroed page by page. ``reuse_freed_memory`` routes those allocations to the
heap and keeps freed heap memory while it is active: two large-1m layers at 1M tokens took 0.81x the time
(``benchmarks/long_path_options.py reuse``, benchmarks/results/long_path_reuse.json). The cost is heap fragmentation:
peak RSS of the whole large-1m model at 1M rose from 3.35 GB to 3.46-3.71 GB. On exit the settings go back to glibc's
defaults and the freed memory is returned to the system; glibc's adaptive mmap threshold stays off from then on (any
mallopt call turns it off), which left tiny-1k batch-32 inference after a long call at the same speed as before it.
(Huge pages on top measured no faster.)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import sys
import threading
from collections.abc import Iterator

# mallopt parameters and glibc's defaults for them (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
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
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
