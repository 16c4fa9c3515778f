"""Side-by-side A/B of one switch of the long-sequence (low-memory) inference path.

Each run is a fresh process (the allocator's state outlives a call), alternating on and off for several rounds:

- ``reuse``: ``ExecutionOptions.reuse_freed_memory`` (utils/memory.py: freed FFT outputs reused instead of
  page-faulted in afresh).
- ``store_x0``: ``ExecutionOptions.store_x0_bytes`` (x0 kept from the first pass instead of recomputed in the third).

    .venv/bin/python benchmarks/long_path_options.py reuse                 # large-1m, 2 layers, 1M tokens: ~3 min
    .venv/bin/python benchmarks/long_path_options.py store_x0 --config hyenadna-medium-160k-seqlen --layers 8 \
        --length 160000

Writes benchmarks/results/long_path_<option>.json and prints median seconds and peak RSS per setting.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def child(option: str, on: bool, config_name: str, layers: int, length: int, threads: int, bf16: bool) -> dict:
    import dataclasses

    import torch

    from hyenadna import PUBLISHED_CONFIGS
    from hyenadna.models.hyena_dna import HyenaDNAModel
    from hyenadna.ops.execution import ExecutionOptions

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = HyenaDNAModel(dataclasses.replace(PUBLISHED_CONFIGS[config_name], n_layer=layers)).eval()
    if option == "reuse":
        model.execution = ExecutionOptions(reuse_freed_memory=on)
    else:
        model.execution = ExecutionOptions(store_x0_bytes=2**62 if on else 0)
    ids = torch.randint(7, 11, (1, length))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        t = time.perf_counter()
        model(ids, low_memory=True)
        seconds = time.perf_counter() - t
    return {"on": on, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("option", choices=["reuse", "store_x0"])
    ap.add_argument("--config", default="hyenadna-large-1m-seqlen")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--length", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="under bf16 autocast")
    ap.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    run_args = (args.config, args.layers, args.length, args.threads, args.bf16)
    if args.child:
        print(json.dumps(child(args.option, args.child == "on", *run_args)))
        return

    from hyenadna.utils.io import atomic_path

    runs = []
    for r in range(args.rounds):
        for setting in ("on", "off"):
            cmd = [sys.executable, __file__, args.option, "--child", setting, "--config", args.config]
            cmd += ["--layers", str(args.layers), "--length", str(args.length), "--threads", str(args.threads)]
            cmd += ["--bf16"] if args.bf16 else []
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(
                f"round {r + 1}/{args.rounds} {setting:3s}: {runs[-1]['seconds']:.2f} s, "
                f"peak RSS {runs[-1]['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    summary = {}
    for setting in (True, False):
        mine = [x for x in runs if x["on"] is setting]
        summary["on" if setting else "off"] = {
            "median_s": statistics.median(x["seconds"] for x in mine),
            "max_peak_rss_mb": max(x["peak_rss_mb"] for x in mine),
        }
    ratio = summary["on"]["median_s"] / summary["off"]["median_s"]
    print(
        f"{args.option}: on {summary['on']['median_s']:.2f} s, off {summary['off']['median_s']:.2f} s: "
        f"{ratio:.2f}x the time"
    )
    meta = {k: v for k, v in vars(args).items() if k not in ("out", "child")}
    out_path = args.out or RESULTS / f"long_path_{args.option}.json"
    with atomic_path(out_path) as tmp:
        tmp.write_text(json.dumps({**meta, "summary": summary, "time_ratio_on_off": ratio, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
