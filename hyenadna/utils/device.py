from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """ "auto" picks CUDA when present; asking for CUDA on a machine without it is a clear error, not a crash later."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here; use device='cpu'")
    return dev
