"""Inference across processes and nodes: ``torchrun --nproc_per_node=N -m hyenadna.cli embed|score|vep ...``
(and ``ism --bed``, whose ranks write their regions' maps straight into the shared output folder).

The input is cut into the same blocks a single process works through (``step_size`` records for embed and score,
64 VCF records for vep), and block k goes to rank k % world. Each rank runs its blocks on its own device and saves each
block's result under ``.<output>.parts/`` beside the output (so across nodes the output's folder must be on a shared
file system). Once every rank has finished, rank 0 replays the blocks in input order through the same writer a single
process uses, so the output is identical, byte for byte, to a single-process run; then the parts are removed.

The ranks meet at barriers and exchange only the names of the files each wrote (gloo, on the CPU, whatever device
they compute on), which rank 0 checks it can see before it merges: no tensor crosses processes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np

from hyenadna.utils.io import atomic_path


def world() -> tuple[int, int]:
    """(rank, world size) of this process as torchrun sets them; (0, 1) for a plain run."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def refuse_unsplit(args) -> None:
    """Under torchrun, a command that does not split its work across the processes would run whole in each of them,
    all writing the same outputs: an error instead (``args``: the parsed command line)."""
    _, size = world()
    if size == 1:
        return
    command = args.command
    if command in ("embed", "vep", "pretrain") or (command == "score" and not getattr(args, "track", None)):
        return
    if command == "ism" and getattr(args, "bed", None):
        return
    what = f"{command} --track" if command == "score" else "ism without --bed" if command == "ism" else command
    raise ValueError(
        f"{what} runs in one process: under torchrun each of the {size} processes would run all of it and write the "
        "same outputs. Run it without torchrun (embed, score, vep, ism --bed and pretrain split their work across "
        "torchrun's processes; benchmark --workers N runs its runs on N GPUs)"
    )


def torchrun_threads_note(device: str | None) -> str | None:
    """torchrun gives each of a node's processes OMP_NUM_THREADS=1 unless the user set it: right for GPU ranks, one
    core each for CPU ones. A note with the --threads that gives each CPU rank its share of the cores, or None."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if local < 2 or os.environ.get("OMP_NUM_THREADS") != "1" or int(os.environ.get("LOCAL_RANK", 0)) != 0:
        return None
    from hyenadna.utils.device import resolve_device

    if resolve_device(device).type != "cpu":
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = cores // local
    if share < 2:
        return None
    return (
        f"each of this node's {local} processes computes on 1 CPU thread (OMP_NUM_THREADS=1, which torchrun sets); "
        f"--threads {share} gives each its share of the {cores} cores"
    )


class Sharding:
    """Which blocks this rank computes, where their results wait, and the merge on rank 0."""

    def __init__(self, output: str | None, command: str):
        self.rank, self.world = world()
        self.active = self.world > 1
        self.parts: Path | None = None
        self.written: list[str] = []  # the files this rank wrote for rank 0 to read (block parts, ism's maps)
        self.blocks_saved: list[int] = []
        if not self.active:
            return
        if not output:
            raise ValueError(
                f"{command} across {self.world} processes needs -o OUTPUT (on a file system every rank sees)"
            )
        import torch.distributed as dist

        if not dist.is_initialized():
            # the ranks only wait for each other; a rank that fails makes torchrun stop the others
            dist.init_process_group("gloo", timeout=timedelta(hours=12))
        out = Path(output)
        self.parts = out.parent / f".{out.name}.parts"
        if self.rank == 0:
            shutil.rmtree(self.parts, ignore_errors=True)  # left by an interrupted run; never the output itself
            self.parts.mkdir(parents=True)
        self.barrier()

    def device(self, requested: str) -> str:
        """This rank's device: "cuda"/"auto" become cuda:LOCAL_RANK in a distributed run."""
        if not self.active:
            return requested
        from hyenadna.utils.device import rank_device

        return str(rank_device(requested))

    @property
    def note(self) -> str:
        """For a command's summary line: which share this process computed."""
        return f" (rank {self.rank} of {self.world}: its share; rank 0 wrote the merged output)" if self.active else ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mine(self, block: int) -> bool:
        return block % self.world == self.rank

    def save(self, block: int, arrays: dict[str, np.ndarray | list[np.ndarray]], rows: list | None = None) -> None:
        """One block's result: named arrays (a list of arrays for ragged data) and JSON rows, written atomically as
        .npz and .json (no pickle)."""
        flat = {}
        for name, value in arrays.items():
            if isinstance(value, list):
                flat[f"{name}.count"] = np.array(len(value))
                flat |= {f"{name}.{i}": np.asarray(v) for i, v in enumerate(value)}
            else:
                flat[name] = np.asarray(value)
        with atomic_path(self.parts / f"{block:09d}.json") as tmp:
            tmp.write_text(json.dumps(rows if rows is not None else []))
        with atomic_path(self.parts / f"{block:09d}.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **flat)
        self.blocks_saved.append(block)
        self.wrote(self.parts / f"{block:09d}.json", self.parts / f"{block:09d}.npz")

    def wrote(self, *paths: Path) -> None:
        """Files this rank leaves for rank 0, which checks at the end that it sees every one."""
        self.written += [str(p) for p in paths]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def _gather_and_check(self) -> list[int]:
        """Every rank's saved blocks, in order; on rank 0, an error naming a file another rank wrote that this one
        cannot see (the output's folder is not shared across nodes) instead of a merge that silently leaves it out.
        Each file is looked up by name, not found by listing the folder: a network file system may serve a stale
        listing of a folder other nodes wrote to."""
        import torch.distributed as dist

        gathered: list = [None] * self.world
        dist.all_gather_object(gathered, (self.blocks_saved, self.written))
        error = [None]
        if self.is_main:
            for rank, (_, files) in enumerate(gathered):
                missing = [f for f in files if not os.path.exists(f)]
                if missing:
                    error[0] = (
                        f"rank {rank} wrote {len(missing)} file(s) that rank 0 cannot see, e.g. {missing[0]}: the "
                        "output's folder must be on a file system every rank sees (shared across nodes); nothing "
                        "was merged"
                    )
                    break
        dist.broadcast_object_list(error, src=0)  # every rank fails with it, so that every node's job reports it
        if error[0]:
            raise FileNotFoundError(error[0])
        return sorted(b for blocks, _ in gathered for b in blocks)

    def blocks(self, ids: list[int]) -> Iterator[tuple[dict, list]]:
        """On rank 0, after every rank has saved its blocks: (arrays, rows) per block, in block (input) order."""
        for path in (self.parts / f"{block:09d}.npz" for block in ids):
            with np.load(path, allow_pickle=False) as z:
                flat = {k: z[k] for k in z.files}
            arrays: dict = {}
            for key in [k for k in flat if k.endswith(".count")]:
                name = key.removesuffix(".count")
                arrays[name] = [flat.pop(f"{name}.{i}") for i in range(int(flat.pop(key)))]
            arrays |= flat
            yield arrays, json.loads(path.with_suffix(".json").read_text())

    def finish(self, merge: Callable[[Iterator], None]) -> None:
        """Wait for every rank, let rank 0 merge the blocks in order, then remove the parts."""
        try:
            self.barrier()
            ids = self._gather_and_check()
            if self.is_main:
                merge(self.blocks(ids))
        finally:
            if self.is_main:
                shutil.rmtree(self.parts, ignore_errors=True)
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
