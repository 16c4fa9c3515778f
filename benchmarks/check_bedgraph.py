"""Load a ``hyenadna score --track`` bedGraph in real genomics tools: tabix (what IGV and JBrowse index a bedGraph
with), bedtools, and a bedGraph-to-bigWig conversion with pyBigWig. Tools that are not installed are reported as
such; none is a dependency of the project.

    apt-get install tabix bedtools; pip install --target /tmp/pbw pyBigWig
    PYTHONPATH=/tmp/pbw python benchmarks/check_bedgraph.py docs/tracks/CBFA2T2.bedgraph --chrom-size 63025520
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bedgraph")
    ap.add_argument("--chrom-size", type=int, required=True, help="length of the track's chromosome (bigWig header)")
    ap.add_argument("--work", default="/tmp/bedgraph_check")
    ap.add_argument("-o", "--output", help="JSON report (default: beside the bedGraph)")
    args = ap.parse_args()
    src = Path(args.bedgraph)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = [line.split("\t") for line in src.read_text().splitlines()]
    chrom = rows[0][0]
    report: dict = {"bedgraph": str(src), "lines": len(rows), "chrom": chrom}

    if shutil.which("bgzip") and shutil.which("tabix"):
        gz = work / (src.name + ".gz")
        with open(gz, "wb") as f:
            subprocess.run(["bgzip", "-c", str(src)], stdout=f, check=True)
        subprocess.run(["tabix", "-f", "-p", "bed", str(gz)], check=True, capture_output=True, text=True)
        mid = int(rows[len(rows) // 2][1])
        q = subprocess.run(
            ["tabix", str(gz), f"{chrom}:{mid + 1}-{mid + 3}"], capture_output=True, text=True, check=True
        )
        got = [line.split("\t") for line in q.stdout.splitlines()]
        expected = [r for r in rows if mid <= int(r[1]) < mid + 3]
        report["tabix"] = {
            "indexed": True,
            "query": f"{chrom}:{mid + 1}-{mid + 3}",
            "returned": got,
            "ok": got == expected,
        }
    else:
        report["tabix"] = "not installed"

    if shutil.which("bedtools"):
        genome = work / "genome.txt"
        genome.write_text(f"{chrom}\t{args.chrom_size}\n")
        p = subprocess.run(
            ["bedtools", "merge", "-i", str(src), "-c", "4", "-o", "count,mean", "-d", "0"],
            capture_output=True,
            text=True,
        )
        merged = [line.split("\t") for line in p.stdout.splitlines()]
        report["bedtools_merge"] = {
            "exit": p.returncode,
            "stderr": p.stderr.strip()[:300],
            "intervals": [[*m[:3], int(m[3]), round(float(m[4]), 4)] for m in merged[:5]],
            "bases": sum(int(m[3]) for m in merged),
            "ok": p.returncode == 0 and sum(int(m[3]) for m in merged) == len(rows),
        }
    else:
        report["bedtools_merge"] = "not installed"

    try:
        import pyBigWig
    except ImportError:
        report["bigwig"] = "pyBigWig not installed"
    else:
        bw_path = work / (src.stem + ".bw")
        bw = pyBigWig.open(str(bw_path), "w")
        bw.addHeader([(chrom, args.chrom_size)])
        bw.addEntries(
            [r[0] for r in rows],
            [int(r[1]) for r in rows],
            ends=[int(r[2]) for r in rows],
            values=[float(r[3]) for r in rows],
        )
        bw.close()
        bw = pyBigWig.open(str(bw_path))
        start, end = int(rows[0][1]), int(rows[-1][2])
        values = bw.values(chrom, start, end)
        by_pos = {int(r[1]): float(r[3]) for r in rows}
        diffs = [abs(values[p - start] - v) for p, v in by_pos.items()]
        report["bigwig"] = {
            "file": str(bw_path),
            "bytes": bw_path.stat().st_size,
            "header": bw.chroms(),
            "max_abs_difference": max(diffs),
            "mean_over_track": bw.stats(chrom, start, end, type="mean")[0],
            "ok": max(diffs) < 1e-4,
        }
        bw.close()
    text = json.dumps(report, indent=1)
    out = Path(args.output) if args.output else src.with_suffix(".tools.json")
    out.write_text(text + "\n")
    print(text)
    return 0 if all(isinstance(v, dict) and v.get("ok", True) for k, v in report.items() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
