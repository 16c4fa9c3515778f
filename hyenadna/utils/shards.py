"""Tensors split across safetensors files of bounded size, plus the one file that lists them, written so that a reader
never pairs a list with shards it does not describe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from safetensors.torch import save_file
from torch import Tensor

from hyenadna.utils.io import atomic_path, atomic_write_text

MAX_SHARD_BYTES = 9_500_000  # under the 10 MB a file in a git repository (ours, or a user's) may take


def split_by_size(tensors: dict[str, Tensor], max_bytes: int) -> list[dict[str, Tensor]]:
    """Consecutive groups of ``tensors`` of at most ``max_bytes`` each (a larger tensor gets a shard of its own)."""
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def write_sharded(
    folder: Path,
    shards: dict[str, dict[str, Tensor]],
    index: Path,
    index_text: str,
    stale: Callable[[Path], bool],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``shards`` (file name -> tensors) into ``folder``, then ``index``; remove files ``stale`` picks that the
    new shards do not replace.

    The old index goes first: shards keep their names from one write to the next, so an old index beside half-rewritten
    shards would describe a mixture. Interrupted, the folder has no index, and a reader fails with a clear error."""
    folder.mkdir(parents=True, exist_ok=True)
    index.unlink(missing_ok=True)
    for name, tensors in shards.items():
        with atomic_path(folder / name) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    atomic_write_text(index, index_text)
    for path in folder.iterdir():
        if path.name not in shards and path != index and stale(path):
            path.unlink()
