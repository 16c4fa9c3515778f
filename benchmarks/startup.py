"""Start-up cost, each in fresh processes: peak RSS and wall time of ``import torch``, ``import hyenadna``, the first
embedding with the bundled model, and ``hyenadna --help``. Median of --repeats runs, the cases interleaved.

    .venv/bin/python benchmarks/startup.py          # ~1 min -> benchmarks/results/startup.json

The autotune cache is assumed to exist already (the first model built on a machine measures its kernels once, 5-20 s;
``hyenadna autotune`` does it ahead).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = "import resource, sys; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
CASES = {
    "python": "pass",
    "import torch": "import torch",
    "import hyenadna": "import hyenadna",
    "import hyenadna, then torch": "import hyenadna, torch",
    "first embedding": (
        "import hyenadna\n"
        "m = hyenadna.HyenaDNA(hyenadna.HyenaDNAConfig(progress=False))\n"
        "m.get_embeddings(['ACGT' * 256], pooling='mean')"
    ),
}


def run(code: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}"], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    return seconds, int(out.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "startup.json"))
    args = ap.parse_args()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    help_seconds = []
    for _ in range(args.repeats):
        for name, code in CASES.items():
            samples[name].append(run(code))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hyenadna", "--help"], capture_output=True, check=True)
        help_seconds.append(time.perf_counter() - t0)
    rows = {
        name: {
            "seconds": statistics.median(s for s, _ in runs),
            "peak_rss_mb": statistics.median(r for _, r in runs),
        }
        for name, runs in samples.items()
    }
    rows["hyenadna --help"] = {"seconds": statistics.median(help_seconds), "peak_rss_mb": None}
    from hyenadna.ops.autotune import cpu_name
    from hyenadna.utils.io import atomic_write_text

    report = {"cpu": cpu_name(), "repeats": args.repeats, "rows": rows}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    torch_rss = rows["import torch"]["peak_rss_mb"]
    for name, r in rows.items():
        extra = f"{r['peak_rss_mb']:6.0f} MB" if r["peak_rss_mb"] else " " * 9
        over = f" ({r['peak_rss_mb'] - torch_rss:+.0f} MB over import torch)" if r["peak_rss_mb"] else ""
        print(f"{name:30s} {r['seconds']:6.2f} s {extra}{over}")


if __name__ == "__main__":
    main()
