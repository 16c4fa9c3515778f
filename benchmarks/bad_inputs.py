"""Every kind of bad input, and Ctrl-C / SIGTERM mid-run, through the real CLI in fresh processes.

For each case it records the exit code, whether stderr holds a Python traceback, whether a partial or temporary file
was left behind, and whether the message says what the case is about. A case fails when it ends in a traceback, leaves
a partial file, or exits 0 where it should have refused (a silent wrong result).

    python benchmarks/bad_inputs.py                 # all cases; writes benchmarks/results/bad_inputs.json
    python benchmarks/bad_inputs.py --only vep      # cases whose name contains "vep"
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GENOME = SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hyenadna.cli", *args]


def make_inputs(d: Path) -> dict[str, Path]:
    import numpy as np

    rng = np.random.default_rng(0)
    seq = lambda n: "".join(rng.choice(list("ACGT"), n))  # noqa: E731
    f = {}

    def write(name: str, text: str | bytes) -> None:
        f[name] = d / name
        (f[name].write_bytes if isinstance(text, bytes) else f[name].write_text)(text)

    write("long.fa", f">long\n{seq(5000)}\n")
    write("ok.fa", f">a\n{seq(300)}\n>b\n{seq(200)}\n")
    write("dash.fa", f">a\n{seq(60)}\n{seq(10)}-{seq(20)}\n")
    write("digit.fa", f">a\n{seq(30)}7{seq(5)}\n")
    write("empty.fa", "")
    write("header_only.fa", ">a\n>b\nACGT\n")
    write("no_header.fa", "ACGTACGT\n>x\nACGT\n")
    write("empty_header.fa", ">\nACGT\n")
    write("utf8.fa", ">a\nACGTÄCGT\n")
    write("crlf.fa", ">a\r\nACGT\r\n")
    write("bad.fq", "@r1\nACGT\n+\nIII\n")
    write("cut.fq", "@r1\nACGT\n")
    write("bad.csv", "name,sequence\nx,ACGT\ny,AC#T\n")
    write("nocol.csv", "name,seq\nx,ACGT\n")
    write("emptyseq.csv", "name,sequence\nx,\n")
    write("binary.fa", (REPO / ".venv" / "bin" / "python").resolve().read_bytes()[:20000])
    write("nul.fa", b">a\nAC\x00GT\n")
    data = gzip.compress(f">a\n{seq(50_000)}\n".encode())
    write("truncated.fa.gz", data[: len(data) // 2])
    write("notgzip.fa.gz", ">a\nACGT\n")
    write("ok.vcf", "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n20\t5000000\t.\tA\tG\n")
    write("header.vcf", "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    write("badpos.vcf", "#CHROM\tPOS\tID\tREF\tALT\n20\tabc\t.\tA\tG\n")
    write("shortline.vcf", "#CHROM\tPOS\tID\tREF\tALT\n20\t100\n")
    write("offchrom.vcf", "#CHROM\tPOS\tID\tREF\tALT\nchr99\t100\t.\tA\tG\n")
    write("beyond.vcf", "#CHROM\tPOS\tID\tREF\tALT\n20\t99999999\t.\tA\tG\n")
    write("refmismatch.vcf", "#CHROM\tPOS\tID\tREF\tALT\n20\t5000000\t.\tTTTTT\tG\n")
    write("nallele.vcf", "#CHROM\tPOS\tID\tREF\tALT\n20\t5000000\t.\tA\tN\n")
    write("ok.bed", "20\t5000000\t5000300\tp1\t0\t+\n")
    write("outside.bed", "20\t99999990\t99999999\tp1\t0\t+\n")
    write("badbed.bed", "20\tx\t100\n")
    write("reversed.bed", "20\t500\t100\tp\n")
    big = "".join(f">s{i}\n{seq(1000)}\n" for i in range(4000))
    write("big.fa", big)
    write(
        "bigvcf.vcf", "#CHROM\tPOS\tID\tREF\tALT\n" + "".join(f"20\t{5_000_000 + 37 * i}\t.\tN\tA\n" for i in range(1))
    )
    f["model"] = d / "models" / "tiny"  # a model in a folder of its own, which a mistaken convert could replace
    shutil.copytree(REPO / "hyenadna" / "weights" / "hyenadna-tiny-1k-d256-grch37", f["model"])
    return f


def cases(f: dict[str, Path], out: Path) -> list[dict]:
    o = str(out / "o.npz")
    t = str(out / "o.tsv")
    g = str(GENOME)
    ft = str(out / "clf")
    c = [
        # name, argv, expected exit (0 = must succeed), words the message must hold
        ("embed: '-' in FASTA", cli("embed", str(f["dash.fa"]), "-o", o), 1, ["dash.fa:3:11", "'-'"]),
        ("embed: digit in FASTA", cli("embed", str(f["digit.fa"]), "-o", o), 1, ["digit.fa:2:31", "'7'"]),
        ("embed: empty file", cli("embed", str(f["empty.fa"]), "-o", o), 1, ["no FASTA records"]),
        ("embed: record without sequence", cli("embed", str(f["header_only.fa"]), "-o", o), 1, ["no sequence"]),
        ("embed: sequence before header", cli("embed", str(f["no_header.fa"]), "-o", o), 1, ["before the first"]),
        ("embed: empty header", cli("embed", str(f["empty_header.fa"]), "-o", o), 1, ["empty FASTA header"]),
        ("embed: non-ASCII base", cli("embed", str(f["utf8.fa"]), "-o", o), 1, ["utf8.fa:2"]),
        ("embed: CRLF line ends", cli("embed", str(f["crlf.fa"]), "-o", o), 0, ["embedded 1 sequence ("]),
        ("embed: FASTQ quality length", cli("embed", str(f["bad.fq"]), "-o", o), 1, ["quality length"]),
        ("embed: FASTQ cut short", cli("embed", str(f["cut.fq"]), "-o", o), 1, ["cut short"]),
        ("embed: CSV bad character", cli("embed", str(f["bad.csv"]), "-o", o), 1, ["bad.csv, row 2", "'#'"]),
        ("embed: CSV without the column", cli("embed", str(f["nocol.csv"]), "-o", o), 1, ["no 'sequence' column"]),
        ("embed: CSV empty sequence", cli("embed", str(f["emptyseq.csv"]), "-o", o), 1, ["empty sequence"]),
        ("embed: ELF binary", cli("embed", str(f["binary.fa"]), "-o", o), 1, ["ELF"]),
        ("embed: NUL bytes", cli("embed", str(f["nul.fa"]), "-o", o), 1, ["binary"]),
        ("embed: truncated gzip", cli("embed", str(f["truncated.fa.gz"]), "-o", o), 1, ["truncated"]),
        ("embed: .gz that is plain text", cli("embed", str(f["notgzip.fa.gz"]), "-o", o), 0, ["embedded 1"]),
        ("embed: missing file", cli("embed", str(out / "nope.fa"), "-o", o), 1, ["no such file"]),
        ("embed: folder as input", cli("embed", str(out), "-o", o), 1, ["folder"]),
        ("embed: unknown output type", cli("embed", str(f["ok.fa"]), "-o", str(out / "o.xyz")), 1, [".xyz"]),
        (
            "embed: output in a missing folder",
            cli("embed", str(f["ok.fa"]), "-o", str(out / "no/o.npz")),
            0,
            ["embedded"],
        ),
        (
            "embed: mistyped model path",
            cli("embed", str(f["ok.fa"]), "-o", o, "--model", "/nonexistent/m"),
            1,
            ["no such file or folder"],
        ),
        (
            "embed: unknown model name",
            cli("embed", str(f["ok.fa"]), "-o", o, "--model", "hyena-tiny"),
            1,
            ["unknown model name", "bundled model", "--random-init"],
        ),
        (
            "embed: published model, offline, not cached",
            cli("embed", str(f["ok.fa"]), "-o", o, "--model", "hyenadna-small-32k-seqlen", "--offline"),
            1,
            ["offline", "hyenadna download"],
        ),
        (
            "embed: --random-init of a folder name",
            cli("embed", str(f["ok.fa"]), "-o", o, "--model", "x", "--random-init"),
            1,
            ["--random-init needs"],
        ),
        (
            "embed: --long-sequences error",
            cli("embed", str(f["long.fa"]), "-o", o, "--long-sequences", "error"),
            1,
            ["--long-sequences window"],
        ),
        (
            "embed: --device cuda without GPU",
            cli("embed", str(f["ok.fa"]), "-o", o, "--device", "cuda"),
            1,
            ["--device cuda", "--device cpu"],
        ),
        ("embed: --batch-size 0", cli("embed", str(f["ok.fa"]), "-o", o, "--batch-size", "0"), 2, ["--batch-size"]),
        ("embed: --threads -1", cli("embed", str(f["ok.fa"]), "-o", o, "--threads", "-1"), 2, ["--threads"]),
        ("embed: --chunk-size x", cli("embed", str(f["ok.fa"]), "-o", o, "--chunk-size", "x"), 2, ["--chunk-size"]),
        ("embed: --layer 9", cli("embed", str(f["ok.fa"]), "-o", o, "--layer", "9"), 1, ["layer"]),
        (
            "embed: --bed and INPUT",
            cli("embed", str(f["ok.fa"]), "--bed", str(f["ok.bed"]), "--genome", g, "-o", o),
            1,
            ["not both"],
        ),
        ("embed: --bed without --genome", cli("embed", "--bed", str(f["ok.bed"]), "-o", o), 1, ["--genome"]),
        (
            "embed: BED outside chromosome",
            cli("embed", "--bed", str(f["outside.bed"]), "--genome", g, "-o", o),
            1,
            ["outside.bed:1", "outside the chromosome"],
        ),
        (
            "embed: BED all skipped",
            cli("embed", "--bed", str(f["outside.bed"]), "--genome", g, "--skip-invalid", "-o", o),
            1,
            ["every one"],
        ),
        (
            "embed: BED bad start",
            cli("embed", "--bed", str(f["badbed.bed"]), "--genome", g, "-o", o),
            1,
            ["badbed.bed:1"],
        ),
        ("score: '-' in FASTA", cli("score", str(f["dash.fa"]), "-o", t), 1, ["dash.fa:3:11"]),
        ("score: --overlap 0", cli("score", str(f["ok.fa"]), "--overlap", "0"), 2, ["--overlap"]),
        ("vep: header-only VCF", cli("vep", str(f["header.vcf"]), "--genome", g, "-o", t), 0, ["header only"]),
        ("vep: bad POS", cli("vep", str(f["badpos.vcf"]), "--genome", g, "-o", t), 1, ["badpos.vcf:2"]),
        ("vep: short line", cli("vep", str(f["shortline.vcf"]), "--genome", g, "-o", t), 1, ["shortline.vcf:2"]),
        (
            "vep: unknown chromosome",
            cli("vep", str(f["offchrom.vcf"]), "--genome", g, "-o", t),
            0,
            ["warning", "chr99"],
        ),
        ("vep: beyond the chromosome", cli("vep", str(f["beyond.vcf"]), "--genome", g, "-o", t), 0, ["warning"]),
        (
            "vep: REF differs from genome",
            cli("vep", str(f["refmismatch.vcf"]), "--genome", g, "-o", t),
            0,
            ["warning", "REF"],
        ),
        ("vep: --window 1", cli("vep", str(f["ok.vcf"]), "--genome", g, "--window", "1"), 2, ["--window"]),
        (
            "vep: --window longer than the model reads",
            cli("vep", str(f["ok.vcf"]), "--genome", g, "--window", "4096", "-o", t),
            1,
            ["reads at most 1,026 bases"],
        ),
        ("vep: ALT N", cli("vep", str(f["nallele.vcf"]), "--genome", g, "-o", t), 0, ["warning", "holds N"]),
        ("vep: missing genome", cli("vep", str(f["ok.vcf"]), "--genome", str(out / "g.fa"), "-o", t), 1, ["g.fa"]),
        ("vep: ELF binary as VCF", cli("vep", str(f["binary.fa"]), "--genome", g, "-o", t), 1, ["ELF"]),
        ("generate: --top-k 0", cli("generate", "--prompt", "ACGT", "--top-k", "0"), 2, ["--top-k"]),
        (
            "generate: --num-samples -1",
            cli("generate", "--prompt", "ACGT", "--num-samples", "-1"),
            2,
            ["--num-samples"],
        ),
        ("generate: prompt with X", cli("generate", "--prompt", "ACXT"), 1, ["'X'"]),
        ("generate: --temperature 0", cli("generate", "--prompt", "ACGT", "--temperature", "0"), 2, ["--temperature"]),
        ("predict: not a fine-tuned folder", cli("predict", str(out), str(f["ok.fa"])), 1, ["fine-tune"]),
        (
            "evaluate: missing FASTA",
            cli("evaluate", "--fasta", str(out / "none.fa.gz"), "--no-markov"),
            1,
            ["no such file"],
        ),
        ("info: unknown model", cli("info", "nope-model"), 1, ["unknown model name"]),
        (
            "convert: into a non-empty folder",
            cli(
                "convert", str(REPO / "hyenadna" / "weights" / "hyenadna-tiny-1k-d256-grch37"), str(REPO / "benchmarks")
            ),
            1,
            ["--overwrite"],
        ),
        (
            "convert --overwrite: into the folder holding the source",  # swapped the folder out, source and all
            cli("convert", str(f["model"]), str(f["model"].parent), "--overwrite"),
            1,
            ["holds the source"],
        ),
        ("fine-tune: missing task", cli("fine-tune", str(out / "task"), "--out", ft), 1, ["task"]),
        ("pretrain: no --fasta", cli("pretrain", "--out", str(out / "run")), 2, ["--fasta"]),
    ]
    return [{"name": n, "argv": a, "expect": e, "words": w} for n, a, e, w in c]


def traceback_in(text: str) -> bool:
    return "Traceback (most recent call last)" in text


def leftovers(out: Path, before: set[str]) -> list[str]:
    now = {str(p.relative_to(out)) for p in out.rglob("*")}
    return sorted(x for x in now - before if ".tmp" in x or x.startswith(".") or "/." in x)


def run_case(case: dict, out: Path, env: dict) -> dict:
    before = {str(p.relative_to(out)) for p in out.rglob("*")}
    p = subprocess.run(case["argv"], capture_output=True, text=True, env=env, timeout=600)
    err = p.stderr
    expected_output = case["expect"] == 0
    made = [x for x in ({str(q.relative_to(out)) for q in out.rglob("*")} - before) if not x.startswith("inputs")]
    partial = leftovers(out, before) + ([] if expected_output else [x for x in made if not x.startswith("clf")])
    missing = [w for w in case["words"] if w not in err]
    silent = p.returncode == 0 and case["expect"] != 0
    row = {
        "name": case["name"],
        "exit": p.returncode,
        "expected_exit": case["expect"],
        "traceback": traceback_in(err),
        "partial_files": partial,
        "silent": silent,
        "message": err.strip().splitlines()[-1][:300] if err.strip() else "",
        "missing_words": missing,
    }
    row["ok"] = not (row["traceback"] or partial or silent or missing or p.returncode != case["expect"])
    for x in made:  # outputs of succeeding cases are removed so the next case starts clean
        path = out / x
        if path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
    return row


def interrupt_cases(f: dict[str, Path], out: Path) -> list[dict]:
    g = str(GENOME)
    big = str(f["big.fa"])
    from hyenadna.data.readers import GenomeFasta

    ref = GenomeFasta(GENOME, {"20"}).fetch("20", 5_000_000, 5_000_000 + 41 * 20000)
    vcf = out / "inputs" / "many.vcf"
    alt = {"A": "G", "C": "T", "G": "A", "T": "C", "N": "A"}
    rows = [f"20\t{5_000_001 + 41 * i}\t.\t{ref[41 * i]}\t{alt[ref[41 * i].upper()]}\n" for i in range(20000)]
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "".join(rows).upper())
    task = SHARED / "benchmarks" / "promoter_all"
    return [
        {"name": "embed", "argv": cli("embed", big, "-o", str(out / "e.npz"))},
        {
            "name": "embed per-token parquet",
            "argv": cli("embed", big, "-o", str(out / "e.parquet"), "--pooling", "none"),
        },
        {"name": "score", "argv": cli("score", big, "-o", str(out / "s.tsv"))},
        {"name": "vep", "argv": cli("vep", str(vcf), "--genome", g, "-o", str(out / "v.tsv"))},
        {"name": "generate", "argv": cli("generate", "--prompt", "ACGT", "--length", "5000", "-o", str(out / "g.fa"))},
        {
            "name": "fine-tune",
            "argv": cli("fine-tune", str(task), "--out", str(out / "clf"), "--max-train", "400", "--max-test", "100"),
        },
        {
            "name": "pretrain",
            "argv": cli(
                "pretrain",
                "--fasta",
                g,
                "--out",
                str(out / "run"),
                "--no-markov",
                "--max-steps",
                "100000",
                "--include",
                "20:0-2000000",
                "--eval-every",
                "100000",
                "--ckpt-every",
                "100000",
            ),
        },
        {
            "name": "evaluate",
            "argv": cli(
                "evaluate", "--fasta", g, "--include", "20:0-30000000", "--refit-markov", "-o", str(out / "ev.json")
            ),
        },
        {
            "name": "benchmark",
            "argv": cli("benchmark", "--tasks", str(task), "--out", str(out / "bench"), "--quick"),
        },
    ]


def run_interrupt(case: dict, out: Path, env: dict, sig: int, after: float) -> dict:
    before = {str(p.relative_to(out)) for p in out.rglob("*")}
    p = subprocess.Popen(case["argv"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(after)
    still_running = p.poll() is None
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    made = sorted({str(q.relative_to(out)) for q in out.rglob("*")} - before)
    temp = leftovers(out, before)
    # a run folder (pretrain, fine-tune, benchmark) may keep its checkpoint; a single output file must not exist
    partial = temp + [x for x in made if "/" not in x and Path(out / x).is_file()]
    expected = 130 if sig == signal.SIGINT else 143
    row = {
        "name": f"{case['name']} ({'Ctrl-C' if sig == signal.SIGINT else 'SIGTERM'} after {after:.0f} s)",
        "was_running": still_running,
        "exit": p.returncode,
        "expected_exit": expected,
        "traceback": traceback_in(err),
        "partial_files": partial,
        "message": err.strip().splitlines()[-1][:200] if err.strip() else "",
    }
    row["ok"] = still_running and p.returncode == expected and not row["traceback"] and not partial
    for x in made:
        path = out / x
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="run the cases whose name contains this")
    ap.add_argument("--no-interrupts", action="store_true")
    ap.add_argument("--after", type=float, default=8.0, help="seconds before the signal")
    ap.add_argument("-o", "--output", default=str(REPO / "benchmarks" / "results" / "bad_inputs.json"))
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HYENADNA_HOME": tempfile.mkdtemp()}
    rows, interrupts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "inputs").mkdir()
        f = make_inputs(out / "inputs")
        for case in cases(f, out):
            if args.only and args.only not in case["name"]:
                continue
            row = run_case(case, out, env)
            rows.append(row)
            print(f"{'ok  ' if row['ok'] else 'FAIL'} {row['name']}: exit {row['exit']}: {row['message'][:150]}")
            if not row["ok"]:
                print(
                    f"     {json.dumps({k: row[k] for k in ('traceback', 'partial_files', 'silent', 'missing_words')})}"
                )
        if not args.no_interrupts:
            for k, case in enumerate(interrupt_cases(f, out)):
                if args.only and args.only not in case["name"]:
                    continue
                sig = signal.SIGINT if k % 2 == 0 else signal.SIGTERM
                row = run_interrupt(case, out, env, sig, args.after)
                interrupts.append(row)
                print(f"{'ok  ' if row['ok'] else 'FAIL'} {row['name']}: exit {row['exit']}: {row['message'][:120]}")
                if not row["ok"]:
                    print(f"     {json.dumps({k: row[k] for k in ('was_running', 'traceback', 'partial_files')})}")
    summary = {
        "bad_inputs": len(rows),
        "bad_input_failures": sum(not r["ok"] for r in rows),
        "tracebacks": sum(r["traceback"] for r in rows + interrupts),
        "partial_files": sum(bool(r["partial_files"]) for r in rows + interrupts),
        "silent_wrong_results": sum(r.get("silent", False) for r in rows),
        "interrupt_cases": len(interrupts),
        "interrupt_failures": sum(not r["ok"] for r in interrupts),
    }
    print(json.dumps(summary))
    if not args.only:
        Path(args.output).write_text(
            json.dumps({"summary": summary, "cases": rows, "interrupts": interrupts}, indent=1) + "\n"
        )
    return 0 if summary["bad_input_failures"] == 0 and summary["interrupt_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
