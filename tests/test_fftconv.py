from __future__ import annotations

import pytest
import torch

from hyenadna.ops import fft_length, fftconv, fftconv_ref, filter_spectrum
from hyenadna.ops.hyena import hyena_ref
from tests.conftest import FIXTURES, assert_close


def direct_causal_conv(u, k, bias):
    """O(L^2) definition: y[c, t] = sum_{s<=t} k[c, t-s] u[c, s] + D_c u[c, t]."""
    length, taps = u.shape[-1], k.shape[-1]
    y = torch.zeros_like(u, dtype=torch.float64)
    for t in range(length):
        for s in range(max(0, t - taps + 1), t + 1):
            y[..., t] += k[:, t - s].double() * u[..., s].double()
    return (y + bias.double()[:, None] * u.double()).float()


@pytest.mark.parametrize("length", [1, 2, 7, 31, 64])
def test_fftconv_equals_direct_convolution(length):
    g = torch.Generator().manual_seed(length)
    u = torch.randn(2, 3, length, generator=g)
    k = torch.randn(3, length, generator=g)
    bias = torch.randn(3, generator=g)
    want = direct_causal_conv(u, k, bias)
    assert torch.allclose(fftconv_ref(u, k, bias), want, atol=1e-4)
    assert torch.allclose(fftconv(u, k, bias), want, atol=1e-4)


@pytest.mark.parametrize("length", [1, 5, 97, 1000, 1023, 1026, 4099, 8191])
def test_fast_path_matches_reference_path(length):
    g = torch.Generator().manual_seed(1)
    u = torch.randn(2, 8, length, generator=g)
    k = torch.randn(8, length, generator=g) * torch.exp(-torch.linspace(0, 5, length))
    bias = torch.randn(8, generator=g)
    ref = fftconv_ref(u, k, bias)
    assert_close(fftconv(u, k, bias), ref, atol=1e-4)
    n = fft_length(2 * length - 1)
    assert_close(fftconv(u, None, bias, k_f=filter_spectrum(k, n), n=n), ref, atol=1e-4)


