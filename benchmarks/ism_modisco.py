"""Motifs from a fine-tuned promoter classifier's maps: ``hyenadna ism --bed --modisco`` over promoter_all's test
promoters (held-out chr20, -249..+50 of each TSS on the gene strand), then TF-MoDISco on the export.

The maps are first-order (``--method gradient``: one forward and backward pass per window; the exact maps of all 723
windows would take ~3 hours on one core), target the promoter class. TF-MoDISco (``modisco-lite``, not a dependency of
this project) runs from its own environment when ``--modisco-bin`` names its ``modisco`` command; its motifs are
summarised by their most likely bases (the position-frequency matrix's consensus) and seqlet counts.

    hyenadna fine-tune ../shared/benchmarks/promoter_all --out promoter_model --epochs 10 --patience 3 --lr 1e-4 \\
        --head-init probe --seed 0
    python3 -m venv modisco-env && modisco-env/bin/pip install modisco-lite
    .venv/bin/python benchmarks/ism_modisco.py promoter_model --out docs/ism/modisco \\
        --modisco-bin modisco-env/bin/modisco
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from hyenadna.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
TASK = REPO.parent / "shared" / "benchmarks" / "promoter_all"
GENOME = REPO.parent / "shared" / "data" / "genome" / "GRCh37_chr20.fa.gz"


def promoter_bed(path: Path) -> int:
    """The test promoters' windows as BED (their names hold chrom:start-end(strand))."""
    test = pd.read_csv(TASK / "test.csv.gz")
    names = test.loc[test["label"] == 1, "name"]
    lines = []
    for name in names:
        chrom, start, end, strand = re.fullmatch(r"(\w+):(\d+)-(\d+)\(([+-])\)", name).groups()
        lines.append(f"{chrom}\t{start}\t{end}\t{name}\t0\t{strand}")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines)


# run by modisco-lite's own Python, which has h5py: each pattern's seqlets and the consensus of its sequence
# (most frequent base) and of its contribution-weight matrix's core (its 12 strongest positions and those between)
READ_PATTERNS = """
import h5py, json, sys
import numpy as np
out = []
with h5py.File(sys.argv[1], "r") as f:
    for group in ("pos_patterns", "neg_patterns"):
        for name, p in f.get(group, {}).items():
            seq, cwm = p["sequence"][:], p["contrib_scores"][:]
            sign = 1 if group == "pos_patterns" else -1
            strongest = np.argsort(np.abs(cwm).sum(1))[-12:]
            lo, hi = int(strongest.min()), int(strongest.max()) + 1
            out.append({"pattern": group[:3] + "_" + name.split("_")[-1],
                        "seqlets": int(p["seqlets"]["n_seqlets"][()][0]),
                        "consensus": "".join("ACGT"[i] for i in seq.argmax(1)),
                        "contribution_core": "".join("ACGT"[i] for i in (sign * cwm).argmax(1))[lo:hi]})
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a folder written by `hyenadna fine-tune` on promoter_all")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--modisco-bin", help="the `modisco` command of a modisco-lite installation")
    ap.add_argument("--max-seqlets", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from hyenadna.cli import main as cli

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
    bed = work / "promoters.bed"
    n = promoter_bed(bed)
    maps = work / "maps"
    argv = ["ism", "--classifier", args.model, "--genome", str(GENOME), "--bed", str(bed), "--target", "1"]
    argv += ["--method", "gradient", "--threads", str(args.threads), "-o", str(maps), "--modisco"]
    started = time.perf_counter()
    assert cli(argv) == 0
    summary = {"windows": n, "map_seconds": round(time.perf_counter() - started, 1), "threads": args.threads}
    if args.modisco_bin:
        h5 = work / "modisco_results.h5"
        started = time.perf_counter()
        cmd = [args.modisco_bin, "motifs", "-s", str(maps / "modisco" / "ohe.npz"), "-a"]
        cmd += [str(maps / "modisco" / "attr.npz"), "-n", str(args.max_seqlets), "-w", "300", "-o", str(h5)]
        subprocess.run(cmd, check=True)
        summary["modisco_seconds"] = round(time.perf_counter() - started, 1)
        summary["modisco_command"] = " ".join(["modisco", *cmd[1:]]).replace(f"{work}/", "")
        subprocess.run(
            [args.modisco_bin, "meme", "-i", str(h5), "-t", "CWM", "-q", "-o", str(args.out / "cwm.meme")], check=True
        )
        python = Path(args.modisco_bin).parent / "python"
        read = subprocess.run([str(python), "-c", READ_PATTERNS, str(h5)], check=True, capture_output=True, text=True)
        summary["patterns"] = json.loads(read.stdout)
    atomic_write_text(args.out / "results.json", json.dumps(summary, indent=1) + "\n")
    shutil.rmtree(work)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
