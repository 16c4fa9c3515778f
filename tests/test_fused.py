"""The fused elementwise kernels (ops/fused.py) against their eager references, and their fallback."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from hyenadna.ops import fused
from hyenadna.ops.short_conv import causal_short_conv, causal_short_conv_ref
from tests.conftest import assert_close


def _refuse(*args):
    raise AssertionError("the eager reference ran where the compiled kernel should have")


@pytest.mark.parametrize("shape", [(6, 40), (6, 3, 40), (5, 2, 3, 17), (4, 2, 1), (4, 2, 2)])
@pytest.mark.parametrize("taps", [1, 3, 4])
@pytest.mark.parametrize("with_input_bias", [False, True])
def test_short_conv_and_its_grads_match_the_eager_references(monkeypatch, shape, taps, with_input_bias):
    g = torch.Generator().manual_seed(taps)
    z, grad = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    weight, bias = torch.randn(shape[0], taps, generator=g), torch.randn(shape[0], generator=g)
    input_bias = torch.randn(shape[0], generator=g) if with_input_bias else None
    expected = fused.short_conv_ref(z, weight, bias, input_bias)
    expected_grads = fused.short_conv_grads_ref(z, weight, grad, input_bias)
    # proves the compiled kernels computed these
    monkeypatch.setattr(fused, "short_conv_ref", _refuse)
    monkeypatch.setattr(fused, "short_conv_grads_ref", _refuse)
    assert_close(fused.short_conv(z, weight, bias, input_bias), expected, atol=1e-6, rtol=1e-5)
    got = fused.short_conv_grads(z, weight, grad, input_bias)
    assert (got[3] is None) == (input_bias is None)
    for a, b in zip(got, expected_grads, strict=True):
        if b is not None:
            assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_short_conv_gradients_equal_conv1d_autograd_and_keep_the_channels_first_memory(batch, dtype):
    """Through autograd, as the training path calls it: z is a (B, C, L) view of in_proj's (C, B, L) output (bf16
    under autocast) whose bias the conv adds; the output and z's gradient come back in that memory order (in_proj's
    backward reads it without a copy), z's gradient in z's dtype."""
    g = torch.Generator().manual_seed(batch)
    c, length = 6, 33
    z = torch.randn(c, batch, length, generator=g).to(dtype).transpose(0, 1).requires_grad_()
    weight, bias = torch.randn(c, 3, generator=g).requires_grad_(), torch.randn(c, generator=g).requires_grad_()
    input_bias = torch.randn(c, generator=g).requires_grad_()
    out_grad = torch.randn(batch, c, length, generator=g)
    inputs = (z, weight, bias, input_bias)
    out = causal_short_conv(z, weight, bias, input_bias)
    fast = torch.autograd.grad(out, inputs, out_grad)
    ref_out = causal_short_conv_ref(z.float() + input_bias[:, None], weight, bias)
    ref = torch.autograd.grad(ref_out, inputs, out_grad)
    assert out.dtype == torch.float32 and fast[0].dtype == dtype
    assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    for a, b in zip(fast, ref, strict=True):
        assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert out.transpose(0, 1).is_contiguous() and fast[0].transpose(0, 1).is_contiguous()


@pytest.mark.parametrize("shape", [(6, 3, 42), (5, 1, 4), (4, 2, 3)])
@pytest.mark.parametrize("taps", [1, 3, 4])
def test_short_conv_padded_matches_its_reference_and_the_causal_conv(monkeypatch, shape, taps):
    """The conv of a z given with its K-1 zero columns before each row: the compiled kernel against the eager loop,
    and both against the causal conv of the unpadded z (a per-channel constant in place of the bias)."""
    *lead, length = shape
    seqlen = length - taps + 1
    g = torch.Generator().manual_seed(taps)
    z = torch.randn(*lead, seqlen, generator=g)
    z_pad = F.pad(z, (taps - 1, 0))
    weight, const = torch.randn(lead[0], taps, generator=g), torch.randn(lead[0], generator=g)
    expected = fused.short_conv_padded_ref(z_pad, weight, const)
    assert_close(expected, fused.short_conv_ref(z, weight, const, None), atol=1e-6, rtol=1e-5)
    monkeypatch.setattr(fused, "short_conv_padded_ref", _refuse)
    got = fused.short_conv_padded(z_pad, weight, const)
    assert got.shape == z.shape and got.dtype == torch.float32
    assert_close(got, expected, atol=1e-6, rtol=1e-5)
    bf16 = fused.short_conv_padded(z_pad.to(torch.bfloat16), weight, const)
    assert bf16.dtype == torch.float32
    assert_close(bf16, fused.short_conv_ref(z.to(torch.bfloat16), weight, const, None), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("batch", "seqlen"), [(1, 1), (1, 2), (3, 40), (2, 1024)])
@pytest.mark.parametrize("taps", [1, 3, 4])
@pytest.mark.parametrize("autocast", [False, True])
def test_in_proj_with_the_short_conv_equals_the_separate_ops(monkeypatch, batch, seqlen, taps, autocast):
    """in_proj reading zero tokens before each sequence, then the padded short conv and its bias correction, as one
    node: output and every gradient as in_proj (F.linear) then the reference conv1d of its output plus the bias."""
    from hyenadna.ops import linear as linear_ops
    from hyenadna.ops.short_conv import in_proj_short_conv

    if autocast and not linear_ops.onednn_available(torch.bfloat16):
        pytest.skip("oneDNN bf16 needs AVX-512 or AMX")
    monkeypatch.setattr(linear_ops, "_onednn_measured_faster", lambda train: True)
    d = 8
    g = torch.Generator().manual_seed(seqlen * 10 + taps)
    u = torch.randn(batch * seqlen, d, generator=g)
    w_in, in_bias = torch.randn(3 * d, d, generator=g) / 3, torch.randn(3 * d, generator=g)
    weight, bias = torch.randn(3 * d, taps, generator=g), torch.randn(3 * d, generator=g)
    out_grad = torch.randn(batch, 3 * d, seqlen, generator=g)
    results = []
    for fast in (True, False):
        leaves = [t.clone().requires_grad_() for t in (u, w_in, weight, bias, in_bias)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if fast:
                out = in_proj_short_conv(*leaves, batch)
                assert out is not None and out.transpose(0, 1).is_contiguous()  # (3D, B, L) memory order
            else:
                z = torch.nn.functional.linear(leaves[0], leaves[1]).float() + leaves[4]  # (B*L, 3D)
                z = z.view(batch, seqlen, 3 * d).transpose(1, 2)
                with torch.autocast("cpu", enabled=False):  # the training path's short conv runs in float32
                    out = causal_short_conv_ref(z, leaves[2], leaves[3])
        results.append((out, *torch.autograd.grad(out, leaves, out_grad)))
    tol = dict(atol=2e-2, rtol=2e-2) if autocast else dict(atol=1e-5, rtol=1e-5)
    for a, b in zip(*results, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert_close(a, b, **tol)


def test_in_proj_with_the_short_conv_declines_where_its_ops_are_off(monkeypatch):
    from hyenadna.ops.short_conv import in_proj_short_conv

    u, w_in, weight, bias = torch.randn(10, 4), torch.randn(12, 4), torch.randn(12, 3), torch.randn(12)
    assert in_proj_short_conv(u, w_in, weight, bias, None, 2) is None  # no in_proj bias
    monkeypatch.setattr(fused, "USE_COMPILED", False)
    assert in_proj_short_conv(u, w_in, weight, bias, torch.randn(12), 2) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gelu_tanh_and_its_gradient_match_torch(monkeypatch, dtype):
    x = (3 * torch.randn(4, 50, 16, generator=torch.Generator().manual_seed(0))).to(dtype).requires_grad_()
    out_grad = torch.randn(4, 50, 16, generator=torch.Generator().manual_seed(1)).to(dtype)
    expected = F.gelu(x, approximate="tanh")
    (expected_grad,) = torch.autograd.grad(expected, x, out_grad)
    monkeypatch.setattr(fused, "gelu_tanh_ref", _refuse)
    monkeypatch.setattr(fused, "gelu_tanh_backward_ref", _refuse)
    got = fused.gelu_tanh(x)
    (got_grad,) = torch.autograd.grad(got, x, out_grad)
    assert got.dtype == got_grad.dtype == dtype
    # bf16: the two round a float32 result to bf16, one ulp apart at most
    tol = dict(atol=1e-6, rtol=2e-6) if dtype == torch.float32 else dict(atol=1e-2, rtol=8e-3)
    assert_close(got, expected, **tol)
    tol = dict(atol=1e-6, rtol=4e-6) if dtype == torch.float32 else dict(atol=1e-2, rtol=8e-3)
    assert_close(got_grad, expected_grad, **tol)


@pytest.mark.parametrize("shape", [(4, 50, 16), (300, 24)])  # 3-D and 2-D: inductor tiles them differently
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gelu_tanh_with_its_derivative_matches_torch(monkeypatch, shape, dtype):
    x = (3 * torch.randn(shape, generator=torch.Generator().manual_seed(2))).to(dtype)
    expected = fused.gelu_tanh_with_derivative_ref(x)
    monkeypatch.setattr(fused, "gelu_tanh_with_derivative_ref", _refuse)
    got = fused.gelu_tanh_with_derivative(x)
    tol = dict(atol=1e-6, rtol=4e-6) if dtype == torch.float32 else dict(atol=1e-2, rtol=8e-3)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == dtype and a.shape == x.shape
        assert_close(a, b, **tol)
    # the derivative is GELU's: autograd's gradient of F.gelu at x
    xg = x.float().requires_grad_()
    (slope,) = torch.autograd.grad(F.gelu(xg, approximate="tanh").sum(), xg)
    assert_close(got[1].float(), slope, **tol)


def test_a_kernel_that_fails_to_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken_compiler(name):
        def kernel(*args):
            raise RuntimeError("no C++ compiler")

        return kernel

    monkeypatch.setattr(fused, "_compiled", broken_compiler)
    monkeypatch.setattr(fused, "_broken", set())
    z, grad, weight, ib = torch.randn(4, 2, 9), torch.randn(4, 2, 9), torch.randn(4, 3), torch.randn(4)
    with pytest.warns(RuntimeWarning, match="compiling the fused short_conv_grads kernel failed"):
        got = fused.short_conv_grads(z, weight, grad, ib)
    for a, b in zip(got, fused.short_conv_grads_ref(z, weight, grad, ib), strict=True):
        assert torch.equal(a, b)
    assert fused._broken == {"short_conv_grads"}
    with warnings.catch_warnings():  # no second attempt, no second warning
        warnings.simplefilter("error")
        fused.short_conv_grads(z, weight, grad, ib)


def _short_conv_grads_variants(n: int):
    """Inputs of n calls of short_conv_grads that torch compiles separately (rank, taps, dtype), with the expected
    gradients."""
    g = torch.Generator().manual_seed(0)
    combos = [(r, k, d) for d in (torch.float32, torch.bfloat16) for r in (2, 3) for k in (2, 3, 4)]
    for rank, taps, dtype in combos[:n]:
        shape = (4, 12) if rank == 2 else (4, 2, 12)
        z, grad = torch.randn(shape, generator=g).to(dtype), torch.randn(shape, generator=g)
        weight, ib = torch.randn(4, taps, generator=g), torch.randn(4, generator=g)
        yield (z, weight, grad, ib), fused.short_conv_grads_ref(z, weight, grad, ib)


@pytest.fixture
def fresh_kernels(monkeypatch):
    """Kernels compiled anew, and again after the test, so that no variant compiled elsewhere is reused."""
    monkeypatch.setattr(fused, "_broken", set())
    fused._compiled.cache_clear()
    yield
    fused._compiled.cache_clear()


@pytest.mark.skipif(not fused._compile_budget(), reason="this torch has no per-call recompile limit")
def test_a_kernel_stays_compiled_past_torchs_global_recompile_limit(fresh_kernels):
    """Past torch's global limit (8 variants a function) a kernel used to run eagerly in silence."""
    from torch._dynamo.utils import counters

    n = torch._dynamo.config.recompile_limit + 2
    graphs = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for args, expected in _short_conv_grads_variants(n):
            for a, b in zip(fused.short_conv_grads(*args), expected, strict=True):
                assert_close(a.float(), b.float(), atol=1e-2, rtol=1e-2)
    assert counters["stats"]["unique_graphs"] - graphs == n  # every variant compiled, none run eagerly
    assert not fused._broken