@pytest.mark.parametrize(
    ("shape", "taps"), [((2, 3, 7), 7), ((3, 4, 33), 20), ((1, 2, 1), 1), ((5, 40), 40), ((2, 2, 3, 16), 9)]
)
def test_fftconv_backward_is_the_gradient(shape, taps):
    """The hand-written backward against finite differences (float64), batched or not, filters shorter than L."""
    g = torch.Generator().manual_seed(taps)
    u = torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(shape[-2], taps, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(shape[-2], dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(fftconv, (u, k, bias))


@pytest.mark.parametrize("length", [1, 64, 1000, 1031])
@pytest.mark.parametrize("requires", [(True, True, True), (True, False, False), (False, True, True)])
def test_fftconv_gradients_match_reference_autograd(length, requires):
    """float32, in the (channels, batch, length) memory order the training path passes, against autograd through
    ``fftconv_ref``; inputs that need no gradient get none."""
    g = torch.Generator().manual_seed(length)
    u = torch.randn(4, 3, length, generator=g).transpose(0, 1)
    k = torch.randn(4, min(length, 700), generator=g) * torch.exp(-torch.linspace(0, 4, min(length, 700)))
    bias, grad = torch.randn(4, generator=g), torch.randn(3, 4, length, generator=g)
    got, want = [], []
    for fn, out in ((fftconv, got), (fftconv_ref, want)):
        inputs = [t.detach().clone().requires_grad_(r) for t, r in zip((u, k, bias), requires, strict=True)]
        y = fn(*inputs)
        y.backward(grad)
        out += [y.detach(), *(t.grad for t in inputs)]
    for a, b in zip(got, want, strict=True):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype
            assert_close(a, b, atol=1e-4)


@pytest.mark.parametrize(("batch", "length", "taps"), [(2, 9, 9), (1, 1, 1), (3, 20, 7)])
def test_gated_fftconv_is_the_unfused_gating_and_its_gradient(batch, length, taps):
    """x0 * fftconv(x1 * v) token-major, from z in the training path's (3D, B, L) memory order: values against the
    unfused ops, gradients against finite differences (float64)."""
    from hyenadna.ops.fftconv import gated_fftconv

    g = torch.Generator().manual_seed(length)
    z = torch.randn(6, batch, length, dtype=torch.float64, generator=g).transpose(0, 1).requires_grad_()
    k = torch.randn(2, taps, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, generator=g, requires_grad=True)
    x0, x1, v = z.split(2, dim=1)
    want = fftconv_ref(x1 * v, k, bias) * x0
    got = gated_fftconv(z, k, bias)
    assert got.shape == (batch, 2, length) and got.stride() == z[:, :2].stride()  # z's memory order
    assert_close(got, want, atol=1e-12)
    assert torch.autograd.gradcheck(gated_fftconv, (z, k, bias))
    # only some inputs need a gradient: a frozen filter, or z (the filter and D alone)
    (dk, db) = torch.autograd.grad(gated_fftconv(z.detach(), k, bias).sum(), (k, bias))
    (dk_want, db_want) = torch.autograd.grad(want.sum(), (k, bias))
    assert_close(dk, dk_want, atol=1e-10)
    assert_close(db, db_want, atol=1e-10)
    k.requires_grad_(False)
    (dz,) = torch.autograd.grad(gated_fftconv(z, k, bias).sum(), (z,))
    assert dz.stride() == z.stride()  # the layout the short conv's backward reads


def test_fftconv_backward_under_bf16_input():
    """A bf16 input (autocast) gets a bf16 gradient; the filter and D keep float32 ones."""
    u = torch.randn(2, 4, 50).to(torch.bfloat16).requires_grad_()
    k, bias = torch.randn(4, 50, requires_grad=True), torch.randn(4, requires_grad=True)
    fftconv(u, k, bias).float().sum().backward()
    assert u.grad.dtype == torch.bfloat16 and k.grad.dtype == bias.grad.dtype == torch.float32
    u32, k32, b32 = (t.detach().float().requires_grad_() for t in (u, k, bias))
    fftconv_ref(u32, k32, b32).sum().backward()
    assert_close(k.grad, k32.grad, atol=1e-3, rtol=1e-3)
    assert_close(u.grad.float(), u32.grad, atol=0.05, rtol=0.02)


def test_filter_shorter_than_input_has_no_taps_beyond():
    g = torch.Generator().manual_seed(2)
    u = torch.randn(1, 2, 40, generator=g)
    k = torch.randn(2, 9, generator=g)
    bias = torch.zeros(2)
    assert torch.allclose(fftconv(u, k, bias), direct_causal_conv(u, k, bias), atol=1e-4)


def test_fft_length_is_smooth_and_minimal():
    def smooth(n):
        for p in (2, 3, 5, 7):
            while n % p == 0:
                n //= p
        return n == 1

    for n in [1, 2, 11, 2051, 65539, 2 * 160000 - 1, 2 * 1000002 - 1, 320003]:
        m = fft_length(n)
        assert m >= n and smooth(m)
        smallest = next(x for x in range(n, m + 1) if smooth(x))
        power_of_two = m & (m - 1) == 0
        # the smallest smooth length, or a power of two at most 5% longer than it
        assert m == smallest or (power_of_two and m <= 1.05 * smallest)
    assert fft_length(2 * 1000000 - 1) == 2**21  # 2,097,152 against the smooth 2,000,000
    assert fft_length(2 * 160000 - 1) == 320000  # 524,288 would be 64% longer


def test_fftconv_keeps_input_dtype_but_computes_in_float32():
    u = torch.randn(1, 4, 50).to(torch.bfloat16)
    k, bias = torch.randn(4, 50), torch.randn(4)
    out = fftconv(u, k, bias)
    assert out.dtype == torch.bfloat16
    assert_close(out.float(), fftconv_ref(u.float(), k, bias), atol=0.1)


def test_inference_filter_cache_matches_and_invalidates():
    from hyenadna import load_model

    model = load_model(FIXTURES / "tiny")
    ids = torch.randint(7, 11, (2, 300))
    with torch.no_grad():
        first = model.backbone(ids)
        cached = model.backbone(ids)  # served from the cached spectrum
        assert torch.equal(first, cached)
        reference = model.use_reference_path(True).backbone(ids)
        model.use_reference_path(False)
        assert_close(cached, reference, atol=5e-5)
        op = model.backbone.layers[0].mixer
        assert op._spectra
        op.filter_fn.implicit_filter[0].weight.add_(0.1)  # in-place change, as an optimizer step makes
        changed = model.backbone(ids)
        assert not torch.allclose(changed, cached)
        fresh = model.use_reference_path(True).backbone(ids)
        assert_close(changed, fresh, atol=5e-5)
    # with gradients the filter is recomputed, so training sees gradients through it
    model.use_reference_path(False).train()
    model(ids[:, :50], labels=ids[:, 1:51]).loss.backward()
    assert model.backbone.layers[0].mixer.filter_fn.implicit_filter[0].weight.grad is not None


@pytest.mark.parametrize("store_x0_bytes", [0, 2**30])  # x0 recomputed in the third pass, and stored
@pytest.mark.parametrize("cache_bytes", [0, 64 * 2**20])  # recomputed filter per channel group, and cached spectrum
@pytest.mark.parametrize("length", [4099, 3001, 1])  # longer than l_max 4098 (odd), prime, a single token
def test_low_memory_inference_matches_reference_path(cache_bytes, length, store_x0_bytes):
    from hyenadna import load_model
    from hyenadna.ops.execution import ExecutionOptions

    model = load_model(FIXTURES / "deep_long")
    model.backbone.execution = ExecutionOptions(filter_cache_bytes=cache_bytes, store_x0_bytes=store_x0_bytes)
    ids = torch.randint(7, 12, (2, length))
    with torch.no_grad():
        low = model.backbone(ids, low_memory=True)
        one = model.backbone(ids[:1], low_memory=True)
        ref = model.use_reference_path(True).backbone(ids, low_memory=False)
    assert_close(low, ref, atol=5e-5)
    assert torch.equal(one[0], low[0])


@pytest.mark.parametrize("length", [1, 2, 3, 17, 1024])
@pytest.mark.parametrize("taps", [1, 3, 4])
def test_causal_short_conv_matches_conv1d(length, taps):
    from hyenadna.ops.short_conv import causal_short_conv, causal_short_conv_ref

    z, w, b, zb = torch.randn(2, 6, length), torch.randn(6, taps), torch.randn(6), torch.randn(6)
    out = torch.empty(2, 6, length)
    fast = causal_short_conv(z[0], w, b, out=out[0])
    assert fast.data_ptr() == out.data_ptr()
    assert_close(fast, causal_short_conv_ref(z[0], w, b), atol=1e-5)
    # batched, with the input bias folded in
    folded = causal_short_conv(z, w, b, input_bias=zb)
    assert_close(folded, causal_short_conv_ref(z + zb[:, None], w, b), atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 3, 17, 1024])
@pytest.mark.parametrize("taps", [1, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_short_conv_tokens_matches_conv1d(length, taps, dtype):
    from hyenadna.ops.short_conv import causal_short_conv_ref, causal_short_conv_tokens

    z, w, b = torch.randn(length, 6).to(dtype), torch.randn(6, taps), torch.randn(6)
    fast = causal_short_conv_tokens(z, w, b)
    assert fast.dtype == torch.float32  # a bf16 input is widened
    assert_close(fast, causal_short_conv_ref(z.float().T, w, b).T, atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 3, 97, 256, 1031])  # tiny, prime, power of two, prime beyond l_max
def test_operator_paths_agree(length):
    from hyenadna.modules.hyena import HyenaOperator

    torch.manual_seed(length)
    op = HyenaOperator(16, l_max=1026)
    u = torch.randn(3, length, 16)
    ref = hyena_ref(op, u)
    with torch.no_grad():
        assert_close(op(u), ref, atol=1e-5)  # inference path (cached spectrum)
        assert_close(op(u, "per_sequence"), ref, atol=1e-5)  # second call: from the cache
        assert_close(op(u, "batched"), ref, atol=1e-5)  # what CUDA runs
    train = op(u)  # autograd path
    assert_close(train, ref, atol=1e-5)
    train.sum().backward()
    assert op.in_proj.weight.grad is not None and op.filter_fn.implicit_filter[0].weight.grad is not None


@pytest.mark.parametrize("length", [1, 5, 64, 101])
def test_fftconv_padded_and_inplace_match_reference(length):
    from hyenadna.ops.fftconv import fft_length, fftconv_inplace, fftconv_padded, fftconv_ref, filter_spectrum

    u, k, bias = torch.randn(2, 3, length), torch.randn(3, length), torch.randn(3)
    n = fft_length(2 * length - 1)
    ref, k_f = fftconv_ref(u, k, bias), filter_spectrum(k, n)
    padded = torch.zeros(2, 3, n)
    padded[..., :length] = u
    assert_close(fftconv_padded(padded, length, k_f, bias), ref, atol=1e-5)
    # in place, through work buffers left dirty by a previous use
    x, work = u[0].clone(), torch.randn(3, n)
    y = fftconv_inplace(x, k_f, bias, work)
    assert y.data_ptr() == x.data_ptr()
    assert_close(x, ref[0], atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 9])
def test_causal_short_conv_backward(length):
    from hyenadna.ops.short_conv import causal_short_conv, causal_short_conv_ref

    z = torch.randn(2, 4, length, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(causal_short_conv, (z, w, b))
    g = torch.randn(2, 4, length, dtype=torch.float64)
    fast = torch.autograd.grad((causal_short_conv(z, w, b) * g).sum(), (z, w, b))
    ref = torch.autograd.grad((causal_short_conv_ref(z, w, b) * g).sum(), (z, w, b))
    for a, r in zip(fast, ref, strict=True):
        assert torch.allclose(a, r, atol=1e-10)


@pytest.mark.parametrize("channel_group", [None, 1, 5, 64])  # adaptive, single channels, uneven last group, all
@pytest.mark.parametrize("chunk", [1, 100, 300])  # single tokens (shorter than the short filter), uneven, one chunk
@pytest.mark.parametrize("store_x0_bytes", [0, 2**30])
def test_low_memory_operator_any_channel_group(channel_group, chunk, store_x0_bytes):
    from hyenadna.modules.hyena import HyenaOperator
    from hyenadna.ops.execution import ExecutionOptions
    from hyenadna.ops.hyena import hyena_low_memory

    options = ExecutionOptions(store_x0_bytes=store_x0_bytes)
    torch.manual_seed(0)
    op = HyenaOperator(16, l_max=300)
    u = torch.randn(257, 16)
    expected = hyena_ref(op, u[None])[0]
    source, out, starts = u.clone(), torch.full_like(u, float("nan")), []
    with torch.no_grad():
        for s, y in hyena_low_memory(op, lambda a, b: source[a:b], 257, chunk, options, channel_group=channel_group):
            out[s : s + y.shape[0]] = y
            source[s:] = float("nan")  # the contract: rows >= s are not read again
            starts.append(s)
    assert starts == sorted(range(0, 257, chunk), reverse=True)
    assert_close(out, expected, atol=1e-5)


def test_filter_stays_float32_under_bf16_autocast():
    """The filter feeds the float32 FFT convolution: mixed precision must not round it to bf16."""
    from hyenadna.modules.hyena_filter import HyenaFilter

    f = HyenaFilter(8, 300)
    with torch.no_grad():
        want = f.filter(300)
        hidden, t = f.features(300)
        want_group = f.filter_channels(hidden, t, slice(2, 5), out=torch.empty(3, 300))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = f.filter(300)
            hidden, t = f.features(300)
            got_group = f.filter_channels(hidden, t, slice(2, 5), out=torch.empty(3, 300))
    assert got.dtype == torch.float32 and torch.equal(got, want)
    assert torch.equal(got_group, want_group)
    torch.testing.assert_close(want_group, want[2:5], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("length", [1, 300, 4000])  # one tap, and beyond l_max (the taps stop at 301)
def test_channels_first_filter_is_the_reference_filter(length):
    """The training and inference paths' contiguous filter: the reference's taps and gradients."""
    from hyenadna.modules.hyena_filter import HyenaFilter

    torch.manual_seed(length)
    f = HyenaFilter(8, 301)
    want, got = f.filter(length), f.filter_channels_first(length)
    assert got.is_contiguous() and got.shape == want.shape == (8, min(length, 301))
    assert_close(got, want, atol=1e-6)
    g = torch.randn_like(want)
    params = list(f.implicit_filter.parameters())
    want_grads = torch.autograd.grad((want * g).sum(), params)
    for a, b in zip(want_grads, torch.autograd.grad((got * g).sum(), params), strict=True):
        assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_the_one_read_comparison_agrees_with_torch_equal():
    """The filter cache's check off the CPU (one read of the device instead of one per tensor), run here on the CPU."""
    from hyenadna.modules.hyena import _all_equal, _all_equal_one_read

    g = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g), torch.tensor(2.0)]
    for b, expected in (
        ([t.clone() for t in a], True),
        ([a[0].clone(), a[1] + 1e-7 * (torch.arange(5) == 3), a[2].clone()], False),
        ([a[0].clone(), a[1].clone(), torch.tensor(float("nan"))], False),
    ):
        assert _all_equal_one_read(a, b) is expected and _all_equal(a, b) is expected
    nan = [torch.tensor(float("nan"))]
    assert _all_equal_one_read(nan, nan) is False and _all_equal(nan, nan) is False  # NaN is never "unchanged"
    assert _all_equal_one_read([], []) is True


def test_filter_cache_sees_edits_through_data_and_shift():
    """The cached spectrum follows the filter's values: ``.data`` edits (EMA, weight surgery) do not bump the
    version counter it used to key on (0.59 max abs off after deltas.data.mul_)."""
    from hyenadna import HyenaDNALMHeadModel, load_model

    model = load_model(FIXTURES / "tiny")
    ids = torch.randint(7, 11, (2, 300), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.backbone(ids)  # fills the cache
        for block in model.backbone.layers:
            block.mixer.filter_fn.modulation.deltas.data.mul_(1.5)
        fresh = HyenaDNALMHeadModel(model.config)
        fresh.load_state_dict(model.state_dict())
        assert_close(model.backbone(ids), fresh.eval().backbone(ids), atol=1e-5)
        for m in (model, fresh):
            for block in m.backbone.layers:
                block.mixer.filter_fn.modulation.shift = 0.0
        assert_close(model.backbone(ids), fresh.use_reference_path(True).backbone(ids), atol=5e-5)
