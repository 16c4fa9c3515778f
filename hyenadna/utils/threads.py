"""How many CPU threads to use: on a shared machine, not more than the cores other processes leave idle.

torch starts one thread per physical core. When another process keeps a core busy, one of ours shares it, and every
parallel region waits for that thread at its barrier: on 2 AMD EPYC cores with one core busy, tiny-1k inference ran
10-30x slower with 2 threads than with 1 (issue #19). ``idle_cores`` samples /proc/stat for a moment and counts the
cores that were idle.
"""

from __future__ import annotations

import os
import time


def _cpu_times() -> dict[str, tuple[int, int]] | None:
    """Per CPU (cpu0, cpu1, ...): (idle jiffies, total jiffies) from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *fields = line.split()
            values = [int(x) for x in fields]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            out[name] = (idle, sum(values[:8]))
    return out


def idle_cores(sample_seconds: float = 0.15, busy_above: float = 0.5) -> int | None:
    """How many of the CPUs this process may run on were idle (busy less than ``busy_above`` of the time) over a
    short sample; None where /proc/stat cannot be read (not Linux)."""
    allowed = {f"cpu{i}" for i in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else None
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample_seconds)
    after = _cpu_times() or {}
    idle = 0
    for name, (idle0, total0) in before.items():
        if (allowed is not None and name not in allowed) or name not in after:
            continue
        d_idle, d_total = after[name][0] - idle0, after[name][1] - total0
        if d_total <= 0 or d_idle / d_total >= 1 - busy_above:
            idle += 1
    return idle


def choose_threads(requested: int | str | None, default: int) -> int:
    """The thread count for a run: an explicit number as given; "auto" (or None): torch's default, lowered to the
    cores found idle, at least 1."""
    if requested not in (None, "auto"):
        return int(requested)
    free = idle_cores()
    if free is None:
        return default
    return max(1, min(default, free))
