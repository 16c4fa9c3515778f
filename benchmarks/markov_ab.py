"""The Markov baseline of pretraining (``markov_baseline``, fitted afresh) from two checkouts side by side: each round
runs both in fresh processes, in alternating order, on the default pretraining DNA (chr20 and chrX, held-out region
out) and the cards' 256 held-out 1k windows; reports the seconds, the peak RSS and whether the reports are equal.

    git worktree add ../before <commit>
    .venv/bin/python benchmarks/markov_ab.py ../before . --rounds 2 --out benchmarks/results/markov_ab.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HYENADNA_SHARED") or REPO.parent / "shared")

CHILD = """
import json, resource, sys, time
from hyenadna.data.genome import Genome
from hyenadna.training.pretrain import PretrainConfig, markov_baseline, training_intervals
from hyenadna.training.windows import fixed_windows
fasta = sys.argv[2:]
genome = Genome.from_fasta(fasta)
train, evaluation = training_intervals(PretrainConfig(fasta=fasta, out_dir=""), genome)
windows = fixed_windows(genome, evaluation, 256, 1025)
t0 = time.perf_counter()
report = markov_baseline(genome, train, windows, log=lambda m: None, cache=False)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
json.dump({"seconds": seconds, "peak_rss_mb": peak, "report": report}, open(sys.argv[1], "w"))
"""


def run(repo: Path) -> dict:
    genome = SHARED / "data" / "genome"
    fasta = [str(genome / "GRCh37_chr20.fa.gz"), str(genome / "GRCh37_chrX_0-70Mb.fa.gz")]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "PYTHONPATH": str(repo.resolve()), "HYENADNA_SHARED": str(SHARED)}
        subprocess.run([sys.executable, "-c", CHILD, str(out), *fasta], env=env, check=True, cwd=tmp)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/markov_ab.json")
    args = parser.parse_args()
    rounds = []
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        results = {name: run(getattr(args, name)) for name in order}
        row = {name: {k: results[name][k] for k in ("seconds", "peak_rss_mb")} for name in ("before", "after")}
        row["same_report"] = results["before"]["report"] == results["after"]["report"]
        row["ratio"] = results["before"]["seconds"] / results["after"]["seconds"]
        print(json.dumps(row), flush=True)
        rounds.append(row)
    commits = {
        name: subprocess.run(
            ["git", "-C", str(getattr(args, name)), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        for name in ("before", "after")
    }
    Path(args.out).write_text(json.dumps({"commits": commits, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
