"""Dense projections: ``y = act(x @ W^T + b)``, with act the identity or tanh-GELU.

``linear_ref`` is plain ``F.linear`` (torch's CPU fp32 matmul is MKL's sgemm). ``linear`` is the fast path: oneDNN's
fused linear + post-op, which torch ships for its own compiler. On these AMD EPYC machines it ran fp32 projections at
~2x MKL's speed and the MLP's fc1 + GELU at ~2x (benchmarks/matmul.py), because MKL does not use its AVX-512 kernels
there. Elsewhere MKL may win, so in fp32 the library is the one measured faster on this machine, for inference and
for training separately (``ops/autotune.py``). With autograd, ``linear`` runs the forward and the input's gradient
through the same op, and the weight's gradient through ``torch.mm`` (neutral on AMD EPYC in fp32, 1.04-1.05x a
training step on an Intel Xeon) or, in fp32 where measured faster, through oneDNN in the orientation it runs fast in
(``weight_gradient``). out_proj, whose input the gating leaves channels first, trains through ``torch.addmm`` /
``torch.mm`` or, in fp32 where measured faster, oneDNN reading the same operands in place (``out_proj_train``).
The block's MLP trains as one node (``mlp``, ``_Mlp``) that keeps GELU's derivative
from the forward and multiplies it in inside the backward's matmul (a 1.064x faster tiny-1k step in bf16, 1.026x at
16k, neutral in fp32). Where the op is missing (a torch built without oneDNN), off the CPU, or for dtypes other than
fp32/bf16, ``linear`` falls back to ``linear_ref``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from hyenadna.ops.fused import gelu_tanh, gelu_tanh_with_derivative

# Tests switch the fast path off to compare it with the reference on the same inputs.
USE_ONEDNN = True
# Inference on at most this many rows (a decoding step's tokens) runs F.linear: oneDNN's call costs more than such a
# product (D 256, fp32, Zen 5: oneDNN at 0.27-0.60x MKL's speed on one row, 0.41-0.91x on two, 0.56-1.34x on four;
# benchmarks/matmul.py --tokens 1, 2 and 4, results/matmul_tokens*_zen5.json); generation ran 1.12-1.21x faster so
# from 1k and 8k of context, 1.00-1.09x at 16k, in two runs (benchmarks/generate_speed.py --small-rows-ab)
SMALL_INFERENCE_ROWS = 2


def linear_ref(x: Tensor, weight: Tensor, bias: Tensor | None = None, gelu: bool = False) -> Tensor:
    """Reference path: ``F.linear``, then tanh-GELU if asked."""
    y = F.linear(x, weight, bias)
    return F.gelu(y, approximate="tanh") if gelu else y


@functools.cache
def onednn_available(dtype: torch.dtype = torch.float32) -> bool:
    """The fused op exists and runs here in ``dtype`` (checked once per dtype on a tiny input). bf16 needs a CPU
    with AVX-512 (or AMX); on AVX2-only CPUs oneDNN cannot build the bf16 kernel, and ``F.linear`` is used."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    try:
        x, w = torch.ones(2, 3, dtype=dtype), torch.ones(4, 3, dtype=dtype)
        return torch.equal(torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], ""), x @ w.T)
    except (RuntimeError, NotImplementedError):
        return False


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, gelu: bool = False) -> Tensor:
    """Fast path, same contract as ``linear_ref``. Under CPU autocast it computes in bf16 like ``F.linear`` would,
    since the oneDNN op is outside autocast's reach."""
    x, weight, bias = _matmul_operands(x, weight, bias)
    if not _fast_path_applies(x, weight, bias):
        return linear_ref(x, weight, bias, gelu)
    train = _needs_grad(x, weight, bias)
    if x.dtype == torch.float32 and not _onednn_measured_faster(train):
        return linear_ref(x, weight, bias, gelu)
    if not train and x.numel() <= SMALL_INFERENCE_ROWS * x.shape[-1]:
        return linear_ref(x, weight, bias, gelu)
    if train:
        y = _Linear.apply(x, weight, bias)
        return gelu_tanh(y) if gelu else y
    return _onednn_linear(x, weight, bias, gelu)


