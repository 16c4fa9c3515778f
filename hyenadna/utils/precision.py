"""Numeric precision, one place: the weights' dtype on load, and autocast for the dense projections.

The FFT convolution and the residual stream stay float32 in every mode and on every device (the ops cast at their
boundaries); only the projections and the MLP run in the lower precision.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
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


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A weights dtype from its name ("float32", "bfloat16", "float16", or fp32/bf16/fp16) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"dtype={dtype}: choose float32, bfloat16 or float16")
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r}: choose 'float32', 'bfloat16' or 'float16'")
    return _DTYPES[dtype]


def autocast(device: torch.device | str, precision: str):
    """Autocast of the dense projections to bf16 or fp16 on ``device``; a no-op in fp32."""
    check_precision(precision)
    device_type = torch.device(device).type
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, _AUTOCAST[precision])


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 training on a GPU, where small gradients would underflow; disabled (a pass-through)
    otherwise: bf16 has fp32's range, and CPU training keeps fp32 master weights without it."""
    device_type = torch.device(device).type
    return torch.amp.GradScaler(device_type, enabled=precision == "fp16" and device_type == "cuda")
