"""Fused elementwise kernels for the training step on the CPU, compiled from plain torch code by inductor.

What was left of a bf16 training step after the projections and FFTs was memory-bound elementwise work: each eager op
reads and writes whole (B, 3D, L) tensors, and ATen's tanh-GELU is compute-bound on ``tanh``. Each kernel here is a
short torch function that inductor turns into one or two C++ loops. Every kernel has its eager reference beside it,
with the same contract, and tests compare the two:

- ``gelu_tanh``: tanh-GELU with its backward, written as ``x * sigmoid(2u)``, which equals ``x * (1 + tanh(u)) / 2``
  exactly in real arithmetic and needs ``exp`` instead of ``tanh``: 2.4-2.8x ATen's bf16 GELU at tiny-1k.
  ``gelu_tanh_with_derivative`` writes the derivative beside it, for the training MLP's backward.
- ``short_conv``: the causal short conv with the in_proj bias added and a bf16 input widened inside the kernel, where
  eager ops took a widening add and four multiply-add passes.
- ``short_conv_padded``: the same conv of a z that in_proj wrote with K-1 zero columns before each row (training:
  ``ops/short_conv.py``, ``in_proj_short_conv``), with no padding inside the kernel.
- ``short_conv_grads``: its gradients in one pass over the output gradient, where the eager backward allocates and
  reads a product per tap, and the input's gradient is written in the input's dtype. The output gradient is read
  with zeros after each row, which ``gated_fftconv`` writes there: each tap then reads a plain shifted slice.

- ``dropout``: training-mode dropout drawn from 16 random bits per element, 64 bits per draw of torch's generator
  (so ``torch.manual_seed`` fixes it): 1.6 against torch's 5.5 ms for tiny-1k's embedding dropout, where torch draws
  a Bernoulli float per element. An element is kept with probability ``round((1 - p) * 2**16) / 2**16`` (p = 0.1
  drops 0.100006) and scaled by the inverse of that, so the expectation is exact.

Kernels are compiled on first use with ``dynamic=True`` (one kernel for every length and batch), on the CPU only:
they were measured there; a GPU keeps the eager ops. Where compiling fails (no C++ compiler, an unsupported torch),
the kernels fall back to their eager references for the rest of the process, with one warning.

Each dtype, rank, tap count and memory layout is still a variant of its own, and torch's global recompile limit (8 a
function) would make a kernel past it run eagerly in silence, rounding differently from its compiled variants. So each
kernel compiles with its own budget (``isolate_recompiles``, ``recompile_limit`` 64: the user's own torch.compile
limits are untouched) and ``fullgraph``, which makes a kernel past its budget raise, and so fall back with the warning
above, instead.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

# Tests switch the compiled kernels off to compare them with the eager references on the same inputs.
USE_COMPILED = True
_broken: set[str] = set()

# 2 * sqrt(2 / pi), and the cubic coefficient of tanh-GELU
_K, _C = 1.5957691216057308, 0.044715


def _gelu_tanh_parts(xf: Tensor) -> tuple[Tensor, Tensor]:
    """sigmoid(2u) and GELU's derivative at a float32 x."""
    s = torch.sigmoid(_K * xf * (1 + _C * xf * xf))
    return s, s + xf * s * (1 - s) * (_K * (1 + 3 * _C * xf * xf))


def _gelu_tanh_fused(x: Tensor) -> Tensor:
    xf = x.float()
    return (xf * _gelu_tanh_parts(xf)[0]).to(x.dtype)  # inductor drops the unused derivative


def _gelu_tanh_backward_fused(grad: Tensor, x: Tensor) -> Tensor:
    return (grad.float() * _gelu_tanh_parts(x.float())[1]).to(grad.dtype)


def _gelu_tanh_with_derivative_fused(x: Tensor) -> tuple[Tensor, Tensor]:
    xf = x.float()
    s, slope = _gelu_tanh_parts(xf)
    return (xf * s).to(x.dtype), slope.to(x.dtype)


