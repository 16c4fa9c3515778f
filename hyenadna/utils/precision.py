"""Numeric precision, one place: the weights' dtype on load, and autocast for the dense projections.

The FFT convolution and the residual stream stay float32 in every mode and on every device (the ops cast at their
boundaries); only the projections and the MLP run in the lower precision.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
_PRECISION_OF = {torch.bfloat16: "bf16", torch.float16: "fp16"}
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(map(repr, PRECISIONS))}")
    return precision


def check_precision_with_dtype(precision: str, dtype: str | torch.dtype) -> None:
    """Autocast to one half type cannot run weights held in the other (torch fails inside autocast's casts)."""
    weights, compute = parse_dtype(dtype), _AUTOCAST.get(check_precision(precision))
    if compute is not None and weights != torch.float32 and weights != compute:
        name = str(weights).removeprefix("torch.")
        raise ValueError(
            f"precision={precision!r} with dtype={name!r}: autocast to {str(compute).removeprefix('torch.')} cannot "
            f"run {name} weights; choose precision={_PRECISION_OF[weights]!r}, or float32 weights"
        )


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A weights dtype from its name ("float32", "bfloat16", "float16", or fp32/bf16/fp16) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"dtype={dtype}: choose float32, bfloat16 or float16")
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r}: choose 'float32', 'bfloat16' or 'float16'")
    return _DTYPES[dtype]


def cpu_has_native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware: AMX tiles, or AVX512-BF16's dot products (torch's own checks)."""
    checks = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(bool(check and check()) for check in checks)


def emulated_bf16(device: torch.device | str, precision: str) -> str | None:
    """Why bf16 is slow here, or None: on a CPU without AMX or AVX512-BF16, oneDNN emulates bf16 matmuls, and our
    training step ran at 0.06x its fp32 speed on an AVX2 AMD EPYC (Zen 1) and 0.44-0.49x on an AVX-512 Ice Lake,
    against 1.2-1.5x with native bf16 (README, "The training step")."""
    if precision != "bf16" or torch.device(device).type != "cpu" or cpu_has_native_bf16():
        return None
    return (
        "bf16 on a CPU without native bf16 (no AMX or AVX512-BF16): its matmuls are emulated, and the training step "
        "measured 0.06-0.5x its fp32 speed on such CPUs; fp32 is faster here"
    )


def autocast(device: torch.device | str, precision: str, warn_emulated: bool = True):
    """Autocast of the dense projections to bf16 or fp16 on ``device``; a no-op in fp32. Warns (once per call site,
    by Python's default filter) where bf16 is emulated and so slower than fp32, unless the caller has said so."""
    check_precision(precision)
    device_type = torch.device(device).type
    if precision == "fp32":
        return contextlib.nullcontext()
    if warn_emulated and (slow := emulated_bf16(device_type, precision)):  # not probed at all where told not to
        warnings.warn(slow, RuntimeWarning, stacklevel=2)
    return torch.autocast(device_type, _AUTOCAST[precision])


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 training on a GPU, where small gradients would underflow; disabled (a pass-through)
    otherwise: bf16 has fp32's range, and CPU training keeps fp32 master weights without it."""
    device_type = torch.device(device).type
    return torch.amp.GradScaler(device_type, enabled=precision == "fp16" and device_type == "cuda")
