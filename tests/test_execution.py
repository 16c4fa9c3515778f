"""The one execution dispatcher (ops/execution.py): which algorithm runs where, the options object, and every path
against the plain reference path."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hyenadna import load_model
from hyenadna.models import hyena_dna
from hyenadna.ops import autotune
from hyenadna.ops import hyena as hyena_ops
from hyenadna.ops.execution import ExecutionOptions, choose_path
from tests.conftest import FIXTURES, assert_close

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_choose_path_by_device_length_and_autograd():
    assert choose_path(CPU, 300, grad=False) == "per_sequence"
    assert choose_path(CPU, 100, grad=False) == "batched"  # too short for a sequence's matmuls alone to pay
    assert choose_path(CPU, 100, grad=False, options=ExecutionOptions(per_sequence_min_length=0)) == "per_sequence"
    assert choose_path(CUDA, 300, grad=False) == "batched"  # no per-sequence Python loop on a GPU
    assert choose_path(CPU, 8192, grad=False) == choose_path(CUDA, 8192, grad=False) == "low_memory"
    assert choose_path(CPU, 100, grad=False, low_memory=True) == "low_memory"
    assert choose_path(CPU, 10_000, grad=False, low_memory=False) == "per_sequence"
    assert choose_path(CUDA, 10_000, grad=True) == "train"
    assert choose_path(CPU, 10, grad=False, reference=True) == "reference"
    assert choose_path(CPU, 300, grad=False, options=ExecutionOptions(low_memory_min_length=256)) == "low_memory"
    with pytest.raises(ValueError, match="block_tokens"):
        ExecutionOptions(block_tokens=0)
    with pytest.raises(ValueError, match="per_sequence_min_length"):
        ExecutionOptions(per_sequence_min_length=-1)


def test_a_gpu_runs_long_sequences_batched_while_their_activations_fit(monkeypatch):
    """On a GPU the low-memory path's chunk loops ran 5-10x slower than the batched path, so it is taken only when
    the batched path's activations would not fit in the free memory (faked here: no GPU on this machine)."""
    from hyenadna.ops import execution

    free = {"bytes": 80 * 2**30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 141 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2**30)
    need = execution.BATCHED_BYTES_PER_TOKEN_CHANNEL * 1_000_000 * 256  # large-1m at 1M tokens: ~24 GB
    assert choose_path(CUDA, 1_000_000, grad=False, d_model=256) == "batched"
    assert choose_path(CUDA, 1_000_000, grad=False, batch=4, d_model=256) == "low_memory"  # ~96 GB
    free["bytes"] = int(need / 0.8) - 2**30  # with the allocator's 1 GiB held unused, just enough
    assert choose_path(CUDA, 1_000_000, grad=False, d_model=256) == "batched"
    free["bytes"] -= 1
    assert choose_path(CUDA, 1_000_000, grad=False, d_model=256) == "low_memory"
    assert choose_path(CUDA, 1_000_000, grad=False, d_model=256, low_memory=False) == "batched"
    # the CPU keeps its length rule whatever memory it has; short sequences never ask
    assert choose_path(CPU, 8192, grad=False, d_model=256) == "low_memory"
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: pytest.fail("asked below the length rule"))
    assert choose_path(CUDA, 8191, grad=False, d_model=256) == "batched"
    # a GPU's low-memory chunks are long (few launches); the CPU's are measured, or set
    assert ExecutionOptions().tuned("low_memory_chunk", CUDA) == execution.GPU_LOW_MEMORY_CHUNK
    assert ExecutionOptions(low_memory_chunk=512).tuned("low_memory_chunk", CUDA) == 512


