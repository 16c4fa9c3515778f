"""Why a fine-tuning process's heap grows: every allocation of one fine-tuning run, traced, then replayed.

A worker fine-tuning on sequences of many lengths grew its heap by 1-1.5 GB a run while it held about 1 GB in use.
This records each malloc, free and aligned allocation of one run (``heap_trace.c``, built with the system's C compiler
and loaded with LD_PRELOAD; glibc only), replays them and reports: how far the heap's top rose against the bytes in use
when it did, and, at the largest step, what lies between the holes of 4 MB or more that the heap could not reuse,
by the library and function that allocated it (``addr2line``). That is how oneDNN's cached primitives were found
(``utils.memory.bound_onednn_caches``):

    python benchmarks/heap_trace.py --onednn-cache 1024 --out benchmarks/results/heap_trace_1024.json
    python benchmarks/heap_trace.py --onednn-cache 64 --out benchmarks/results/heap_trace_64.json

One run of the benchmark's fine-tuning (the bundled model, ``--task``, ``--max-train`` rows, ``--epochs``, one
learning rate, one thread) takes about a minute and a half traced; the trace takes 24 bytes an allocation (~8M a run).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
FREE = 0
BIG_HOLE = 4 << 20


def build_shim(folder: Path) -> Path:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("heap_trace needs a C compiler (cc or gcc) to build heap_trace.c")
    shim = folder / "heap_trace.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(shim), str(HERE / "heap_trace.c")], check=True)
    return shim


def child(args) -> None:
    """Runs under LD_PRELOAD: one fine-tuning run, traced; writes the trace, the memory map and the heap's bounds."""
    import ctypes

    if args.onednn_cache:  # before torch's first oneDNN call
        from hyenadna.utils.memory import onednn_cache_settings

        os.environ.update(onednn_cache_settings(args.onednn_cache))
    import torch

    from hyenadna.benchmark.runner import BenchmarkConfig, run_finetune
    from hyenadna.benchmark.tasks import load_task

    torch.set_num_threads(1)
    shim = ctypes.CDLL(None)  # the preloaded library's symbols
    shim.heap_trace_stop.argtypes, shim.heap_trace_stop.restype = [ctypes.c_char_p], ctypes.c_int64
    libc = ctypes.CDLL("libc.so.6")
    libc.sbrk.argtypes, libc.sbrk.restype = [ctypes.c_long], ctypes.c_void_p
    task = load_task(Path(args.tasks_dir) / args.task).subsample(args.max_train, 100, seed=0)
    cfg = BenchmarkConfig.quick(tasks_dir=args.tasks_dir, out_dir="", epochs=args.epochs, finetune_lrs=[1e-4])
    heap_start = libc.sbrk(0)
    if shim.heap_trace_start() != 0:
        raise SystemExit("heap_trace: could not reserve the trace buffer")
    run_finetune(task, 0, cfg, pretrained=True)
    seen = shim.heap_trace_stop(str(args.folder / "trace.bin").encode())
    (args.folder / "maps.txt").write_text(Path("/proc/self/maps").read_text())
    info = {"allocations_seen": seen, "heap_start": heap_start, "heap_end": libc.sbrk(0)}
    (args.folder / "run.json").write_text(json.dumps(info))


