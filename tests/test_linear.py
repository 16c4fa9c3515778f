"""The oneDNN projection fast path against plain F.linear, and its fallbacks."""

from __future__ import annotations

import pytest
import torch

from hyenadna.ops import linear as linear_ops
from hyenadna.ops.linear import linear, linear_ref, mlp, mlp_ref, onednn_available
from tests.conftest import assert_close


@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("shape", [(1, 16), (7, 16), (3, 33, 16)])  # a single token, odd rows, a batch
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_reference(shape, gelu, bias):
    torch.manual_seed(0)
    x, w = torch.randn(*shape), torch.randn(24, 16) / 4
    b = torch.randn(24) if bias else None
    with torch.no_grad():
        fast, ref = linear(x, w, b, gelu=gelu), linear_ref(x, w, b, gelu=gelu)
    assert fast.shape == ref.shape == (*shape[:-1], 24)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


def test_linear_reads_transposed_operands():
    """The Hyena operator passes the weight as the left operand and a token-major sequence as the 'weight'."""
    w, u = torch.randn(12, 8), torch.randn(40, 8)
    with torch.no_grad():
        torch.testing.assert_close(linear(w, u), w @ u.T, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(linear(u.T.contiguous().T, w), u @ w.T, rtol=1e-5, atol=1e-5)


def test_linear_under_bf16_autocast_computes_in_bf16():
    x, w, b = torch.randn(5, 16), torch.randn(8, 16), torch.randn(8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast, ref = linear(x, w, b, gelu=True), linear_ref(x, w, b, gelu=True)
    assert fast.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), ref.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("shape", [(7, 16), (3, 5, 16)])
@pytest.mark.parametrize("out_features", [4, 24])  # narrower and wider than the input: both weight-grad layouts
def test_linear_gradients_match_reference(monkeypatch, shape, out_features):
    calls = []
    forward = linear_ops._Linear.forward
    monkeypatch.setattr(linear_ops._Linear, "forward", staticmethod(lambda *a: calls.append(1) or forward(*a)))
    torch.manual_seed(0)
    x, w, b = torch.randn(*shape), torch.randn(out_features, 16) / 4, torch.randn(out_features)
    g = torch.randn(*shape[:-1], out_features)
    grads = []
    for fn in (linear, linear_ref):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        grads.append(torch.autograd.grad((fn(*leaves, gelu=True) * g).sum(), leaves))
    assert calls, "the autograd fast path was not taken"
    for fast, ref in zip(*grads, strict=True):
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_training_mlp_keeps_gelus_derivative_and_matches_the_reference(monkeypatch, autocast, bias):
    """The block's MLP as one node (fc1, GELU and its derivative, fc2; the backward multiplies the derivative in
    inside fc2's input-gradient matmul): values and gradients as F.linear + F.gelu + F.linear, in fp32 to float
    rounding, under bf16 autocast to bf16 rounding and near the float32 ones."""
    if autocast and not onednn_available(torch.bfloat16):
        pytest.skip("oneDNN bf16 needs AVX-512 or AMX")
    monkeypatch.setattr(linear_ops, "_onednn_measured_faster", lambda train: True)
    calls = []
    forward = linear_ops._Mlp.forward
    monkeypatch.setattr(linear_ops._Mlp, "forward", staticmethod(lambda *a: calls.append(1) or forward(*a)))
    g = torch.Generator().manual_seed(int(bias))
    x, w1, w2 = (
        torch.randn(4, 33, 16, generator=g),
        torch.randn(64, 16, generator=g) / 4,
        torch.randn(24, 64, generator=g) / 8,
    )
    b1, b2 = (torch.randn(64, generator=g), torch.randn(24, generator=g)) if bias else (None, None)
    out_grad = torch.randn(4, 33, 24, generator=g)
    results = []
    for fn, amp in ((mlp, autocast), (mlp_ref, autocast), (mlp_ref, False)):
        leaves = [t.clone().requires_grad_() for t in (x, w1, b1, w2, b2) if t is not None]
        args = leaves if bias else [leaves[0], leaves[1], None, leaves[2], None]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = fn(*args)
        results.append((out.float(), *torch.autograd.grad(out, leaves, out_grad.to(out.dtype))))
    assert calls, "the fused training MLP was not used"
    fast, ref_same, ref_fp32 = results
    for a, r, r32 in zip(fast, ref_same, ref_fp32, strict=True):
        assert a.dtype == r.dtype and a.shape == r.shape
        scale = r32.abs().max().item()
        if autocast:
            assert (a.float() - r.float()).abs().max().item() <= 0.02 * scale
            assert (a.float() - r32).abs().max().item() <= 0.02 * scale
        else:
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5 * scale)


def test_training_mlp_without_input_gradient_and_its_fallback(monkeypatch):
    """A frozen input (the first layer's embedding is not the case, but a probe's features are) still gives the
    weights' gradients; where oneDNN's multiply post-op is missing, the two projections run as ``linear``."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 16, generator=g)
    w1, b1 = (torch.randn(32, 16, generator=g) / 4).requires_grad_(), torch.randn(32, generator=g).requires_grad_()
    w2, b2 = (torch.randn(8, 32, generator=g) / 4).requires_grad_(), torch.randn(8, generator=g).requires_grad_()
    grads = []
    for available in (True, False):
        monkeypatch.setattr(linear_ops, "_multiply_post_op_available", lambda dtype, a=available: a)
        monkeypatch.setattr(linear_ops, "_onednn_measured_faster", lambda train: True)
        grads.append(torch.autograd.grad(mlp(x, w1, b1, w2, b2).square().sum(), (w1, b1, w2, b2)))
        monkeypatch.undo()
    ref = torch.autograd.grad(mlp_ref(x, w1, b1, w2, b2).square().sum(), (w1, b1, w2, b2))
    for fast, plain, r in zip(*grads, ref, strict=True):
        torch.testing.assert_close(fast, r, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(plain, r, rtol=1e-5, atol=1e-5)


def test_multiply_post_op_is_available_here():
    """The training MLP's speed (README, "The training step") assumes it."""
    assert linear_ops._multiply_post_op_available(torch.float32)