@pytest.mark.parametrize("path", ["batched", "per_sequence", "low_memory"])
def test_every_inference_path_matches_the_reference_path(monkeypatch, path):
    model = load_model(FIXTURES / "deep_long")
    ids = torch.randint(7, 12, (3, 700), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model.use_reference_path(True).backbone(ids)
        model.use_reference_path(False)
        monkeypatch.setattr(hyena_dna, "choose_path", lambda *a, **k: path)
        out = model.backbone(ids)
    assert_close(out, reference, atol=5e-5)


def test_options_object_steers_the_model(monkeypatch):
    model = load_model(FIXTURES / "deep_long")
    calls = []
    real = hyena_ops.hyena_low_memory

    def spy(*args, **kwargs):
        calls.append(args[3])  # the chunk
        return real(*args, **kwargs)

    monkeypatch.setattr("hyenadna.modules.block.hyena_low_memory", spy)
    ids = torch.randint(7, 12, (1, 300), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        short = model.backbone(ids)
        assert calls == []  # 300 tokens: below the default threshold
        model.backbone.execution = ExecutionOptions(low_memory_min_length=256, low_memory_chunk=64)
        low = model.backbone(ids)
    assert calls == [64] * model.config.n_layer
    assert_close(low, short, atol=5e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_the_batched_path_and_matches_the_cpu_reference():
    model = load_model(FIXTURES / "deep_long")
    ids = torch.randint(7, 12, (4, 500), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = model.use_reference_path(True).backbone(ids)
        model.use_reference_path(False).to("cuda")
        assert choose_path(ids.cuda().device, 500, grad=False) == "batched"
        out = model.backbone(ids.cuda()).cpu()
        long_out = model.backbone(ids.cuda(), low_memory=True).cpu()
    assert_close(out, reference, atol=1e-4)
    assert_close(long_out, reference, atol=1e-4)


@pytest.mark.parametrize(
    "kernels", [{}, {"weight_gradient": "onednn"}, {"out_proj_train": "onednn"}], ids=["defaults", "wg", "out_proj"]
)
@pytest.mark.parametrize("name", ["tiny", "deep_long"])
def test_train_path_gradients_equal_the_reference_paths(name, kernels, monkeypatch):
    """The loss and every parameter's gradient of the fast training path match the plain reference path, with the
    weights' gradients and out_proj through either library autotune may choose."""
    monkeypatch.setattr(autotune, "_trying", dataclasses.replace(autotune.DEFAULTS, **kernels))
    grads = {}
    for reference in (False, True):
        model = load_model(FIXTURES / name).use_reference_path(reference)
        model.train()
        for m in model.modules():  # dropout off, so the two paths see the same function
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        ids = torch.randint(7, 12, (3, 200), generator=torch.Generator().manual_seed(5))
        loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
        loss.backward()
        grads[reference] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    (fast_loss, fast), (ref_loss, ref) = grads[False], grads[True]
    assert_close(fast_loss, ref_loss, atol=1e-5)
    assert fast.keys() == ref.keys()
    for n in ref:
        assert_close(fast[n], ref[n], atol=1e-5, rtol=1e-3)


def _step_with_dropout(model, ids: torch.Tensor, bf16: bool = False) -> tuple:
    """One training forward and backward with dropout on: the loss, every gradient, and the next draw of torch's
    generator (so a test sees whether the step left it where it would have)."""
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, torch.rand(4)


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_gradient_checkpointing_gives_the_same_step_bit_for_bit(reference, bf16):
    """Recomputing each block in the backward must not change training: the same loss and gradients to the bit,
    dropout masks included (drawn again from the generator state checkpoint restores), and the generator left
    where the plain step leaves it, so a run's later draws do not move either."""
    out = {}
    for recompute in (False, True):
        model = load_model(FIXTURES / "deep_long").use_reference_path(reference).gradient_checkpointing(recompute)
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.1
        ids = torch.randint(7, 12, (2, 300), generator=torch.Generator().manual_seed(3))
        out[recompute] = _step_with_dropout(model, ids, bf16)
    (loss, grads, after), (loss_ck, grads_ck, after_ck) = out[False], out[True]
    assert torch.equal(loss, loss_ck)
    assert grads.keys() == grads_ck.keys()
    for n in grads:
        assert torch.equal(grads[n], grads_ck[n]), n
    assert torch.equal(after, after_ck)


def test_gradient_checkpointing_keeps_only_the_blocks_inputs_for_the_backward():
    """What the forward saves for the backward, seen by saved-tensor hooks: with checkpointing the blocks'
    intermediates (in_proj's 3D channels, the FFT spectra, the MLP's d_inner) are not saved, only what lies outside
    the blocks (the final LayerNorm, the head and the loss; checkpoint holds each block's inputs itself). 31.9
    against 2.5 MB here."""
    from hyenadna.models.config import HyenaConfig
    from hyenadna.models.hyena_dna import HyenaDNALMHeadModel

    def saved_bytes(recompute: bool) -> int:
        torch.manual_seed(0)
        model = HyenaDNALMHeadModel(HyenaConfig(d_model=32, n_layer=4, d_inner=128, l_max=1026)).train()
        model.gradient_checkpointing(recompute)
        ids = torch.randint(7, 11, (2, 1025))
        seen = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
        loss.backward()
        return sum(seen.values())

    plain, recomputed = saved_bytes(False), saved_bytes(True)
    assert recomputed < plain / 5, (plain, recomputed)


def test_gradient_checkpointing_is_off_by_default_and_set_by_the_sdk_config():
    from hyenadna.finetune import HyenaDNAFineTuningModel
    from hyenadna.sdk import HyenaDNAConfig

    model = load_model(FIXTURES / "tiny")
    assert not model.backbone.execution.gradient_checkpointing
    assert model.gradient_checkpointing().backbone.execution.gradient_checkpointing
    assert not model.gradient_checkpointing(False).backbone.execution.gradient_checkpointing
    cfg = HyenaDNAConfig(model_path=str(FIXTURES / "tiny"), gradient_checkpointing=True)
    ft = HyenaDNAFineTuningModel(cfg, "classification", 2)
    assert ft.network.backbone.execution.gradient_checkpointing
    given = HyenaDNAFineTuningModel(cfg, "classification", 2, model=load_model(FIXTURES / "tiny"))
    assert given.network.backbone.execution.gradient_checkpointing


def test_gradient_accumulation_over_micro_batches_gives_the_whole_batchs_gradient():
    """--grad-accum and benchmarks/micro_batches.py rely on no layer of the training path mixing sequences (the
    filter's gradient sums over the batch, the rest is per sequence): the mean loss of 2 micro-batches of 2
    accumulates to the gradient of one batch of 4."""
    model = load_model(FIXTURES / "tiny").train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ids = torch.randint(7, 12, (4, 150), generator=torch.Generator().manual_seed(2))
    model(ids[:, :-1], labels=ids[:, 1:]).loss.backward()
    whole = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    for chunk in ids.chunk(2):
        (model(chunk[:, :-1], labels=chunk[:, 1:]).loss / 2).backward()
    for n, p in model.named_parameters():
        assert p.grad.abs().max() > 0, n
        assert_close(p.grad, whole[n], atol=1e-6, rtol=1e-4)


def test_torch_compile_trains_and_infers_like_eager():
    """--compile has to work: inductor cannot lower the oneDNN linear with trainable weights, so under compilation
    the projections go through F.linear and inductor fuses them itself."""
    from hyenadna import HyenaConfig, HyenaDNALMHeadModel

    model = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=66)).train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ids = torch.randint(7, 11, (2, 65), generator=torch.Generator().manual_seed(1))
    eager = model(ids[:, :-1], labels=ids[:, 1:]).loss
    eager.backward()
    eager_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    compiled = torch.compile(model)(ids[:, :-1], labels=ids[:, 1:]).loss
    compiled.backward()
    assert_close(compiled.detach(), eager.detach(), atol=1e-5)
    for n, p in model.named_parameters():
        assert_close(p.grad, eager_grads[n], atol=1e-5, rtol=1e-4)
