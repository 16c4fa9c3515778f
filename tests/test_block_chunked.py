"""Sequence-chunked training (ops/block_chunked.py): each block one autograd node run in token chunks, held to the
plain reference path's loss and gradients."""

from __future__ import annotations

import argparse

import pytest
import torch

from hyenadna import load_model
from hyenadna.models.config import HyenaConfig
from hyenadna.models.hyena_dna import HyenaDNALMHeadModel
from hyenadna.ops import block_chunked
from hyenadna.ops.execution import ExecutionOptions
from tests.conftest import FIXTURES, assert_close


def _step(model, ids: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training forward and backward from seed 1 (the embedding dropout draws the same mask on every path)."""
    model.zero_grad()
    torch.manual_seed(1)
    ids = ids.to(next(model.parameters()).device)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _deep_long(dropout: bool = True, device: str = "cpu") -> HyenaDNALMHeadModel:
    """3 layers, d 64, l_max 4,098, embedding dropout 0.1 as published (or off)."""
    model = load_model(FIXTURES / "deep_long", device=device).train()
    if not dropout:
        model.backbone.layers[0].dropout1.p = 0.0
    return model


@pytest.mark.parametrize("dropout", [False, True], ids=["reference", "train-path-dropout"])
@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_training_gives_the_reference_paths_loss_and_gradients(chunk, dropout):
    """Chunks of one token (shorter than the short conv's reach back), of sizes that do not divide the window, and one
    chunk for the whole window: every gradient equal to the reference algorithm's to float32 rounding; with the
    embedding dropout on, to the training path's, which draws the same masks (the reference path draws torch's)."""
    ids = torch.randint(7, 12, (2, 151), generator=torch.Generator().manual_seed(3))
    loss_ref, grads_ref = _step(_deep_long(dropout).use_reference_path(not dropout), ids)
    loss, grads = _step(_deep_long(dropout).sequence_chunked(chunk=chunk), ids)
    assert_close(loss, loss_ref, rtol=1e-6)
    assert grads.keys() == grads_ref.keys() and len(grads) == sum(1 for _ in _deep_long().parameters())
    for name, g in grads_ref.items():
        assert g.abs().max() > 0, name
        assert_close(grads[name], g, atol=1e-7, rtol=1e-5)


def test_chunked_training_past_the_filters_length_and_without_modulation():
    """Windows longer than l_max (the filter has l_max taps, fewer than the window), a filter without its window, and
    a frozen filter frequency (a plain tensor, not a parameter)."""
    torch.manual_seed(0)
    config = HyenaConfig(d_model=16, n_layer=2, d_inner=64, l_max=40, modulate=False, embed_dropout=0.0)
    ids = torch.randint(7, 11, (3, 101), generator=torch.Generator().manual_seed(4))
    base = HyenaDNALMHeadModel(config)
    for block in base.backbone.layers:
        sin = block.mixer.filter_fn.implicit_filter[1]
        sin.freq = torch.nn.Parameter(sin.freq.detach(), requires_grad=False)
    state = base.state_dict()

    def fresh() -> HyenaDNALMHeadModel:
        model = HyenaDNALMHeadModel(config)
        model.load_state_dict(state)
        for a, b in zip(model.backbone.layers, base.backbone.layers, strict=True):
            a.mixer.filter_fn.implicit_filter[1].freq.requires_grad_(False)
            assert torch.equal(a.mixer.filter_fn.implicit_filter[1].freq, b.mixer.filter_fn.implicit_filter[1].freq)
        return model.train()

    loss_ref, grads_ref = _step(fresh().use_reference_path(), ids)
    loss, grads = _step(fresh().sequence_chunked(chunk=16), ids)
    assert_close(loss, loss_ref, rtol=1e-6)
    assert grads.keys() == grads_ref.keys()
    assert not any("freq" in n for n in grads)
    for name, g in grads_ref.items():
        assert_close(grads[name], g, atol=1e-7, rtol=1e-5)


def test_chunked_training_under_bf16_autocast_follows_the_training_path():
    """Under bf16 autocast the projections and MLP run in bf16 as on the training path (the long convolution in
    float32), so the gradients agree to bf16 rounding, not to float32's."""
    ids = torch.randint(7, 12, (2, 300), generator=torch.Generator().manual_seed(3))
    loss_ref, grads_ref = _step(_deep_long(), ids, bf16=True)
    loss, grads = _step(_deep_long().sequence_chunked(chunk=64), ids, bf16=True)
    assert_close(loss, loss_ref, rtol=1e-2)
    for name, g in grads_ref.items():
        assert_close(grads[name], g, atol=1e-4, rtol=5e-2)


def test_chunked_training_is_deterministic_and_off_by_default():
    ids = torch.randint(7, 12, (2, 200), generator=torch.Generator().manual_seed(5))
    model = _deep_long()
    assert not model.backbone.execution.sequence_chunked
    first = _step(model.sequence_chunked(chunk=50), ids)
    second = _step(model, ids)
    assert torch.equal(first[0], second[0])
    assert all(torch.equal(first[1][n], second[1][n]) for n in first[1])
    assert not model.sequence_chunked(False).backbone.execution.sequence_chunked


def test_chunked_training_keeps_only_each_blocks_input():
    """What the forward saves for the backward, seen by saved-tensor hooks: each block keeps the residual stream that
    enters it (one (B, L, D) float32 tensor) and its weights, not its intermediates; outside the blocks the final
    LayerNorm, the head and the loss keep theirs (two (B, L, D) tensors and two of logits)."""

    def saved_bytes(chunked: bool) -> int:
        torch.manual_seed(0)
        config = HyenaConfig(d_model=32, n_layer=4, d_inner=128, l_max=1026, embed_dropout=0.0)
        model = HyenaDNALMHeadModel(config).train().sequence_chunked(chunked, chunk=256)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        ids = torch.randint(7, 11, (2, 1025))
        seen = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params:
                seen[ptr] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
        loss.backward()
        return sum(seen.values())

    plain, chunked = saved_bytes(False), saved_bytes(True)
    stream, logits = 2 * 1024 * 32 * 4, 2 * 1024 * 16 * 4  # (B, L, D) and (B, L, vocab) float32
    assert chunked < plain / 5, (plain, chunked)
    assert 4 * stream <= chunked <= 4 * stream + 2 * stream + 2 * logits + 2**14, chunked


class _Masked(torch.nn.Module):
    """Dropout with given keep masks, for the reference path."""

    def __init__(self, p: float, keep: torch.Tensor):
        super().__init__()
        self.p, self.keep = p, keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.keep.to(x.dtype) * (1 / (1 - self.p))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_training_with_inner_dropout_gives_the_reference_paths_gradients_under_its_masks(chunk, monkeypatch):
    """The operator's dropout (hyena_dropout, on x1 * v) and the block's (resid_dropout, on the mixer's output), their
    masks redrawn in the backward: every gradient equal to the reference path's given the same masks, whatever the
    chunking (the masks depend on position, not on the chunk)."""
    _check_inner_dropout(chunk, "cpu", monkeypatch, atol=1e-7, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_chunked_training_with_inner_dropout_gives_the_reference_paths_gradients(monkeypatch):
    """As on the CPU, with the masks drawn by CUDA's generator (test_gpu.py's tolerances)."""
    _check_inner_dropout(7, "cuda", monkeypatch, atol=1e-5, rtol=1e-4)


def _check_inner_dropout(chunk: int, device: str, monkeypatch, atol: float, rtol: float) -> None:
    p_op, p_resid, ids = 0.1, 0.2, torch.randint(7, 12, (2, 151), generator=torch.Generator().manual_seed(3))
    seeds = iter(range(11, 100))
    monkeypatch.setattr(block_chunked, "dropout_seed", lambda: next(seeds))

    def with_dropout(model: HyenaDNALMHeadModel) -> HyenaDNALMHeadModel:
        for block in model.backbone.layers:
            block.mixer.dropout.p, block.dropout2.p = p_op, p_resid
        return model

    loss, grads = _step(with_dropout(_deep_long(False, device)).sequence_chunked(chunk=chunk), ids)
    reference = _deep_long(False, device).use_reference_path()
    batch, length, width = ids.shape[0], ids.shape[1] - 1, reference.config.d_model
    for i, block in enumerate(reference.backbone.layers):
        masks = block_chunked._Dropout(p_op, p_resid, 11 + i, torch.device(device))
        keep = [torch.stack([masks.keep(kind, b, 0, length, width) for b in range(batch)]) for kind in (0, 1)]
        block.mixer.dropout = _Masked(p_op, keep[block_chunked.OP_DROPOUT].transpose(1, 2))
        block.dropout2 = _Masked(p_resid, keep[block_chunked.RESID_DROPOUT])
    loss_ref, grads_ref = _step(reference, ids)
    loss_plain, _ = _step(_deep_long(False, device).use_reference_path(), ids)
    assert abs(float(loss_ref - loss_plain)) > 1e-3  # the masks dropped something
    assert_close(loss.cpu(), loss_ref.cpu(), rtol=rtol / 10)
    assert grads.keys() == grads_ref.keys()
    for name, g in grads_ref.items():
        assert_close(grads[name].cpu(), g.cpu(), atol=atol, rtol=rtol)


def test_chunked_inner_dropout_under_bf16_autocast_is_the_same_for_any_chunking():
    """Under bf16 autocast the block's dropout drops the bf16 output of out_proj: two chunkings draw the same masks,
    so their losses and gradients agree to bf16 rounding (and differ from the run without dropout)."""
    ids = torch.randint(7, 12, (2, 300), generator=torch.Generator().manual_seed(3))

    def step(chunk: int):
        model = _deep_long()
        for block in model.backbone.layers:
            block.mixer.dropout.p = block.dropout2.p = 0.3
        return _step(model.sequence_chunked(chunk=chunk), ids, bf16=True)

    (loss_a, grads_a), (loss_b, grads_b) = step(64), step(7)
    loss_off, _ = _step(_deep_long().sequence_chunked(chunk=64), ids, bf16=True)
    # matmuls over 7 or 64 rows may round differently with another CPU's kernels: agreement to bf16 rounding
    assert_close(loss_a, loss_b, rtol=2e-4)
    assert abs(float(loss_a - loss_off)) > 5e-3, (loss_a, loss_off)  # the masks dropped something (0.012 here)
    for name, g in grads_b.items():
        assert torch.isfinite(grads_a[name]).all()
        assert_close(grads_a[name], g, atol=1e-4, rtol=2e-2)


def test_chunked_dropout_masks_keep_one_minus_p_and_differ_by_sequence_kind_and_block():
    masks = block_chunked._Dropout(0.1, 0.3, 5, torch.device("cpu"))
    n = 3 * block_chunked.MASK_POSITIONS
    op, resid, other_row = masks.keep(0, 0, 0, n, 64), masks.keep(1, 0, 0, n, 64), masks.keep(0, 1, 0, n, 64)
    assert abs(op.float().mean() - 0.9) < 0.005 and abs(resid.float().mean() - 0.7) < 0.005
    m = block_chunked.MASK_POSITIONS
    assert not torch.equal(op[:m], op[m : 2 * m]) and not torch.equal(op, other_row)
    assert torch.equal(masks.keep(0, 0, m - 5, 10, 64), op[m - 5 : m + 5])  # across a block's edge
    assert torch.equal(masks.keep(0, 0, 0, n, 64), op)  # drawn again, the same


def test_chunked_training_refuses_bad_chunks():
    with pytest.raises(ValueError, match="sequence_chunk=0: must be >= 1"):
        ExecutionOptions(sequence_chunk=0)


def test_chunked_training_leaves_inference_alone():
    """Without autograd the model runs its inference paths, chunked training on or not."""
    ids = torch.randint(7, 12, (2, 120), generator=torch.Generator().manual_seed(6))
    model = _deep_long().eval()
    with torch.no_grad():
        plain = model(ids).logits
        chunked = model.sequence_chunked(chunk=8)(ids).logits
    assert torch.equal(plain, chunked)


def test_the_sdk_config_and_the_fine_tune_command_switch_it_on():
    from hyenadna.cli.common import add_memory_args
    from hyenadna.finetune import HyenaDNAFineTuningModel
    from hyenadna.sdk import HyenaDNAConfig

    cfg = HyenaDNAConfig(model_path=str(FIXTURES / "tiny"), sequence_chunked=True)
    assert HyenaDNAFineTuningModel(cfg, "classification", 2).network.backbone.execution.sequence_chunked
    given = HyenaDNAFineTuningModel(cfg, "classification", 2, model=load_model(FIXTURES / "tiny"))
    assert given.network.backbone.execution.sequence_chunked
    plain = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=str(FIXTURES / "tiny")), "classification", 2)
    assert not plain.network.backbone.execution.sequence_chunked
    parser = argparse.ArgumentParser()
    add_memory_args(parser)
    assert parser.parse_args(["--sequence-chunked"]).sequence_chunked
    assert not parser.parse_args([]).sequence_chunked
