"""Device choice per torchrun rank, and the RNG state a checkpoint carries, tested on CPU with CUDA faked where the
logic needs it (the real CUDA checks are in test_gpu.py)."""

from __future__ import annotations

import pytest
import torch

from hyenadna.utils import device as device_mod
from hyenadna.utils.device import rank_device, resolve_device, rng_state, seeded, set_rng_state
from tests.conftest import set_cpu_bf16


class FakeCuda:
    """Stands in for torch.cuda's device queries and RNG calls on a machine with ``count`` GPUs."""

    def __init__(self, monkeypatch, count: int, initialized: bool = True):
        self.current = None
        self.states = {i: torch.tensor([i], dtype=torch.uint8) for i in range(count)}
        self.seeded_all = []
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(cuda, "device_count", lambda: count)
        monkeypatch.setattr(cuda, "is_initialized", lambda: initialized)
        monkeypatch.setattr(cuda, "set_device", lambda d: setattr(self, "current", torch.device(d)))
        monkeypatch.setattr(cuda, "get_rng_state_all", lambda: [self.states[i].clone() for i in range(count)])
        monkeypatch.setattr(cuda, "set_rng_state", lambda s, i: self.states.__setitem__(i, s.clone()))
        monkeypatch.setattr(cuda, "manual_seed_all", lambda s: self.seeded_all.append(s))


def test_each_rank_gets_its_own_gpu(monkeypatch):
    fake = FakeCuda(monkeypatch, count=4)
    for requested in ("cuda", "auto"):
        assert rank_device(requested, local_rank=2) == torch.device("cuda", 2)
        assert fake.current == torch.device("cuda", 2)  # NCCL and bare .cuda() follow the current device
    assert rank_device("cuda:1", local_rank=3) == torch.device("cuda", 1)  # an explicit index is kept
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert rank_device("cuda") == torch.device("cuda", 3)
    with pytest.raises(ValueError, match=r"device='cuda:4': this machine has 4 GPU\(s\), cuda:0 to cuda:3"):
        rank_device("cuda:4", local_rank=0)  # failed later in torch, as "invalid device ordinal"
    with pytest.raises(ValueError, match="LOCAL_RANK 5 has no GPU: this node has 4"):
        rank_device("cuda", local_rank=5)


def test_cpu_ranks_stay_on_cpu_and_cuda_without_a_gpu_is_an_error(monkeypatch):
    FakeCuda(monkeypatch, count=0)
    assert rank_device("cpu", local_rank=1) == torch.device("cpu")
    assert rank_device("auto", local_rank=1) == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        rank_device("cuda", local_rank=0)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the error on a machine without MPS")
def test_asking_for_missing_mps_is_a_clear_error():
    with pytest.raises(ValueError, match="device='mps' was asked for, but Apple's MPS is not available here"):
        resolve_device("mps")


def test_rng_state_holds_every_gpu_and_restores_it(monkeypatch):
    fake = FakeCuda(monkeypatch, count=2)
    state = rng_state()
    assert set(state) == {"cpu", "cuda"} and len(state["cuda"]) == 2
    expected = torch.rand(3)
    fake.states = {0: torch.tensor([9], dtype=torch.uint8), 1: torch.tensor([9], dtype=torch.uint8)}
    set_rng_state(state)
    assert torch.equal(torch.rand(3), expected)
    assert [int(fake.states[i][0]) for i in range(2)] == [0, 1]


def test_restoring_gpu_rng_on_fewer_gpus_warns(monkeypatch):
    state = {"cpu": torch.get_rng_state(), "cuda": [torch.tensor([0], dtype=torch.uint8)] * 2}
    FakeCuda(monkeypatch, count=1)
    with pytest.warns(UserWarning, match="RNG state of 2 GPU"):
        set_rng_state(state)


def test_seeded_restores_the_callers_generators(monkeypatch):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with seeded(7):
        a = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), before)
    with seeded(7):
        assert torch.equal(torch.rand(4), a)
    fake = FakeCuda(monkeypatch, count=2, initialized=False)
    with seeded(7):  # CUDA not in use: its generators are left alone, not queued for a reseed
        pass
    assert fake.seeded_all == []


def test_seeded_with_cuda_in_use_restores_each_gpu(monkeypatch):
    calls = []
    fake = FakeCuda(monkeypatch, count=2, initialized=True)
    monkeypatch.setattr(device_mod.torch.random, "fork_rng", lambda devices: _Recorder(calls, devices))
    with seeded(7):
        pass
    assert calls == [[0, 1]] and fake.seeded_all == [7]


