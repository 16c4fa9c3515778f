"""Peak RSS of ``hyenadna embed`` on FASTA files of growing size: streaming keeps it flat.

Cuts N-free windows from the training part of GRCh37 chr20 (never the held-out region), writes FASTA files of each
size, and runs the CLI on each in a fresh process, that reports its own peak RSS (getrusage) when the command ends.

    .venv/bin/python benchmarks/embed_memory.py                      # 10k and 100k sequences of 200 bp
    .venv/bin/python benchmarks/embed_memory.py --counts 1000 10000 --length 500
    # per token, one 2 Mb record, and one 1.5 Mb record among 29 of 100 bp
    .venv/bin/python benchmarks/embed_memory.py --counts 1 --length 2000000 --pooling none --output .parquet
    .venv/bin/python benchmarks/embed_memory.py --counts 1 --length 1500000 --short 29 --pooling none --output .npz
    # per token to .npy, filled on disk: one 4 Mb record, and a 30 Mb one (N runs kept)
    .venv/bin/python benchmarks/embed_memory.py --counts 1 --length 4000000 --pooling none --output .npy
    .venv/bin/python benchmarks/embed_memory.py --counts 1 --length 30000000 --keep-n --pooling none --output .npy

Writes benchmarks/results/embed_memory.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyfaidx

ROOT = Path(__file__).resolve().parents[1]
GENOME = ROOT.parent / "shared" / "data" / "genome" / "GRCh37_chr20.fa.gz"
TRAIN_END = 31_999_000  # chr20 training part ends here; the held-out region starts at 32,000,000


# runs the CLI in this fresh process, then prints the process's own peak RSS, and the peak of its anonymous part
# (sampled every 50 ms): a memory-mapped output's pages count in RSS but are page cache the kernel writes back and
# reclaims, while anonymous memory is what the OOM killer counts against the process
CHILD = """
import json, resource, sys, threading, time
from hyenadna.cli import main

peak_anon, done = [0], threading.Event()
def sample():
    while not done.is_set():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    peak_anon[0] = max(peak_anon[0], int(line.split()[1]))
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
rc = main(json.loads(sys.argv[1])[1:])
done.set()
if rc:
    sys.exit(rc)
print(json.dumps({"peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "peak_anon_kb": peak_anon[0]}))
"""


def write_fasta(path: Path, count: int, length: int, sequence: str, short: int = 0, keep_n: bool = False) -> None:
    """Consecutive N-free windows (any, with ``keep_n``) from the start of ``sequence``: ``count`` of ``length``,
    then ``short`` of 100."""
    written, pos = 0, 0
    with open(path, "w") as f:
        while written < count + short:
            if written == count:
                length = 100
            window = sequence[pos : pos + length]
            pos += length
            if len(window) < length:
                raise ValueError(f"not enough N-free sequence for {count} windows of {length} bp")
            if "N" in window and not keep_n:
                continue
            f.write(f">chr20_{pos - length}\n{window}\n")
            written += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--output", default=".npy", choices=[".npy", ".npz", ".parquet"])
    parser.add_argument("--pooling", default="mean", choices=["mean", "none"])
    parser.add_argument("--short", type=int, default=0, help="records of 100 bp after the --counts ones")
    parser.add_argument("--keep-n", action="store_true", help="windows may hold N (records longer than any N-free run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "embed_memory.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        # decompress once to an indexed FASTA, so reading the region does not hold the whole chromosome
        plain = Path(tmp) / "chr20.fa"
        subprocess.run(f"gzip -dc {GENOME} > {plain}", shell=True, check=True)
        region = str(pyfaidx.Fasta(str(plain))["20"][1_000_000:TRAIN_END]).upper()
        rows = []
        for count in args.counts:
            fasta = Path(tmp) / f"seqs_{count}.fa"
            write_fasta(fasta, count, args.length, region, args.short, args.keep_n)
            out = Path(tmp) / f"emb_{count}{args.output}"
            cli = ["hyenadna", "embed", str(fasta), "-o", str(out), "--threads", str(args.threads)]
            cli += ["--pooling", args.pooling]
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps(cli)],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "TQDM_DISABLE": "1"},
            )
            seconds = time.perf_counter() - t0
            peaks = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "sequences": count,
                    "length": args.length,
                    "short": args.short,
                    "pooling": args.pooling,
                    "fasta_mb": fasta.stat().st_size / 2**20,
                    "output_mb": out.stat().st_size / 2**20,
                    "output_disk_mb": out.stat().st_blocks * 512 / 2**20,  # less where a sparse file has holes
                    "peak_rss_mb": peaks["peak_rss_kb"] / 1024,
                    "peak_anon_mb": peaks["peak_anon_kb"] / 1024,
                    "seconds": seconds,
                    "tokens_per_s": (count * args.length + args.short * 100) / seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    header = f"{'sequences':>10s} {'FASTA MB':>9s} {'output MB':>10s} {'peak RSS MB':>12s} {'anon MB':>8s}"
    print(f"\n{header} {'seconds':>8s}")
    for r in rows:
        print(
            f"{r['sequences']:10,d} {r['fasta_mb']:9.1f} {r['output_mb']:10.1f} {r['peak_rss_mb']:12.0f} "
            f"{r['peak_anon_mb']:8.0f} {r['seconds']:8.1f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"threads": args.threads, "output": args.output, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