def linear_channels_first(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``linear(x.T, weight, bias)`` for an input stored channels first, x (in_features, N) -> (N, out_features), as
    the Hyena operator's gating leaves out_proj's input in training. ``torch.addmm`` (or oneDNN, ``out_proj_forward``)
    reads x transposed in place, and with autograd the input's gradient comes back channels first from one matmul
    (W^T dy^T, ``out_proj_input_gradient``), where a token-major input cost a transposed write of the gating product
    and a transposed copy of its gradient (1.9x the time of these steps at tiny-1k, 1.8x at 16k)."""
    x, weight, bias = _matmul_operands(x, weight, bias)
    if not _fast_path_applies(x, weight, bias):
        return linear_ref(x.T, weight, bias)
    if _needs_grad(x, weight, bias):
        return _LinearChannelsFirst.apply(x, weight, bias)
    return _mm_channels_first(x, weight, bias)


def mlp_ref(x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None) -> Tensor:
    """Reference path of the block's MLP: ``F.linear``, tanh-GELU, ``F.linear``."""
    return linear_ref(linear_ref(x, w1, b1, gelu=True), w2, b2)


def mlp(x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None) -> Tensor:
    """Fast path of ``mlp_ref``: with autograd on the oneDNN path, one node (``_Mlp``) whose backward takes fc1's
    output gradient from a single matmul; otherwise ``linear`` twice (fc1 with its GELU fused in inference)."""
    x, w1, b1 = _matmul_operands(x, w1, b1)
    _, w2, b2 = _matmul_operands(x, w2, b2)
    if (
        _needs_grad(x, w1, b1, w2, b2)
        and onednn_trains(x, w1, b1)
        and onednn_trains(x, w2, b2)
        and _multiply_post_op_available(x.dtype)
    ):
        return _Mlp.apply(x, w1, b1, w2, b2)
    return linear(linear(x, w1, b1, gelu=True), w2, b2)


def onednn_trains(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    """Training projections on these operands (already cast by ``_matmul_operands``) take the oneDNN path: bf16
    always, fp32 where it was measured faster than MKL here."""
    return _fast_path_applies(x, weight, bias) and (x.dtype == torch.bfloat16 or _onednn_measured_faster(train=True))


def _matmul_operands(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The operands cast as autocast would cast them for a matmul (the fast ops are outside its reach)."""
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    elif x.dtype != weight.dtype:  # weights loaded in bf16/fp16 meet the fp32 residual stream or FFT output
        x = x.to(weight.dtype)
    return x, weight, bias


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _mm_channels_first(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.mm(x.T, weight.T) if bias is None else torch.addmm(bias, x.T, weight.T)


class _LinearChannelsFirst(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out_proj_forward(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        grad_x = out_proj_input_gradient(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.mm(grad.T, x.T) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def out_proj_forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (in, N) channels first -> (N, out), in training. ``torch.addmm`` (MKL in fp32) by default; in fp32 where
    this machine measured it faster (``ops/autotune.py``, ``out_proj_train``), oneDNN reading x transposed in place
    (on an AMD EPYC Zen 5, D 256 over 8,192 tokens: 1.6x)."""
    if _out_proj_onednn(x):
        return _onednn_linear(x.T, weight, bias)
    return _mm_channels_first(x, weight, bias)


def out_proj_input_gradient(grad: Tensor, weight: Tensor) -> Tensor:
    """W^T dy^T, out_proj's input gradient (N, out) -> (in, N), channels first as its input came: ``torch.mm`` by
    default, oneDNN where ``out_proj_train`` says so (on the same Zen 5: 2.5x)."""
    if _out_proj_onednn(grad):
        return _onednn_linear(weight.T, grad, None)
    return torch.mm(weight.T, grad.T)


def _out_proj_onednn(x: Tensor) -> bool:
    from hyenadna.ops.autotune import tuning

    return x.dtype == torch.float32 and tuning().out_proj_train == "onednn" and onednn_available(torch.float32)


def _onednn_measured_faster(train: bool) -> bool:
    """This machine's measured choice for fp32 projections (ops/autotune.py): oneDNN beat MKL on AMD EPYC, not
    necessarily elsewhere."""
    from hyenadna.ops.autotune import tuning

    tuned = tuning()
    return (tuned.projection_train if train else tuned.projection_inference) == "onednn"


def _onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None, gelu: bool = False) -> Tensor:
    if gelu:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh")
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _Linear(torch.autograd.Function):
    """y = x W^T + b with the backward's dy W through the oneDNN op as well, and dy^T x through ``torch.mm``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        return _linear_grads(ctx.needs_input_grad, grad, x, weight, ctx.has_bias)


def _linear_grads(
    needs: tuple[bool, ...], grad: Tensor, x: Tensor, weight: Tensor, has_bias: bool
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Gradients of y = x W^T + b from dy: dy W through the oneDNN op, dy^T x through ``torch.mm``, whose matmul reads
    the transposed operand in place where the fused op copies it first (1.3-2.5x faster alone, a 1.04-1.05x faster
    training step in bf16 and fp32 on an Intel Xeon), and dy summed for b."""
    grad2d = grad.reshape(-1, grad.shape[-1])
    grad_x = _onednn_linear(grad2d, weight.T, None).view(x.shape) if needs[0] else None
    grad_w = weight_gradient(grad2d, x.reshape(-1, x.shape[-1])) if needs[1] else None
    grad_b = grad2d.sum(0) if has_bias and needs[2] else None
    return grad_x, grad_w, grad_b


def weight_gradient(grad2d: Tensor, x2d: Tensor) -> Tensor:
    """dy^T x, the weight's gradient, (out, N) x (N, in) -> (out, in). ``torch.mm`` by default. In fp32, where this
        machine measured it faster (``ops/autotune.py``, ``weight_gradient``), oneDNN with the operand of fewer features
        as the rows of its product, both read transposed in place: on an AMD EPYC Zen 5, 1.4-1.9x ``torch.mm`` (MKL,
        without its AVX-512 kernels there) for the bundled model's in_proj, fc1 and fc2, while the other orientation ran
        slower than ``torch.mm``. Equal feature counts (out_proj) stay on ``torch.mm``. (in_proj's fused backward in
    ops/short_conv.py sends its input's gradient through here too, the roles swapped: 2.1x there on the same Zen 5.)"""
    out_features, in_features = grad2d.shape[1], x2d.shape[1]
    if (
        grad2d.dtype == torch.float32
        and out_features != in_features
        and _weight_gradient_choice() == "onednn"
        and onednn_available(torch.float32)
    ):
        if out_features < in_features:
            return _onednn_linear(grad2d.T, x2d.T, None)
        return _onednn_linear(x2d.T, grad2d.T, None).T
    return torch.mm(grad2d.T, x2d)


def _weight_gradient_choice() -> str:
    from hyenadna.ops.autotune import tuning

    return tuning().weight_gradient


class _Mlp(torch.autograd.Function):
    """fc2(gelu(fc1(x))) for training, keeping GELU's derivative from the forward so that the backward's gradient of
    fc1's output is one oneDNN matmul with a multiply post-op, (dy W2) * gelu'(h): no separate GELU backward pass
    over the (N, d_inner) tensors and no recomputed or stored pre-activation."""

    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None) -> Tensor:
        x2d = x.reshape(-1, x.shape[-1])
        act, slope = gelu_tanh_with_derivative(_onednn_linear(x2d, w1, b1))
        ctx.save_for_backward(x2d, act, slope, w1, w2)
        ctx.has_bias = b1 is not None, b2 is not None
        return _onednn_linear(act, w2, b2).view(*x.shape[:-1], w2.shape[0])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x2d, act, slope, w1, w2 = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad2d = grad.reshape(-1, grad.shape[-1])
        _, grad_w2, grad_b2 = _linear_grads((False, *needs[3:]), grad2d, act, w2, ctx.has_bias[1])
        if not any(needs[:3]):
            return None, None, None, grad_w2, grad_b2
        grad_h = torch.ops.mkldnn._linear_pointwise.binary(grad2d, slope, w2.T, None, "mul")
        grad_x, grad_w1, grad_b1 = _linear_grads(needs[:3], grad_h, x2d, w1, ctx.has_bias[0])
        grad_x = None if grad_x is None else grad_x.view(*grad.shape[:-1], x2d.shape[-1])
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2


@functools.cache
def _multiply_post_op_available(dtype: torch.dtype) -> bool:
    """oneDNN's matmul with a multiply post-op (``_linear_pointwise.binary``) exists and computes (x W^T) * other."""
    try:
        x, w, other = torch.ones(2, 3, dtype=dtype), torch.ones(4, 3, dtype=dtype), torch.full((2, 4), 2.0, dtype=dtype)
        return torch.equal(torch.ops.mkldnn._linear_pointwise.binary(x, other, w, None, "mul"), 2 * (x @ w.T))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _fast_path_applies(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return (
        USE_ONEDNN
        # under torch.compile, inductor lowers this op only for frozen (constant) weights: let it fuse F.linear itself
        and not torch.compiler.is_compiling()
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and all(t.dtype == x.dtype for t in tensors)
        and onednn_available(x.dtype)
    )


def matmul_dtype(x: Tensor) -> torch.dtype:
    """The dtype autocast would give a matmul on ``x``'s device (bf16 under CPU autocast), else x's own."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype
