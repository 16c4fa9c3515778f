"""What the commands share: model, Hub and input flags, record streaming, progress and row output."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import zlib
from pathlib import Path

EXAMPLES = """examples:
  hyenadna embed hyenadna/examples/example.fa -o emb.npz                 # bundled model, mean-pooled
  hyenadna embed reads.fq.gz -o emb.parquet --pooling none               # per-token, streamed
  hyenadna embed --bed peaks.bed --genome hg19.fa --flank 100 -o peaks.npz
  hyenadna embed --bed chr21.bed --genome hg19.fa --pooling none -o chr21.npy   # per token, filled on disk
  cat seqs.txt | hyenadna embed - -o emb.npy --model ~/weights/hyenadna-tiny-1k-seqlen-d256
  hyenadna score hyenadna/examples/example.fa -o scores.tsv
  hyenadna vep variants.vcf.gz --genome hg19.fa.gz --window 1024 -o effects.tsv
  hyenadna generate --prompt ACGTTGCA --length 200 --num-samples 3 --temperature 0.8 --top-k 3 --seed 1
  hyenadna info                                                        # the bundled model
  hyenadna info hyenadna-tiny-1k-seqlen     # a published model: fetched from the Hugging Face Hub on first use
  hyenadna convert weights_dir/ converted_dir/ --layout hyenadna