class _Recorder:
    def __init__(self, calls, devices):
        calls.append(list(devices))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_threads_avoid_cores_other_processes_keep_busy(monkeypatch):
    from hyenadna.utils import threads

    samples = iter(
        [
            {"cpu0": (100, 1000), "cpu1": (100, 1000)},
            {"cpu0": (190, 1100), "cpu1": (105, 1100)},  # cpu0 90% idle, cpu1 5% idle (busy elsewhere)
        ]
    )
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    assert threads.idle_cores() == 1
    monkeypatch.setattr(threads, "idle_cores", lambda: 1)
    assert threads.choose_threads(None, 2) == 1 and threads.choose_threads("auto", 2) == 1
    assert threads.choose_threads(2, 2) == 2  # an explicit count is kept
    monkeypatch.setattr(threads, "idle_cores", lambda: 0)
    assert threads.choose_threads(None, 2) == 1  # never below one
    monkeypatch.setattr(threads, "idle_cores", lambda: None)
    assert threads.choose_threads(None, 4) == 4  # no /proc/stat: torch's default


def test_cli_lowers_threads_when_a_core_is_busy(monkeypatch, capsys, tmp_path):
    from hyenadna.cli import main
    from hyenadna.utils import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("HYENADNA_AUTO_THREADS", "1")
    monkeypatch.setattr(threads, "idle_cores", lambda: 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        fa = tmp_path / "a.fa"
        fa.write_text(">a\nACGTACGT\n")
        assert main(["score", str(fa), "--random-init"]) == 0
        assert torch.get_num_threads() == 1
        assert "1 of 2 cores busy with other work; using 1 thread" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_training_autocast_defaults_to_bf16_where_native(monkeypatch):
    """bf16 by default on CUDA GPUs with bf16 and on CPUs with native bf16 (AMX, or AVX512-BF16 as on AMD Zen 4);
    fp32 on other CPUs, where oneDNN emulates it; an explicit choice always wins."""
    from hyenadna.training import pretrain

    cpu = torch.device("cpu")
    set_cpu_bf16(monkeypatch, amx=False, avx512_bf16=False)  # AVX2, or AVX-512 without BF16 (Ice Lake)
    assert pretrain.training_bf16(None, cpu) is False
    assert pretrain.training_bf16(True, cpu) is True
    set_cpu_bf16(monkeypatch, amx=True, avx512_bf16=True)  # Sapphire Rapids
    assert pretrain.training_bf16(None, cpu) is True
    assert pretrain.training_bf16(False, cpu) is False
    set_cpu_bf16(monkeypatch, amx=False, avx512_bf16=True)  # AMD Zen 4: 1.47x the fp32 step
    assert pretrain.training_bf16(None, cpu) is True
    assert pretrain.training_bf16(False, cpu) is False
    set_cpu_bf16(monkeypatch, amx=True, avx512_bf16=False)
    assert pretrain.training_bf16(None, cpu) is True
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pretrain.training_bf16(None, torch.device("cuda", 0)) is True
    assert pretrain.training_bf16(False, torch.device("cuda", 0)) is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pretrain.training_bf16(None, torch.device("cuda", 0)) is False


def test_bf16_autocast_warns_where_the_cpu_emulates_it(monkeypatch):
    """bf16 on a CPU without AMX or AVX512-BF16 runs many times slower than fp32 (the training step 0.06x on an AVX2
    AMD EPYC): autocast says so, once per call site; not with native bf16, in fp32 or fp16, nor where told not to."""
    import warnings

    from hyenadna.utils.precision import autocast, emulated_bf16

    set_cpu_bf16(monkeypatch, amx=False, avx512_bf16=False)
    assert "without native bf16" in emulated_bf16("cpu", "bf16")
    assert emulated_bf16("cpu", "fp32") is None and emulated_bf16("cuda", "bf16") is None

    def caught(precision: str, times: int = 1, **kw) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("default")
            for _ in range(times):
                with autocast("cpu", precision, **kw):
                    pass
        return [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]

    assert len(caught("bf16", times=3)) == 1
    assert caught("fp32") == [] and caught("fp16") == [] and caught("bf16", warn_emulated=False) == []
    set_cpu_bf16(monkeypatch, amx=False, avx512_bf16=True)  # AMD Zen 4
    assert emulated_bf16("cpu", "bf16") is None and caught("bf16") == []


def test_resumed_run_keeps_its_precision(monkeypatch):
    """A run left to the default resumes in the precision its checkpoint ran in, whatever this machine would pick;
    checkpoints from before the AMX default (bf16 unset) ran fp32 on the CPU."""
    import json

    from hyenadna.training.pretrain import run_precision

    cpu = torch.device("cpu")
    set_cpu_bf16(monkeypatch, amx=True, avx512_bf16=True)
    assert run_precision(None, cpu, None) == "bf16"  # a fresh run on an AMX CPU
    assert run_precision(None, cpu, {"config": json.dumps({"bf16": False})}) == "fp32"
    assert run_precision(None, cpu, {"config": json.dumps({"bf16": None})}) == "fp32"
    assert run_precision(True, cpu, {"config": json.dumps({"bf16": False})}) == "bf16"  # asked for explicitly
    set_cpu_bf16(monkeypatch, amx=False, avx512_bf16=False)
    assert run_precision(None, cpu, {"config": json.dumps({"bf16": True})}) == "bf16"
