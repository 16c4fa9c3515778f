"""``hyenadna autotune``: the kernel choices measured on this machine (ops/autotune.py)."""

from __future__ import annotations

import argparse
import json

from hyenadna.cli.common import add_command, add_runtime_args


def cmd_autotune(args: argparse.Namespace) -> int:
    import torch

    from hyenadna.ops import autotune

    if not autotune.enabled():
        print("autotune is off (HYENADNA_AUTOTUNE=0): the defaults are used")
        print(json.dumps(autotune.DEFAULTS.__dict__, indent=1))
        return 0
    pinned = autotune.pinned_file()
    if pinned is not None:
        print(f"kernel choices pinned by HYENADNA_AUTOTUNE={pinned} (nothing is measured or cached):")
        print(json.dumps(autotune.tuning("cpu").__dict__, indent=1))
        return 0
    path = autotune.cache_path()
    record = autotune.refresh() if args.refresh or not path.is_file() else json.loads(path.read_text())
    if args.json:
        print(json.dumps({**record, "cache": str(path)}, indent=1))
        return 0
    print(f"kernel choices for {record['cpu']}, torch {record['torch']}, {record['threads']} threads")
    print(f"measured {record['measured_at']} in {record['measure_seconds']} s; cache {path}")
    note = autotune.contention_note(record)
    if note:
        print(f"note: {note}")
    print(f"{'knob':22s} {'chosen':8s} {'default':8s} seconds per call of each candidate")
    for name, chosen in record["choices"].items():
        times = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in record["seconds"][name].items())
        print(f"{name:22s} {chosen!s:8s} {record['defaults'][name]!s:8s} {times}")
    print(
        f"(a candidate replaces the default only when {autotune.MARGIN:.0%} faster round for round, in the median; "
        f"torch {torch.__version__})"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "autotune",
        "show the kernel choices measured on this CPU (measuring them if not yet done); --refresh measures again",
        cmd_autotune,
    )
    p.add_argument("--refresh", action="store_true", help="measure again and rewrite this machine's cache file")
    p.add_argument("--json", action="store_true", help="print the cache record as JSON")
    add_runtime_args(p, device=False, batch_size=None)