@pytest.mark.skipif(not fused._compile_budget(), reason="this torch has no per-call recompile limit")
def test_a_kernel_past_its_own_recompile_budget_falls_back_with_a_warning(monkeypatch, fresh_kernels):
    monkeypatch.setattr(fused, "RECOMPILE_LIMIT", 2)
    variants = list(_short_conv_grads_variants(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for args, _ in variants[:2]:
            fused.short_conv_grads(*args)
    with pytest.warns(RuntimeWarning, match="compiling the fused short_conv_grads kernel failed"):
        got = fused.short_conv_grads(*variants[2][0])
    for a, b in zip(got, variants[2][1], strict=True):
        assert torch.equal(a, b)
    assert fused._broken == {"short_conv_grads"}


def test_switched_off_the_kernels_are_the_eager_references(monkeypatch):
    monkeypatch.setattr(fused, "USE_COMPILED", False)
    monkeypatch.setattr(fused, "_compiled", _refuse)
    x = torch.randn(3, 8, requires_grad=True)
    assert torch.equal(fused.gelu_tanh(x), F.gelu(x, approximate="tanh"))
    z, grad, weight, bias = torch.randn(4, 9), torch.randn(4, 9), torch.randn(4, 3), torch.randn(4)
    assert torch.equal(fused.short_conv(z, weight, bias), fused.short_conv_ref(z, weight, bias, None))
    got, expected = fused.short_conv_grads(z, weight, grad), fused.short_conv_grads_ref(z, weight, grad, None)
    for a, b in zip(got[:3], expected[:3], strict=True):
        assert torch.equal(a, b)


def test_with_zero_tail_reads_the_padding_in_place_only_where_it_is_zeros():
    buf = torch.zeros(4, 3, 12)
    buf[..., :10] = torch.randn(4, 3, 10, generator=torch.Generator().manual_seed(0))
    t = buf[..., :10]
    padded = fused.with_zero_tail(t, 2)
    assert padded.data_ptr() == buf.data_ptr() and torch.equal(padded, F.pad(t, (0, 2)))
    buf[1, 2, 11] = 3.0  # a non-zero where the padding should be: a padded copy instead
    copied = fused.with_zero_tail(t, 2)
    assert copied.data_ptr() != buf.data_ptr() and torch.equal(copied, F.pad(t, (0, 2)))
    for other in (t.clone(), buf[..., :9], buf.transpose(0, 1)[..., :10], buf[..., 2:12]):
        got = fused.with_zero_tail(other, 2)  # not laid out in a zero-tailed tensor: always a copy
        assert got.data_ptr() != buf.data_ptr() and torch.equal(got, F.pad(other, (0, 2)))
    assert torch.equal(fused.with_zero_tail(torch.randn(2, 0, 5)[..., :3], 2), torch.zeros(2, 0, 5))
    assert fused.with_zero_tail(t, 0) is t


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("taps", [2, 3, 4])
def test_training_hyena_gradients_use_the_zero_tail_and_equal_the_reference_ops(monkeypatch, dtype, taps):
    """The training path's short conv into gated_fftconv: z's gradient comes back with taps-1 zero columns after
    each row, the short conv's backward reads them in place (no padded copy), and every gradient equals the
    unfused reference ops' (conv1d, fftconv_ref)."""
    from hyenadna.ops.fftconv import fftconv_ref, gated_fftconv

    g = torch.Generator().manual_seed(taps)
    d, batch, length = 4, 3, 37
    z = torch.randn(3 * d, batch, length, generator=g).to(dtype).transpose(0, 1).requires_grad_()
    weight = torch.randn(3 * d, taps, generator=g).requires_grad_()
    bias, input_bias = torch.randn(3 * d, generator=g).requires_grad_(), torch.randn(3 * d, generator=g)
    input_bias.requires_grad_()
    k, skip = torch.randn(d, length, generator=g).requires_grad_(), torch.randn(d, generator=g).requires_grad_()
    out_grad = torch.randn(batch, d, length, generator=g)
    leaves = (z, weight, bias, input_bias, k, skip)

    seen = []
    original = fused.with_zero_tail
    monkeypatch.setattr(fused, "with_zero_tail", lambda t, pad: seen.append(t) or original(t, pad))
    monkeypatch.setattr(fused, "short_conv_grads_ref", _refuse)
    y = gated_fftconv(causal_short_conv(z, weight, bias, input_bias), k, skip, grad_z_tail=taps - 1)
    got = torch.autograd.grad(y, leaves, out_grad)
    (grad_of_conv_output,) = seen
    assert fused.with_zero_tail(grad_of_conv_output, taps - 1).data_ptr() == grad_of_conv_output.data_ptr()

    ref_z = causal_short_conv_ref(z.float() + input_bias[:, None], weight, bias)
    x0, x1, v = ref_z.split(d, dim=1)
    want = torch.autograd.grad(fftconv_ref(x1 * v, k, skip) * x0, leaves, out_grad)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        assert_close(a.float(), b.float(), atol=2e-4, rtol=2e-4)


def test_dropout_keeps_the_rounded_probability_scales_exactly_and_masks_its_gradient(monkeypatch):
    x = torch.randn(4, 512, 64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    grad = torch.randn(4, 512, 64, generator=torch.Generator().manual_seed(1))
    keep = round(0.9 * 2**16)
    torch.manual_seed(7)
    expected_bits = fused.random_bits(tuple(x.shape))
    expected = fused.dropout_ref(x.detach(), expected_bits, keep - 2**15, 2**16 / keep)
    monkeypatch.setattr(fused, "dropout_ref", _refuse)  # the compiled kernel, forward and backward
    torch.manual_seed(7)
    y = fused.dropout(x, 0.1)
    (gx,) = torch.autograd.grad(y, x, grad)
    assert torch.equal(y, expected)  # the same draws under the same seed
    kept = y != 0
    n = kept.numel()
    # binomial: within 5 standard deviations of keep / 2**16
    assert abs(kept.sum().item() / n - keep / 2**16) < 5 * (0.09 / n) ** 0.5
    assert torch.equal(y[kept], (x * (2**16 / keep))[kept])
    assert torch.equal(gx, torch.where(kept, grad * (2**16 / keep), 0))
    torch.manual_seed(7)
    assert torch.equal(fused.dropout(x, 0.1), y)  # deterministic for a seed
    assert not torch.equal(fused.dropout(x, 0.1), y)  # and a fresh draw after it
    assert torch.equal(fused.dropout(x, 0.0), x) and not fused.dropout(x, 1.0).any()


def test_blocks_drop_through_the_fused_dropout_and_the_reference_path_through_torchs():
    from hyenadna import HyenaConfig, HyenaDNALMHeadModel

    torch.manual_seed(0)
    lm = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=1, d_inner=32, l_max=40, embed_dropout=0.5)).train()
    block, ids = lm.backbone.layers[0], torch.randint(7, 11, (2, 33))
    x = lm.backbone.embeddings(ids)
    for path, draw in (("train", lambda: fused.dropout(x, 0.5)), ("reference", lambda: F.dropout(x, 0.5))):
        torch.manual_seed(3)
        want = draw()
        torch.manual_seed(3)
        assert torch.equal(block._drop(block.dropout1, x, path), want)
    block.eval()
    assert block._drop(block.dropout1, x, "train") is x


@pytest.mark.parametrize("modulate", [True, False])
def test_implicit_filter_compiled_matches_the_eager_filter_and_its_gradients(monkeypatch, modulate):
    from hyenadna.modules.hyena_filter import HyenaFilter

    torch.manual_seed(0)
    f = HyenaFilter(d_model=8, l_max=70, order=16, modulate=modulate)
    out_grad = torch.randn(8, 50, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the eager path (inference), and the reference algorithm's token-major filter
        eager, reference = f.filter_channels_first(50), f.filter(50)
    assert_close(eager, reference, atol=1e-6, rtol=1e-5)
    params = [p for p in f.parameters() if p.requires_grad]
    want = torch.autograd.grad(f.filter(50), params, out_grad, allow_unused=True)
    monkeypatch.setattr(fused, "implicit_filter_ref", _refuse)  # training: the compiled filter
    with torch.autocast("cpu", dtype=torch.bfloat16):  # stays float32 under mixed precision
        got = f.filter_channels_first(50)
    assert got.dtype == torch.float32
    assert_close(got, reference, atol=1e-6, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(got, params, out_grad, allow_unused=True), want, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close(a, b, atol=1e-5, rtol=1e-4)
