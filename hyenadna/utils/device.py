from __future__ import annotations

import contextlib
import os

import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """ "auto" picks CUDA when present; asking for CUDA on a machine without it is a clear error, not a crash later."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r}: give 'auto', 'cpu', 'cuda' (or 'cuda:N') or 'mps'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here; use device='cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()  # torch's own error comes later, as "invalid device ordinal"
        raise ValueError(f"device={device!r}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was asked for, but Apple's MPS is not available here; use device='cpu'")
    return dev


def rank_device(device: str | torch.device | None, local_rank: int | None = None) -> torch.device:
    """The device one process of a torchrun job uses: "cuda" or "auto" on a CUDA machine becomes cuda:LOCAL_RANK, so
    ranks never pile onto cuda:0. An explicit index ("cuda:1") is kept; CPU is CPU. Sets the current CUDA device, which
    NCCL collectives and bare .cuda() calls follow."""
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device)
    if dev.type == "cuda":
        if dev.index is None:
            count = torch.cuda.device_count()
            if local_rank >= count:
                raise ValueError(f"LOCAL_RANK {local_rank} has no GPU: this node has {count}")
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """Every RNG a training step draws from: the CPU generator and, where CUDA has been used, each GPU's."""
    state: dict = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def gather_rng_states() -> list[dict] | None:
    """Every rank's ``rng_state()``, in rank order, on every rank of a distributed run (a collective: all ranks call
    it); None in a single process. Rank 0's own view is not enough: each rank advances the generator of its own GPU
    (dropout), which rank 0's process holds only as seeded, never drawn from."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    states: list = [None] * dist.get_world_size()
    dist.all_gather_object(states, rng_state())
    return states


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda:
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < len(cuda):
            import warnings

            warnings.warn(
                f"the checkpoint holds the RNG state of {len(cuda)} GPU(s) and this machine has {have}: the run "
                "continues, but not bit for bit as it would have on the same GPUs",
                stacklevel=2,
            )
        for index, gpu_state in enumerate(cuda[:have]):
            torch.cuda.set_rng_state(gpu_state, index)


@contextlib.contextmanager
def seeded(seed: int):
    """Run the body with the RNGs seeded by ``seed``, and give the caller back every generator as it was. With CUDA
    in use, that includes each GPU's (``fork_rng(devices=[])`` plus ``manual_seed`` would overwrite them); with CUDA
    not yet in use, only the CPU generator is seeded, so the user's first GPU draws keep their own seed."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        if cuda:
            torch.manual_seed(seed)
        else:
            torch.default_generator.manual_seed(seed)
        yield
