"""reuse_freed_memory: large allocations come from the heap inside the block and from mmap again after it."""

from __future__ import annotations

import ctypes

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