def test_linear_gradient_only_for_the_weight():
    x, w = torch.randn(6, 16), torch.randn(4, 16, requires_grad=True)
    linear(x, w).sum().backward()
    torch.testing.assert_close(w.grad, x.sum(0).expand(4, -1), rtol=1e-5, atol=1e-5)


def test_switching_the_fast_path_off_falls_back(monkeypatch):
    x, w = torch.randn(5, 16), torch.randn(8, 16)
    monkeypatch.setattr(linear_ops, "USE_ONEDNN", False)
    with torch.no_grad():
        assert torch.equal(linear(x, w), linear_ref(x, w))


def test_onednn_is_used_on_this_machine():
    """The speed figures in the README assume the fast path; a torch without oneDNN would silently lose it."""
    assert onednn_available()


@pytest.mark.parametrize("length", [1, 2, 1031])
def test_model_inference_same_with_and_without_onednn(monkeypatch, length):
    from hyenadna import load_model
    from tests.conftest import FIXTURES

    model = load_model(FIXTURES / "deep_long")
    ids = torch.randint(7, 12, (2, length))
    with torch.no_grad():
        fast = model.backbone(ids), model.backbone(ids, low_memory=True)
        monkeypatch.setattr(linear_ops, "USE_ONEDNN", False)
        plain = model.backbone(ids), model.backbone(ids, low_memory=True)
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-5)


def test_reference_path_never_uses_onednn(monkeypatch):
    """The speed suite's comparator must be the plain algorithm: F.linear throughout, MLP included."""
    from hyenadna import load_model
    from tests.conftest import FIXTURES

    def fail(*args, **kwargs):
        raise AssertionError("oneDNN used on the reference path")

    monkeypatch.setattr(linear_ops, "_onednn_linear", fail)
    model = load_model(FIXTURES / "tiny").use_reference_path()
    ids = torch.randint(7, 11, (2, 40))
    with torch.no_grad():
        model(ids)
    model.train()
    model(ids[:, :-1], labels=ids[:, 1:]).loss.backward()
    with pytest.raises(AssertionError, match="oneDNN used"):
        model.use_reference_path(False)(ids)


def test_linear_gradients_under_bf16_autocast():
    """Mixed-precision training: the casts are differentiable, so fp32 leaves get gradients as with F.linear."""
    torch.manual_seed(0)
    x, w, b = torch.randn(9, 16), torch.randn(8, 16) / 4, torch.randn(8)
    grads = []
    for fn in (linear, linear_ref):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(*leaves, gelu=True)
        assert out.dtype == torch.bfloat16
        grads.append(torch.autograd.grad(out.float().sum(), leaves))
    for fast, ref in zip(*grads, strict=True):
        assert fast.dtype == torch.float32
        torch.testing.assert_close(fast, ref, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_channels_first_is_linear_of_the_transpose_and_returns_its_gradient_channels_first(autocast, bias):
    from hyenadna.ops.linear import linear_channels_first

    g = torch.Generator().manual_seed(int(autocast) * 2 + int(bias))
    x = torch.randn(24, 50, generator=g).requires_grad_()  # (in_features, N)
    w = torch.randn(16, 24, generator=g).requires_grad_()
    b = torch.randn(16, generator=g).requires_grad_() if bias else None
    out_grad = torch.randn(50, 16, generator=g)
    leaves = [t for t in (x, w, b) if t is not None]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        fast = linear_channels_first(x, w, b)
        ref = linear_ref(x.T, w, b)
    assert fast.shape == (50, 16) and fast.dtype == ref.dtype
    tol = dict(atol=1e-5, rtol=1e-5) if not autocast else dict(atol=0.05, rtol=0.02)
    assert_close(fast.float(), ref.float(), **tol)
    got, want = torch.autograd.grad(fast, leaves, out_grad), torch.autograd.grad(ref, leaves, out_grad)
    for a, e in zip(got, want, strict=True):
        assert_close(a, e, **tol)
    if not autocast:  # the input's gradient comes back channels first, as the gating backward reads it
        (gx,) = torch.autograd.grad(linear_channels_first(x, w, b), x, out_grad)
        assert gx.is_contiguous()
    with torch.no_grad():
        assert_close(linear_channels_first(x, w, b), linear_ref(x.T, w, b), atol=1e-5, rtol=1e-5)


def test_inference_on_a_step_s_few_rows_runs_f_linear(monkeypatch):
    """A decoding step's one or two rows go through F.linear, where oneDNN's call cost more than the product; more
    rows, and training, keep oneDNN."""
    if not linear_ops._fast_path_applies(torch.zeros(1, 8), torch.zeros(8, 8), None):
        pytest.skip("oneDNN's fused linear is not available here")
    monkeypatch.setattr(linear_ops, "_onednn_measured_faster", lambda train: True)

    def refuse(*args):
        raise AssertionError("oneDNN was called")

    monkeypatch.setattr(linear_ops, "_onednn_linear", refuse)
    w, b = torch.randn(16, 8), torch.randn(16)
    with torch.no_grad():
        for rows in ((1, 8), (2, 8), (2, 1, 8)):
            x = torch.randn(*rows)
            assert torch.equal(linear_ops.linear(x, w, b), linear_ops.linear_ref(x, w, b))
        with pytest.raises(AssertionError, match="oneDNN was called"):
            linear_ops.linear(torch.randn(3, 8), w, b)