def gelu_tanh_ref(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


def gelu_tanh_with_derivative_ref(x: Tensor) -> tuple[Tensor, Tensor]:
    return gelu_tanh_ref(x), gelu_tanh_backward_ref(torch.ones_like(x), x)


def gelu_tanh_backward_ref(grad: Tensor, x: Tensor) -> Tensor:
    return torch.ops.aten.gelu_backward(grad, x, approximate="tanh")


def _channel_view(t: Tensor, dim: int) -> Tensor:
    """A per-channel vector (C,) shaped to broadcast over a channels-first (C, ..., L) tensor of ``dim`` dims."""
    return t.view(t.shape[0], *([1] * (dim - 1)))


def _tap_view(weight: Tensor, dim: int) -> Tensor:
    """Short-filter weights (C, K) shaped so that ``[..., j]`` broadcasts tap j over a (C, ..., L) tensor."""
    return weight.view(weight.shape[0], *([1] * (dim - 1)), weight.shape[1])


def _short_conv_input(z: Tensor, input_bias: Tensor | None) -> Tensor:
    """z + input_bias, widened to float32 (float64 stays float64: gradcheck)."""
    x = z.to(torch.promote_types(z.dtype, torch.float32))
    return x if input_bias is None else x + _channel_view(input_bias.to(x.dtype), z.dim())


def _short_conv_fused(z: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor | None) -> Tensor:
    x_pad = F.pad(_short_conv_input(z, input_bias), (weight.shape[1] - 1, 0))
    return _short_conv_padded_fused(x_pad, weight, bias)


def _short_conv_padded_fused(z_pad: Tensor, weight: Tensor, const: Tensor) -> Tensor:
    taps = weight.shape[1]
    seqlen = z_pad.shape[-1] - taps + 1
    x = z_pad.to(torch.promote_types(z_pad.dtype, torch.float32))
    w = _tap_view(weight, z_pad.dim())
    return sum(x[..., j : j + seqlen] * w[..., j] for j in range(taps)) + _channel_view(const, z_pad.dim())


def short_conv_padded_ref(z_pad: Tensor, weight: Tensor, const: Tensor) -> Tensor:
    """The causal short conv of z given with its K-1 zero columns before each row, z_pad (C, ..., K-1+L), plus a
    per-channel constant: ``sum_j w[c, j] z_pad[c, ..., t + j] + const[c]`` in float32, (C, ..., L)."""
    taps = weight.shape[1]
    seqlen = z_pad.shape[-1] - taps + 1
    x = z_pad.to(torch.promote_types(z_pad.dtype, torch.float32))
    w = _tap_view(weight, z_pad.dim())
    out = (x[..., :seqlen] * w[..., 0]).add_(_channel_view(const, z_pad.dim()))
    for j in range(1, taps):
        out.addcmul_(x[..., j : j + seqlen], w[..., j])
    return out


def short_conv_ref(z: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor | None) -> Tensor:
    """The causal short conv of ``z + input_bias`` (the in_proj bias, or None) in float32 as shifted multiply-adds:
    z channels first (C, ..., L), any float dtype; weight (C, K), bias (C,)."""
    taps, seqlen = weight.shape[1], z.shape[-1]
    x = _short_conv_input(z, input_bias)
    w = _tap_view(weight, z.dim())
    out = (x * w[..., -1]).add_(_channel_view(bias, z.dim()))
    for j in range(1, min(taps, seqlen)):
        out[..., j:].addcmul_(x[..., :-j], w[..., -1 - j])
    return out


def _short_conv_grads_fused(
    z: Tensor, weight: Tensor, grad_padded: Tensor, input_bias: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    # grad_padded: the output gradient with K-1 zero columns after each row, so that every tap reads a shifted slice
    # of one tensor; padding inside the kernel (F.pad) compiled to masked loads, 10.4 against 2.2 ms at tiny-1k
    taps, seqlen = weight.shape[1], z.shape[-1]
    w = _tap_view(weight, z.dim())
    x = _short_conv_input(z, input_bias)
    grad_x = sum(grad_padded[..., j : j + seqlen] * w[..., taps - 1 - j] for j in range(taps))
    dims = tuple(range(1, z.dim()))
    # tap i reads x shifted by K-1-i: its gradient reads the output gradient shifted the other way
    shifted = [grad_padded[..., taps - 1 - i : taps - 1 - i + seqlen] for i in range(taps)]
    grad_w = torch.stack([(g * x).sum(dims) for g in shifted], 1)
    grad_input_bias = None if input_bias is None else grad_x.sum(dims)
    return grad_x.to(z.dtype), grad_w, grad_padded[..., :seqlen].sum(dims), grad_input_bias


def with_zero_tail(t: Tensor, pad: int) -> Tensor:
    """``t`` (..., L) as the (..., L + pad) tensor whose last ``pad`` columns are zeros: a view where ``t`` already
    lies in such a tensor (``gated_fftconv`` writes z's gradient so, ``grad_z_tail``), else a padded copy."""
    if pad == 0:
        return t
    *lead, seqlen = t.shape
    shape, strides, expected = (*lead, seqlen + pad), [], 1
    for n in reversed(shape):
        strides.insert(0, expected)
        expected *= n
    fits = t.storage_offset() + expected <= t.untyped_storage().nbytes() // t.element_size()
    if t.numel() and fits and t.stride() == tuple(strides):
        full = t.as_strided(shape, strides)
        if not full[..., seqlen:].any():
            return full
    return F.pad(t, (0, pad))


def short_conv_grads_ref(
    z: Tensor, weight: Tensor, grad: Tensor, input_bias: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The gradients of ``short_conv_ref`` (z in its dtype, weight, bias, input_bias or None) from the output
    gradient, as shifted multiply-adds, a product per tap. z, grad: (C, ..., L) channels first; weight (C, K)."""
    taps, seqlen = weight.shape[1], z.shape[-1]
    x = _short_conv_input(z, input_bias)
    w = _tap_view(weight, z.dim())
    dims = tuple(range(1, z.dim()))
    grad_x = grad * w[..., -1]
    grad_w = torch.zeros_like(weight)
    grad_w[:, -1] = (grad * x).sum(dims)
    for j in range(1, min(taps, seqlen)):  # tap -1-j reads x shifted by j: its gradient reads grad shifted back
        grad_x[..., :-j].addcmul_(grad[..., j:], w[..., -1 - j])
        grad_w[:, -1 - j] = (grad[..., j:] * x[..., :-j]).sum(dims)
    grad_input_bias = None if input_bias is None else grad_x.sum(dims)
    return grad_x.to(z.dtype), grad_w, grad.sum(dims), grad_input_bias


def _dropout_fused(x: Tensor, bits: Tensor, threshold: int, scale: float) -> Tensor:
    return torch.where(bits < threshold, x * scale, 0).to(x.dtype)


def dropout_ref(x: Tensor, bits: Tensor, threshold: int, scale: float) -> Tensor:
    """x scaled by ``scale`` where the int16 ``bits`` (x's shape) are below ``threshold``, else 0."""
    return (x * (bits < threshold)).mul_(scale).to(x.dtype)


def _implicit_filter_fused(
    z: Tensor,
    t: Tensor,
    layers: list[tuple[Tensor, Tensor]],
    freq: Tensor,
    w_out: Tensor,
    decay: Tensor | None,
    shift: float,
) -> Tensor:
    """Hyena's implicit filter channels first, (D, taps): sin(freq * (h W^T + b)) through ``layers`` from the
    positional features z (taps, emb_dim), the last projection as w_out @ h^T, then the window exp(t * decay) + shift
    (t (taps,), decay (D, 1) = -|delta|; none if ``decay`` is None)."""
    h = z
    for weight, bias in layers:
        h = torch.sin(freq * F.linear(h, weight, bias))
    out = torch.mm(w_out, h.T)
    return out if decay is None else out * (torch.exp(t * decay) + shift)


# the compiled kernel is this same code, so the tests hold both to the reference algorithm's HyenaFilter.filter
implicit_filter_ref = _implicit_filter_fused


# variants one kernel may compile (dtypes x ranks x layouts x taps); far above any one training run's few
RECOMPILE_LIMIT = 64
# whether torch.compile takes a per-call recompile limit (the 2.13.0 we install does), read at import
_PER_CALL_LIMIT = {"recompile_limit", "isolate_recompiles"} <= set(inspect.signature(torch.compile).parameters)


def _compile_budget() -> dict:
    """Each kernel's own recompile budget, where this torch has one; with an older torch the kernels share the global
    limit as before."""
    if not _PER_CALL_LIMIT:
        return {}
    return {"recompile_limit": RECOMPILE_LIMIT, "isolate_recompiles": True, "fullgraph": True}


@functools.cache
def _compiled(name: str) -> Callable:
    fn = {
        "gelu_tanh": _gelu_tanh_fused,
        "gelu_tanh_backward": _gelu_tanh_backward_fused,
        "gelu_tanh_with_derivative": _gelu_tanh_with_derivative_fused,
        "short_conv": _short_conv_fused,
        "short_conv_padded": _short_conv_padded_fused,
        "short_conv_grads": _short_conv_grads_fused,
        "dropout": _dropout_fused,
        "implicit_filter": _implicit_filter_fused,
    }[name]
    kernel = torch.compile(fn, dynamic=True, **_compile_budget())
    if name == "short_conv_grads":
        return lambda z, weight, grad, input_bias: kernel(
            z, weight, with_zero_tail(grad, weight.shape[1] - 1), input_bias
        )
    return kernel


def _run(name: str, reference: Callable, *args: Tensor):
    """The compiled kernel ``name`` where it applies, else ``reference`` (same contract)."""
    if (
        not USE_COMPILED
        or name in _broken
        or args[0].device.type != "cpu"
        or torch.compiler.is_compiling()  # inside a user's torch.compile: let it trace the plain ops
    ):
        return reference(*args)
    try:
        # dynamo and inductor warn about their own internals when they (re)compile, for a new dtype or memory
        # layout (deprecations, .grad of non-leaf tensors they trace): nothing to the caller, and errors under a
        # caller's "error" filter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _compiled(name)(*args)
    except Exception as e:  # any compiler failure; a genuine input error is raised again by the reference
        _broken.add(name)
        warnings.warn(
            f"hyenadna: compiling the fused {name} kernel failed ({type(e).__name__}: {str(e)[:200]}); using the "
            "eager ops, which compute the same values more slowly",
            RuntimeWarning,
            stacklevel=3,
        )
        return reference(*args)


def short_conv(z: Tensor, weight: Tensor, bias: Tensor, input_bias: Tensor | None = None) -> Tensor:
    """Fast path of ``short_conv_ref``: one fused kernel (a bf16 z is widened and the in_proj bias added inside it),
    results equal to float32 rounding."""
    return _run("short_conv", short_conv_ref, z, weight, bias, input_bias)


def short_conv_padded(z_pad: Tensor, weight: Tensor, const: Tensor) -> Tensor:
    """Fast path of ``short_conv_padded_ref``: every tap reads a plain shifted slice of z_pad, where ``short_conv``'s
    padding inside the kernel compiled to masked loads (0.55 against 2.1 ms at tiny-1k's (3D, B, L), alone)."""
    return _run("short_conv_padded", short_conv_padded_ref, z_pad, weight, const)


def short_conv_grads(
    z: Tensor, weight: Tensor, grad: Tensor, input_bias: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Fast path of ``short_conv_grads_ref``: one fused kernel, results equal to float32 rounding. It reads ``grad``
    with K-1 zero columns after each row: in place where ``grad`` lies in such a tensor (``with_zero_tail``), else
    from a padded copy."""
    return _run("short_conv_grads", short_conv_grads_ref, z, weight, grad, input_bias)


_BITS = 16


def random_bits(shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
    """Uniform int16 values of ``shape``, four to each 64-bit draw of torch's generator."""
    n = math.prod(shape)
    words = torch.empty(-(-n // 4), dtype=torch.int64, device=device).random_(-(2**63), None)  # all 64 bits
    return words.view(torch.int16)[:n].view(shape)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, keep: int) -> Tensor:
        bits = random_bits(tuple(x.shape), x.device)
        ctx.save_for_backward(bits)
        ctx.threshold, ctx.scale = keep - 2 ** (_BITS - 1), 2**_BITS / keep
        return _run("dropout", dropout_ref, x, bits, ctx.threshold, ctx.scale)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (bits,) = ctx.saved_tensors
        return _run("dropout", dropout_ref, grad, bits, ctx.threshold, ctx.scale), None


def dropout(x: Tensor, p: float) -> Tensor:
    """Training-mode dropout: on the CPU from 16-bit random draws (the module docstring says how p is rounded),
    elsewhere, or where p rounds to 0 or 1, ``F.dropout``."""
    keep = round((1 - p) * 2**_BITS)
    if x.device.type != "cpu" or not 0 < keep < 2**_BITS:
        return F.dropout(x, p, training=True)
    return _Dropout.apply(x, keep)


def gelu_tanh_backward(grad: Tensor, x: Tensor) -> Tensor:
    """The gradient of tanh-GELU at x, through the fused kernel on the CPU."""
    return _run("gelu_tanh_backward", gelu_tanh_backward_ref, grad, x)


def gelu_tanh_with_derivative(x: Tensor) -> tuple[Tensor, Tensor]:
    """tanh-GELU at x and its derivative there, in x's dtype, from one read of x: a training MLP keeps the
    derivative, and its backward multiplies fc2's input gradient by it inside that matmul (``ops/linear.py``)."""
    return _run("gelu_tanh_with_derivative", gelu_tanh_with_derivative_ref, x)


def implicit_filter(*args) -> Tensor:
    """``implicit_filter_ref(z, t, layers, freq, w_out, decay, shift)`` compiled whole on the CPU, its backward
    generated with it (AOTAutograd): the filter is a chain of small ops on (taps, order) tensors that cost more in
    dispatch and autograd's bookkeeping than in arithmetic at 1k taps, and re-read memory between ops at 16k."""
    return _run("implicit_filter", implicit_filter_ref, *args)


class _GeluTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return _run("gelu_tanh", gelu_tanh_ref, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return gelu_tanh_backward(grad, x)


def gelu_tanh(x: Tensor) -> Tensor:
    """tanh-GELU with autograd, through the fused kernels on the CPU (``F.gelu(x, approximate="tanh")`` elsewhere)."""
    if x.device.type != "cpu" or not USE_COMPILED:
        return gelu_tanh_ref(x)
    return _GeluTanh.apply(x)
