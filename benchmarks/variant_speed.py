"""Variants per second of ``hyenadna vep`` and ``hyenadna ism``, end to end through the command line, on random
SNVs of the held-out region (chr20:32,000,000-63,025,520, GRCh37). Each command runs in a fresh process and its wall
time (start-up and model loading included) is reported; nothing else should run on the machine meanwhile.

    .venv/bin/python benchmarks/variant_speed.py                                   # bundled 1k model, ~3 min
    .venv/bin/python benchmarks/variant_speed.py --model hyenadna-tiny-16k-d256-grch37 --window 16384 --snvs 40 \
        --ism-length 10 --out benchmarks/results/variant_speed_16k.json

Writes benchmarks/results/variant_speed.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GENOME = REPO.parent / "shared" / "data" / "genome" / "GRCh37_chr20.fa.gz"
HELD_OUT = ("20", 32_000_000, 63_025_520)


def random_snvs(n: int, seed: int = 0) -> list[tuple[str, int, str, str]]:
    """n SNVs at random A/C/G/T positions of the held-out region: (chrom, 1-based pos, ref, alt)."""
    from hyenadna.data.genome import Genome
    from hyenadna.tokenizer import VOCAB

    letters = {i: b for b, i in VOCAB.items() if b in "ACGT"}
    genome = Genome.from_fasta([str(GENOME)])
    rng = np.random.default_rng(seed)
    chrom, start, end = HELD_OUT
    bases = genome.chromosomes[chrom]
    out = []
    while len(out) < n:
        pos = int(rng.integers(start + 20_000, end - 20_000))
        ref = letters.get(int(bases[pos]))
        if ref:
            alt = "ACGT".replace(ref, "")[int(rng.integers(3))]
            out.append((chrom, pos + 1, ref, alt))
    return sorted(out, key=lambda v: v[1])


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="model name or folder (default: the bundled model)")
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--snvs", type=int, default=1000)
    ap.add_argument("--ism-length", type=int, default=100, help="bases of the ism region (3 alternatives each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "variant_speed.json"))
    args = ap.parse_args()

    model = ["--model", args.model] if args.model else []
    common = [*model, "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
    hyenadna = [sys.executable, "-m", "hyenadna.cli"]
    snvs = random_snvs(args.snvs)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        vcf = Path(tmp) / "snvs.vcf"
        vcf.write_text(
            "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
            + "".join(f"{c}\t{p}\t.\t{r}\t{a}\t.\t.\t.\n" for c, p, r, a in snvs)
        )
        cmd = [*hyenadna, "vep", str(vcf), "--genome", str(GENOME), "--window", str(args.window)]
        seconds, summary = timed([*cmd, *common, "-o", str(Path(tmp) / "vep.tsv")])
        rows["vep"] = {"variants": len(snvs), "seconds": seconds, "variants_per_s": len(snvs) / seconds}
        rows["vep"]["summary_line"] = summary
        start = snvs[0][1] + 5_000
        region = f"20:{start:,}-{start + args.ism_length:,}"
        cmd = [*hyenadna, "ism", "--genome", str(GENOME), "--region", region, "--window", str(args.window)]
        seconds, summary = timed([*cmd, *common, "-o", str(Path(tmp) / "ism.tsv")])
        n = 3 * args.ism_length
        rows["ism"] = {"region": region, "variants": n, "seconds": seconds, "variants_per_s": n / seconds}
        rows["ism"]["summary_line"] = summary
    from hyenadna.ops.autotune import cpu_name

    report = {
        "model": args.model or "bundled default",
        "window": args.window,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "cpu": cpu_name(),
        **rows,
    }
    from hyenadna.utils.io import atomic_write_text

    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    for name, r in rows.items():
        print(f"{name}: {r['variants']:,} variants in {r['seconds']:.1f} s = {r['variants_per_s']:.1f} variants/s")


if __name__ == "__main__":
    main()