"""


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="published model name (fetched from the Hugging Face Hub on first use, then cached), Hub repo id "
        "(org/name) or checkpoint path (default: the bundled model)",
    )
    add_hub_args(p)
    add_runtime_args(p)
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="bf16/fp16: autocast the dense projections, faster on GPUs and CPUs with native bf16; the FFT "
        "convolution and residual stream stay fp32 (default: fp32, exact)",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default="float32",
        help="the weights' dtype on load (half the memory in bfloat16/float16; default float32)",
    )
    p.add_argument(
        "--random-init",
        action="store_true",
        help="use a randomly initialised model of the named (or default) shape instead of weights",
    )
    p.add_argument(
        "--allow-unsafe-pickle",
        action="store_true",
        help="allow full unpickling of a trusted .ckpt that holds non-tensor objects",
    )


def add_runtime_args(p: argparse.ArgumentParser, device: bool = True, batch_size: int | None = 8) -> None:
    """--threads, and --device and --batch-size where the command runs a model: defined here once for every command."""
    if device:
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    if batch_size is not None:
        p.add_argument("--batch-size", type=int_at_least(1), default=batch_size, help=f"default {batch_size}")
    p.add_argument(
        "--threads",
        type=int_at_least(1),
        help="torch CPU threads (default: one per core, less the cores other processes keep busy)",
    )


def add_memory_args(p: argparse.ArgumentParser) -> None:
    """--gradient-checkpointing, --sequence-chunked and --keep-freed-memory, for the commands that train."""
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="keep each block's inputs only and recompute its activations in the backward: the same gradients in "
        "less memory (small-32k at 32k tokens: 3.6 against 6.4 GB peak), for up to one more forward pass of time; for "
        "windows or batches that would not fit otherwise",
    )
    p.add_argument(
        "--sequence-chunked",
        action="store_true",
        help="train each block in token chunks, keeping only its input: activation memory of about one window-sized "
        "tensor a layer at any window length (large-1m on 1M-token windows), for about one more forward pass of time "
        "than --gradient-checkpointing; the same gradients to float rounding (give it again on --resume)",
    )
    p.add_argument(
        "--keep-freed-memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="on the CPU, keep the memory each step frees for the next instead of page-faulting it in again (faster, "
        "the same results), or hand it back (the least memory: medium-160k pretraining at 160k tokens with "
        "--gradient-checkpointing peaked at 7.8 GB without it, over 21.8 GB with it); default: keep it unless the "
        "kept memory, 2-3x a step's at long windows, would not fit in the memory available",
    )


def _bounded(cast: type, low: float, strict: bool):
    """An argparse type: a ``cast`` value >= low (> low if ``strict``), else a usage error (exit 2) naming the flag."""
    kind = "an integer" if cast is int else "a number"

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not (value > low if strict else value >= low):  # also refuses nan
            raise argparse.ArgumentTypeError(f"{value:g} is {'not greater than' if strict else 'less than'} {low:g}")
        return value

    parse.__name__ = f"{kind.split()[-1]} {'>' if strict else '>='} {low:g}"
    return parse


def int_at_least(low: int):
    return _bounded(int, low, strict=False)


def float_above(low: float):
    return _bounded(float, low, strict=True)


def float_at_least(low: float):
    return _bounded(float, low, strict=False)


def seed(text: str) -> int:
    """An argparse type: a random seed, 0 to 2**32 - 1 (what numpy, torch and scikit-learn all take)."""
    value = int_at_least(0)(text)
    if value > 2**32 - 1:
        raise argparse.ArgumentTypeError(f"{value} is greater than 2**32 - 1 = {2**32 - 1}")
    return value


def figure_path(text: str) -> str:
    """An argparse type: a figure's output path, .png, .pdf or .svg."""
    from hyenadna.utils.io import figure_format

    try:
        figure_format(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def fraction_at_most_one(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = float_at_least(0)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{value:g} is greater than 1")
    return value


def probability(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    value = float_above(0)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{value:g} is greater than 1")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in (0, 1)."""
    value = probability(text)
    if value == 1:
        raise argparse.ArgumentTypeError("1 leaves nothing on the other side: give less than 1")
    return value


def add_hub_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revision", help="Hub branch, tag or commit to use (default: main)")
    p.add_argument(
        "--offline", action="store_true", help="never use the network: the Hub cache only (as HF_HUB_OFFLINE=1)"
    )
    p.add_argument(
        "--hub-layout",
        choices=["auto", "hf", "lightning"],
        default="auto",
        help="for a published name: auto (LongSafari/<name>-hf, else the Lightning repo), hf or lightning",
    )


def model_name_or_path(model: str | None) -> tuple[str | None, str | None]:
    """``--model`` is a path when it exists on disk, else a model name."""
    if model is not None and Path(model).expanduser().exists():
        return None, model
    return model, None


def sdk_config(args: argparse.Namespace, **kw):
    from hyenadna.sdk import HyenaDNAConfig

    name, path = model_name_or_path(args.model)
    fields = {
        "model_name": name,
        "model_path": path,
        "device": args.device,
        "batch_size": args.batch_size,
        "pretrained": not args.random_init,
        "allow_unsafe_pickle": args.allow_unsafe_pickle,
        "precision": getattr(args, "precision", "fp32"),
        "dtype": getattr(args, "dtype", "float32"),
        "revision": getattr(args, "revision", None),
        "local_files_only": getattr(args, "offline", False),
        "hub_layout": getattr(args, "hub_layout", "auto"),
    }
    return HyenaDNAConfig(**{**fields, **kw})


def load_classifier(args: argparse.Namespace, device: str | None = None):
    """The fine-tuned model of ``--classifier`` (a ``hyenadna fine-tune`` folder), run with ``--precision``; the
    options that choose a language model are refused, as the folder holds its own, in float32."""
    import dataclasses

    from hyenadna.finetune import HyenaDNAFineTuningModel

    other = [f for f, given in (("--model", args.model), ("--random-init", args.random_init)) if given]
    if other or args.dtype != "float32":
        raise ValueError(
            f"{', '.join(other + ['--dtype'] * (args.dtype != 'float32'))}: with --classifier the model is the "
            "fine-tuned folder's own, in float32"
        )
    ft = HyenaDNAFineTuningModel.load(args.classifier, device=device or args.device, batch_size=args.batch_size)
    ft.config = dataclasses.replace(ft.config, precision=args.precision)
    print(f"fine-tuned model: {args.classifier}", file=sys.stderr)
    return ft


def add_input_args(p: argparse.ArgumentParser, chunked: bool = True) -> None:
    p.add_argument("input", nargs="?", help="FASTA/FASTQ (.gz), CSV/TSV, text (one sequence per line), or - for stdin")
    p.add_argument("--format", choices=["auto", "fasta", "fastq", "csv", "tsv", "txt"], default="auto")
    p.add_argument("--column", default="sequence", help="sequence column of a CSV/TSV input")
    p.add_argument("--bed", help="BED intervals to cut from --genome (strand-aware) instead of INPUT")
    p.add_argument("--genome", help="genome FASTA for --bed (indexed if uncompressed)")
    p.add_argument("--flank", type=int_at_least(0), default=0, help="bases added on each side of every BED interval")
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip empty sequences, those holding a character that is not DNA, and BED intervals outside the "
        "genome, with a warning (else each is an error)",
    )
    if chunked:  # commands that stream their input in chunks
        p.add_argument(
            "--chunk-size", type=int_at_least(1), default=1000, help="sequences read and processed at a time"
        )


def add_model_option(p: argparse.ArgumentParser) -> None:
    """``--model M`` beside a command's MODEL argument: every other command names its model so, and hands type it."""
    p.add_argument("--model", dest="model_option", metavar="MODEL", help="the same as the MODEL argument")


def take_model_option(args: argparse.Namespace, then: str | None = None) -> None:
    """Move ``--model M`` into ``args.model``; the positional argparse gave MODEL then belongs to ``then`` (the
    INPUT after it)."""
    if args.model_option is None:
        if args.model is None and then is not None:
            raise ValueError("name the model: MODEL (or --model MODEL)")
        return
    if args.model is not None and (then is None or getattr(args, then) is not None):
        raise ValueError(f"two models named: {args.model} and --model {args.model_option}; give one")
    if then is not None:
        setattr(args, then, args.model)
    args.model = args.model_option


def read_records(args: argparse.Namespace, on_skip=None, warn: bool = True):
    """The command's input records; with --skip-invalid, less those it skips, each reported to ``on_skip(1)`` (a
    progress bar's total) and warned of where ``warn`` (one process of a torchrun job warns, not every one)."""
    from hyenadna.data.readers import read_bed_sequences, read_sequences, skip_invalid_sequences

    if args.bed:
        if not args.genome:
            raise ValueError("--bed needs --genome")
        if args.input:
            raise ValueError(f"give INPUT ({args.input}) or --bed with --genome, not both")
        records = read_bed_sequences(args.bed, args.genome, args.flank, args.skip_invalid, on_skip, warn)
    elif not args.input:
        raise ValueError("give an INPUT file (or - for stdin), or --bed with --genome")
    else:
        records = read_sequences(args.input, args.format, args.column, allow_empty=args.skip_invalid)
    return skip_invalid_sequences(records, on_skip=on_skip, warn=warn) if args.skip_invalid else records


def step_size(args: argparse.Namespace) -> int:
    """Records handed to the model at a time: a few batches, so progress moves often; --chunk-size caps it."""
    return min(args.chunk_size, max(16, 4 * getattr(args, "batch_size", 8)))


@contextlib.contextmanager
def located(chunk: list, start_index: int = 0):
    """Turn a bad character in one of ``chunk``'s records into an error naming its file, line and column."""
    from hyenadna.tokenizer import InvalidCharacterError

    try:
        yield
    except InvalidCharacterError as e:
        k = e.index - start_index
        where = chunk[k].where(e.position) if 0 <= k < len(chunk) else ""
        if not where:
            raise
        raise ValueError(f"{where}: {e}") from None


def in_chunks(records, size: int, max_bases: int | None = None):
    """Records in lists of ``size``, or fewer where they reach ``max_bases`` bases first (a longer record alone)."""
    chunk, bases = [], 0
    for rec in records:
        n = len(rec.sequence)
        if chunk and max_bases is not None and bases + n > max_bases:
            yield chunk
            chunk, bases = [], 0
        chunk.append(rec)
        bases += n
        if len(chunk) >= size or (max_bases is not None and bases >= max_bases):
            yield chunk
            chunk, bases = [], 0
    if chunk:
        yield chunk


def count_records(args: argparse.Namespace) -> int | None:
    """How many records the command's input holds, by one quick scan, so a bar can show a total and an ETA. None for
    standard input or anything the scan cannot read (the reader itself then reports the problem)."""
    from hyenadna.data.fasta import open_text
    from hyenadna.data.readers import detect_format

    source = getattr(args, "bed", None) or getattr(args, "input", None) or getattr(args, "vcf", None)
    if not source or source == "-" or not Path(source).is_file():
        return None
    if getattr(args, "bed", None):
        kind = "bed"
    elif getattr(args, "vcf", None) == source:
        kind = "vcf"
    else:
        kind = args.format if getattr(args, "format", "auto") != "auto" else detect_format(source)
    try:
        with open_text(source) as f:
            if kind in ("fasta", "auto"):
                lines = [line[:1] for line in f]
                if lines and lines[0] == "@":
                    return sum(1 for i, c in enumerate(lines) if i % 4 == 0 and c == "@")
                if lines and lines[0] == ">":
                    return lines.count(">")
                return sum(1 for c in lines if c.strip())
            if kind == "fastq":
                return sum(1 for i, line in enumerate(f) if i % 4 == 0 and line.startswith("@"))
            if kind in ("csv", "tsv"):
                return max(0, sum(1 for line in f if line.strip()) - 1)
            if kind == "vcf":  # one row per ALT allele
                rows = (line.split("\t", 5) for line in f if line.strip() and not line.startswith("#"))
                return sum(len(r[4].split(",")) if len(r) > 4 else 1 for r in rows)
            if kind == "bed":
                skip = ("#", "track", "browser")
                return sum(1 for line in f if line.strip() and not line.startswith(skip))
            return sum(1 for line in f if line.strip())
    except (OSError, EOFError, ValueError, UnicodeDecodeError, zlib.error):
        return None


# without a terminal (a batch job's log), a progress line at most this often
PROGRESS_LOG_SECONDS = 60.0


class Progress:
    """A bar on a terminal (with a total and an ETA where the input could be counted), a line a minute in a log
    where there is no terminal, and one summary line at the end in every case: what was done, to where, and how
    fast."""

    def __init__(self, unit: str, total=None, enabled: bool | None = None, share: int = 1):
        """``total``: the items to do (or a function counting them, called only if the bar is shown); ``share``:
        the processes of a torchrun job that split them, of which this one does about 1/share (its summary line
        counts its own share too)."""
        from tqdm.auto import tqdm

        self.unit, self.items, self.bases = unit, 0, 0
        self.start = self.logged = self.drawn = time.perf_counter()
        shown = sys.stderr.isatty() if enabled is None else enabled
        self.log = enabled is None and not shown
        if shown and callable(total):
            total = total()
        self.counted, self.share, self.skipped = total if shown and not callable(total) else None, share, 0
        if self.counted is not None:
            total = -(-self.counted // share)
        self.bar = tqdm(total=total, unit=unit, dynamic_ncols=True, mininterval=0.5, leave=False, disable=not shown)

    def skip(self, items: int) -> None:
        """Items of the input that will not be done (skipped as invalid): out of the total, so the bar ends full."""
        self.skipped += items
        if self.counted is not None:  # a hidden bar's total is never counted
            self.bar.total = -(-max(0, self.counted - self.skipped) // self.share)
            self.bar.refresh()

    def update(self, items: int, bases: int = 0) -> None:
        self.items += items
        self.bar.update(items)
        self.add_bases(bases)

    def add_bases(self, bases: int) -> None:
        """Bases done within the item under way (a long record's windows), ahead of its ``update``."""
        self.bases += bases
        now = time.perf_counter()
        if bases:  # redrawn at most twice a second: a long record's windows move the rate, not the bar
            redraw = now - self.drawn >= 0.5
            self.drawn = now if redraw else self.drawn
            self.bar.set_postfix(bp_s=f"{self.bases / max(1e-9, now - self.start):,.0f}", refresh=redraw)
        if self.log and now - self.logged >= PROGRESS_LOG_SECONDS:
            self.logged = now
            size = f", {self.bases:,} bp ({self.bases / max(now - self.start, 1e-9):,.0f} bp/s)" if self.bases else ""
            print(f"... {self.items:,} {self.unit} finished{size}, {now - self.start:.0f} s", file=sys.stderr)

    def finish(self, done: str, destination: str | None, extra: str = "") -> str:
        """Close the bar and print e.g. ``scored 120 sequences (1,234,567 bp) in 3.4 s (35.3 sequences/s,
        363,108 bp/s) -> out.tsv``; returns the line."""
        self.bar.close()
        dt = time.perf_counter() - self.start
        rate = f"{self.items / max(dt, 1e-9):,.1f} {self.unit}/s"
        if self.bases:
            rate += f", {self.bases / max(dt, 1e-9):,.0f} bp/s"
        size = f" ({self.bases:,} bp)" if self.bases else ""
        unit = self.unit[:-1] if self.items == 1 and self.unit.endswith("s") else self.unit  # "1 sequence"
        line = f"{done} {self.items:,} {unit}{size} in {dt:.2f} s ({rate}){extra} -> {destination or 'stdout'}"
        print(line, file=sys.stderr)
        return line


ROW_FORMATS = ("jsonl", "json", "tsv", "csv")
_ROW_SUFFIXES = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


# binary formats, and text formats of other kinds (a .vcf of scores would be JSON Lines that no VCF reader reads)
_NOT_ROWS = (".parquet", ".npz", ".npy", ".xlsx", ".h5", ".gz", ".vcf", ".bcf", ".bed", ".fa", ".fasta", ".fna", ".fq")


def row_format(output: str | None, fmt: str = "auto", also: str = "") -> str:
    """The format rows are written in: ``fmt``, or by the output's extension (JSON Lines for stdout or another
    extension). A binary format's extension is refused: rows written as text under it would read as a broken file.
    ``also``: what else the command writes, for that message (ism: "or .npz for the matrix")."""
    if fmt != "auto":
        return fmt
    suffix = Path(output).suffix.lower() if output else ""
    if suffix in _NOT_ROWS:
        raise ValueError(
            f"{output}: rows are written as text: name the file .tsv, .csv, .json or .jsonl"
            + (f", {also}" if also else "")
        )
    return _ROW_SUFFIXES.get(suffix, "jsonl")


def write_rows(rows, output: str | None, fmt: str, columns: list[str] | None = None) -> int:
    """Rows (dicts) as JSON Lines, a JSON array, TSV or CSV, streamed to a file (atomically) or stdout; the number of
    rows. With no rows, a table still gets its header line when ``columns`` are known."""
    import csv

    from hyenadna.utils.io import atomic_path

    fmt = row_format(output, fmt)
    count = 0

    def emit(handle) -> None:
        nonlocal count
        header, table = None, csv.writer(handle, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
        for row in rows:
            count += 1
            if fmt in ("jsonl", "json"):
                lead = "" if fmt == "jsonl" else ("[\n" if count == 1 else ",\n")
                handle.write(lead + json.dumps(row) + ("\n" if fmt == "jsonl" else ""))
                continue
            if header is None:
                header = list(row)
                table.writerow(header)
            table.writerow(["" if row[k] is None else row[k] for k in header])
        if fmt == "json":
            handle.write("\n]\n" if count else "[]\n")
        if header is None and fmt in ("tsv", "csv") and columns:
            table.writerow(columns)

    if output:
        with atomic_path(output) as tmp, open(tmp, "w") as f:
            emit(f)
    else:
        emit(sys.stdout)
    return count


def write_blocks(shard, blocks, output: str | None, fmt: str, columns: list[str] | None = None) -> int:
    """Rows arriving as (block index, rows): written straight out by a single process; in a distributed run saved
    per block, then written by rank 0 in block order once every rank is done. The number of rows written (0 on other
    ranks)."""
    if not shard.active:
        return write_rows((row for _, rows in blocks for row in rows), output, fmt, columns)
    for k, rows in blocks:
        shard.save(k, {}, rows)
    written = 0

    def merge(saved) -> None:
        nonlocal written
        written = write_rows((row for _, rows in saved for row in rows), output, fmt, columns)

    shard.finish(merge)
    return written


COMMAND_EXAMPLES = {
    "embed": """examples:
  hyenadna embed hyenadna/examples/example.fa -o emb.npz                 # bundled model, mean-pooled
  hyenadna embed reads.fq.gz -o emb.parquet --pooling none               # per-token, streamed
  hyenadna embed seqs.fa -o emb.npz --layer 1 2                          # two hidden layers: emb.layer1.npz, ...
  hyenadna embed --bed peaks.bed --genome hg19.fa --flank 100 -o peaks.npz
  hyenadna embed --bed chr21.bed --genome hg19.fa --pooling none -o chr21.npy   # per token, filled on disk
  cat seqs.txt | hyenadna embed - -o emb.npy --model hyenadna-tiny-1k-seqlen-d256 --offline
""",
    "score": """examples:
  hyenadna score hyenadna/examples/example.fa -o scores.tsv
  hyenadna score long.fa --overlap 256 -o scores.jsonl      # windows re-read 256 bases of left context
  hyenadna score --track chr20.bedgraph --genome GRCh37_chr20.fa.gz --region chr20:1,000,000-2,000,000 --both-strands
""",
    "vep": """examples:
  hyenadna vep variants.vcf.gz --genome hg19.fa.gz -o effects.tsv
  hyenadna vep variants.vcf.gz --genome hg19.fa.gz --window 512 --both-strands -o effects.tsv
  hyenadna vep variants.vcf.gz --genome hg19.fa.gz --classifier promoter_model --target 1 -o promoter_effects.tsv
""",
    "generate": """examples:
  hyenadna generate --prompt ACGTTGCA --length 200
  hyenadna generate --prompt ACGTTGCA --length 200 --num-samples 3 --temperature 0.8 --top-k 3 --seed 1 -o s.fa
  hyenadna generate loci.fa --length 1000 --top-p 0.9 -o continued.fa        # each record continued
  hyenadna generate --bed loci.bed --genome hg19.fa.gz --length 1000 --model hyenadna-tiny-16k-d256-grch37
""",
    "info": """examples:
  hyenadna info                                                        # the bundled model
  hyenadna info hyenadna-tiny-1k-seqlen     # a published model: fetched from the Hugging Face Hub on first use
  hyenadna info my-classifier/              # a folder written by `hyenadna fine-tune`
""",
    "autotune": """examples:
  hyenadna autotune                    # this CPU's kernel choices and their timings (measured once, then cached)
  hyenadna autotune --refresh          # measure again, e.g. after a BIOS, driver or library change
  HYENADNA_AUTOTUNE=0 hyenadna embed x.fa -o x.npz   # skip measuring; use the defaults (measured on AMD EPYC)
  HYENADNA_AUTOTUNE=runs/task/scratch/seed0.json hyenadna benchmark ...   # the kernels that run used (its rounding)
""",
    "export": """examples:
  hyenadna export runs/my-run my-model               # config.json, model.safetensors and a model card
  hyenadna export runs/my-run my-model --evaluation eval.json
  hyenadna export runs/long my-long-model --parent runs/short   # warm-started from runs/short: the card counts both
""",
    "convert": """examples:
  hyenadna convert hub/weights.ckpt my-model                       # any layout in, ours out
  hyenadna convert my-model my-model-hf --layout hf
  hyenadna convert my-model my-model-hf --layout hf --overwrite    # replace an existing folder
""",
    "fine-tune": """examples:
  hyenadna fine-tune ../shared/benchmarks/promoter_all --out my-classifier
  hyenadna fine-tune task/ --out clf --epochs 3 --patience 1 --max-train 2000 --head-init probe
""",
    "predict": """examples:
  hyenadna predict my-classifier seqs.fa                      # JSON Lines on stdout
  hyenadna predict my-classifier seqs.fa -o preds.json --out-format json --rc-average
""",
    "evaluate": """examples:
  hyenadna evaluate --fasta ../shared/data/genome/GRCh37_chr20.fa.gz --include 20:0-32000000
  hyenadna evaluate my-model --fasta genome.fa.gz --windows 512 -o eval.json --no-markov
""",
}


def add_command(sub, name: str, help: str, func, epilog: str | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=epilog or COMMAND_EXAMPLES.get(name, EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p