def read_trace(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kind, size, address, caller) per record."""
    raw = np.fromfile(path, dtype=np.uint64).reshape(-1, 3)
    return (raw[:, 0] >> 56).astype(np.int64), (raw[:, 0] & ((1 << 56) - 1)).astype(np.int64), raw[:, 1], raw[:, 2]


def replay(kind, size, address, caller, lo: int, hi: int, stop: int | None = None):
    """Replays the records up to ``stop`` (default all). Returns the live allocations inside [lo, hi) as {address:
    (size, index, caller)}, and each rise of more than 1 MB in the highest end of any allocation there (the heap's
    top) as (index, top above lo, bytes in use there, the request's size)."""
    live, rises, top, in_use = {}, [], lo, 0
    for i in range(len(kind) if stop is None else stop):
        a = int(address[i])
        inside = lo <= a < hi
        if kind[i] == FREE:
            was = live.pop(a, None)
            if was is not None and inside:
                in_use -= was[0]
            continue
        s = int(size[i])
        live[a] = (s, i, int(caller[i]))
        if inside:
            in_use += s
            if a + s > top:
                if a + s - top > 1 << 20:
                    rises.append((i, a + s - lo, in_use, s))
                top = a + s
    return {a: v for a, v in live.items() if lo <= a < hi}, rises


def holes_and_pins(live: dict, lo: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """The gaps of at least BIG_HOLE between live allocations (sorted by address), and the allocations that lie
    between the first and the last such gap, as (address, size, caller)."""
    ordered = sorted((a, s, c) for a, (s, _, c) in live.items())
    gaps, end = [], lo
    for k, (a, s, _) in enumerate(ordered):
        if a - end >= BIG_HOLE:
            gaps.append((a - end, k))
        end = max(end, a + s)
    if len(gaps) < 2:
        return [g for g, _ in gaps], []
    return [g for g, _ in gaps], ordered[gaps[0][1] : gaps[-1][1]]


class Symbols:
    """Caller address -> "library:function", from the process's memory map and addr2line where it is installed."""

    def __init__(self, maps_text: str):
        self.maps = []
        for line in maps_text.splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[5].startswith("/"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                self.maps.append((start, end, parts[5], int(parts[2], 16)))
        self.addr2line = shutil.which("addr2line")
        self.cache: dict[int, str] = {}

    def name(self, address: int) -> str:
        if address not in self.cache:
            self.cache[address] = self._resolve(address)
        return self.cache[address]

    def _resolve(self, address: int) -> str:
        for start, end, path, offset in self.maps:
            if start <= address < end:
                where = address - start + offset
                library = Path(path).name
                if self.addr2line:
                    out = subprocess.run(
                        [self.addr2line, "-f", "-C", "-e", path, hex(where)], capture_output=True, text=True
                    ).stdout.split("\n")[0]
                    if out and out != "??":
                        return f"{library}:{out.split('(')[0]}"
                return f"{library}+{where:#x}"
        return hex(address)


def analyse(folder: Path) -> dict:
    run = json.loads((folder / "run.json").read_text())
    kind, size, address, caller = read_trace(folder / "trace.bin")
    lo, hi = run["heap_start"], run["heap_end"]
    live_end, rises = replay(kind, size, address, caller, lo, hi)
    symbols = Symbols((folder / "maps.txt").read_text())
    result = {
        "allocations_seen": run["allocations_seen"],
        "records": len(kind),
        "heap_mb": round((hi - lo) / 2**20),
        "in_use_at_end_mb": round(sum(s for s, _, _ in live_end.values()) / 2**20),
        "rises": [{"record": i, "top_mb": round(t / 2**20), "in_use_mb": round(u / 2**20)} for i, t, u, _ in rises],
    }
    if rises:
        i, top, in_use, _ = max(rises, key=lambda r: r[1] - r[2])  # where the most was free yet unusable
        live, _ = replay(kind, size, address, caller, lo, hi, stop=i)
        gaps, pins = holes_and_pins(live, lo)
        by_caller = collections.defaultdict(lambda: [0, 0])
        for _, s, c in pins:
            by_caller[symbols.name(c)][0] += 1
            by_caller[symbols.name(c)][1] += s
        result["worst_rise"] = {
            "record": i,
            "top_mb": round(top / 2**20),
            "in_use_mb": round(in_use / 2**20),
            "holes_of_4mb_or_more": len(gaps),
            "holes_mb": round(sum(gaps) / 2**20),
            "between_the_holes": [
                {"allocated_by": name, "allocations": n, "kb": round(b / 1024)}
                for name, (n, b) in sorted(by_caller.items(), key=lambda x: -x[1][0])[:12]
            ],
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks-dir", default="../shared/benchmarks")
    ap.add_argument("--task", default="gb_human_ocr_ensembl", help="a task of many sequence lengths")
    ap.add_argument("--max-train", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--onednn-cache", type=int, help="oneDNN's primitive caches at this many primitives each")
    ap.add_argument("--out", type=Path, help="write the JSON here too")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.folder = args.child
        child(args)
        return
    if not sys.platform.startswith("linux"):
        raise SystemExit("heap_trace needs Linux with glibc")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "LD_PRELOAD": str(build_shim(folder))}
        cmd = [sys.executable, __file__, "--child", str(folder), "--tasks-dir", args.tasks_dir, "--task", args.task]
        cmd += ["--max-train", str(args.max_train), "--epochs", str(args.epochs)]
        cmd += ["--onednn-cache", str(args.onednn_cache)] if args.onednn_cache else []
        subprocess.run(cmd, check=True, env=env)
        result = {"task": args.task, "max_train": args.max_train, "epochs": args.epochs}
        result["onednn_cache"] = args.onednn_cache
        result.update(analyse(folder))
    worst = result.get("worst_rise", {})
    print(f"heap {result['heap_mb']} MB at the end of the run, {result['in_use_at_end_mb']} MB of it in use")
    if worst:
        print(
            f"worst rise: top at {worst['top_mb']} MB with {worst['in_use_mb']} MB in use; "
            f"{worst['holes_of_4mb_or_more']} holes of 4 MB or more ({worst['holes_mb']} MB) between:"
        )
        for row in worst["between_the_holes"]:
            print(f"  {row['allocations']:7d} allocations, {row['kb']:9d} KB  {row['allocated_by'][:100]}")
    if args.out:
        from hyenadna.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
