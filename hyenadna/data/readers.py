"""Sequence input from every format users bring, streamed one record at a time.

FASTA and FASTQ (plain or gzip), CSV/TSV (a sequence column, read in chunks), plain text (one sequence per line),
standard input (``-``), and BED intervals cut from a genome FASTA (strand-aware, with flanks). Every malformed input
raises a ``SequenceInputError`` naming the file and the line or record.
"""

from __future__ import annotations

import io
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hyenadna.data.fasta import BinaryInputError, FastaFormatError, open_text, parse_fasta, read_fasta
from hyenadna.data.regions import BedFormatError, BedRecord, canonical_chrom, interval_problem, parse_bed

FORMATS = ("auto", "fasta", "fastq", "csv", "tsv", "txt")
_EXT = {
    ".fa": "fasta",
    ".fasta": "fasta",
    ".fna": "fasta",
    ".fas": "fasta",
    ".fq": "fastq",
    ".fastq": "fastq",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "txt",
    ".seq": "txt",
}


class SequenceInputError(ValueError):
    """Malformed sequence input; the message names the file and the line or record."""


@dataclass
class SequenceRecord:
    name: str
    sequence: str
    source: str = ""  # the file (or <stdin>) it came from, for messages
    line: int = 0  # the line holding its first base; a CSV/TSV row number; a BED interval's line
    width: int = 0  # bases per line of a wrapped FASTA record (0: the whole sequence is on ``line``)
    unit: str = "line"  # "line", "row" (CSV/TSV), "interval" (BED) or "record" (FASTA with irregular line breaks)

    def where(self, position: int) -> str:
        """Where the 1-based ``position`` of the sequence sits in its input: ``file:line:column`` where that can be
        known, else the row, interval or record."""
        if not self.source or not self.line:
            return ""
        if self.unit == "row":
            return f"{self.source}, row {self.line}"
        if self.unit == "interval":
            return f"{self.source}:{self.line} (the interval on this line)"
        if self.unit == "record":
            return f"{self.source}: the record starting at line {self.line}"
        if self.width:
            return f"{self.source}:{self.line + (position - 1) // self.width}:{(position - 1) % self.width + 1}"
        return f"{self.source}:{self.line}:{position}"


def detect_format(path: str) -> str:
    if path == "-":
        return "auto"
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    return _EXT.get(suffixes[-1], "auto") if suffixes else "auto"


def read_sequences(
    source: str | Path, fmt: str = "auto", column: str = "sequence", allow_empty: bool = False
) -> Iterator[SequenceRecord]:
    """Records from ``source`` (a path or ``-`` for standard input) in file order, without loading it whole. A record
    with no sequence is an error naming it, or with ``allow_empty`` yielded as it is (``skip_invalid_sequences``
    skips it)."""
    source = str(source)
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {FORMATS}")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt in ("csv", "tsv"):
        yield from _read_table(source, "," if fmt == "csv" else "\t", column, allow_empty)
        return
    if source != "-" and not Path(source).is_file():
        if Path(source).is_dir():
            raise SequenceInputError(f"{source} is a folder; give a file of sequences (or - for standard input)")
        raise SequenceInputError(f"{source}: no such file")
    if fmt == "fasta" and source != "-":
        try:
            for rec in read_fasta(source, allow_empty):
                yield _fasta_record(rec, source)
        except (FastaFormatError, BinaryInputError) as e:
            raise SequenceInputError(str(e)) from None
        return
    try:
        handle = sys.stdin if source == "-" else open_text(source)
    except BinaryInputError as e:
        raise SequenceInputError(str(e)) from None
    label = "<stdin>" if source == "-" else source
    try:
        lines = _lines(handle, label)
        first = next(lines, None)
        if first is None:
            raise SequenceInputError(f"{label}: no sequences (the input is empty)")
        if fmt == "auto":
            fmt = {">": "fasta", "@": "fastq"}.get(first[1][:1], "txt")
        reader = {"fasta": _fasta_lines, "fastq": _fastq_lines, "txt": _text_lines}[fmt]
        yield from reader(_chain(first, lines), label, allow_empty)
    finally:
        if handle is not sys.stdin:
            handle.close()


def _lines(handle: io.TextIOBase, label: str) -> Iterator[tuple[int, str]]:
    try:
        for lineno, line in enumerate(handle, 1):
            yield lineno, line.rstrip("\r\n").lstrip("\ufeff") if lineno == 1 else line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as e:
        raise SequenceInputError(f"{label}: cannot read ({e}); the file may be truncated or not really gzip") from None


def _chain(first, rest):
    yield first
    yield from rest


def _fasta_lines(lines, label: str, allow_empty: bool = False) -> Iterator[SequenceRecord]:
    try:
        for rec in parse_fasta(lines, label, allow_empty):
            yield _fasta_record(rec, label)
    except FastaFormatError as e:
        raise SequenceInputError(str(e)) from None


def _fasta_record(rec, label: str) -> SequenceRecord:
    multi_line = rec.width and len(rec.sequence) > rec.width
    return SequenceRecord(
        rec.name, rec.sequence, label, rec.line, rec.width if multi_line else 0, "line" if rec.width else "record"
    )


def _fastq_lines(lines, label: str, allow_empty: bool = False) -> Iterator[SequenceRecord]:
    lines = iter(lines)
    for lineno, header in lines:
        if not header.strip():
            continue
        if not header.startswith("@"):
            raise SequenceInputError(f"{label}:{lineno}: expected a FASTQ '@' header, got {header[:30]!r}")
        block = [next(lines, (lineno, None)) for _ in range(3)]
        if any(text is None for _, text in block):
            raise SequenceInputError(f"{label}:{lineno}: FASTQ record is cut short (needs 4 lines)")
        (_, seq), (plus_line, plus), (qual_line, qual) = block
        if not plus.startswith("+"):
            raise SequenceInputError(f"{label}:{plus_line}: expected the FASTQ '+' line")
        if len(qual) != len(seq):
            raise SequenceInputError(
                f"{label}:{qual_line}: quality length {len(qual)} differs from sequence length {len(seq)}"
            )
        name = header[1:].split(maxsplit=1)[0] if header[1:].strip() else ""
        if not seq and not allow_empty:
            raise SequenceInputError(f"{label}:{lineno}: record {name!r} has no sequence")
        yield SequenceRecord(name or f"line{lineno}", seq, label, lineno + 1)


def _text_lines(lines, label: str, allow_empty: bool = False) -> Iterator[SequenceRecord]:
    for lineno, line in lines:
        if line.strip():
            yield SequenceRecord(f"line{lineno}", line.strip(), label, lineno)


def _read_table(source: str, sep: str, column: str, allow_empty: bool = False) -> Iterator[SequenceRecord]:
    import pandas as pd

    handle = sys.stdin if source == "-" else source
    try:
        chunks = pd.read_csv(handle, sep=sep, chunksize=10_000, dtype=str, keep_default_na=False)
        offset = 0
        for chunk in chunks:
            cols = {c.lower(): c for c in chunk.columns}
            if column.lower() not in cols:
                raise SequenceInputError(f"{source}: no {column!r} column (columns: {list(chunk.columns)})")
            name_col = cols.get("name") or cols.get("id")
            seqs = chunk[cols[column.lower()]].tolist()
            names = chunk[name_col].tolist() if name_col else [f"row{offset + i + 1}" for i in range(len(seqs))]
            for i, (n, s) in enumerate(zip(names, seqs, strict=True)):
                if not s.strip() and not allow_empty:
                    raise SequenceInputError(f"{source}: row {offset + i + 1} ({n}) has an empty sequence")
                yield SequenceRecord(str(n), s, "<stdin>" if source == "-" else source, offset + i + 1, unit="row")
            offset += len(seqs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError, zlib.error) as e:
        raise SequenceInputError(f"{source}: cannot read as {'CSV' if sep == ',' else 'TSV'} ({e})") from None


# ---- BED intervals on a genome -------------------------------------------------------------------------------------

_COMPLEMENT = str.maketrans("ACGTNacgtnRYKMSWBDHVrykmswbdhv", "TGCANtgcanYRMKSWVHDByrmkswvhdb")


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


class GenomeFasta:
    """Random access to a genome FASTA: indexed (pyfaidx) when uncompressed, else the needed chromosomes in memory.
    Chromosome names match across aliases ('chr20' and '20')."""

    def __init__(self, path: str | Path, chromosomes: set[str] | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise SequenceInputError(f"{path}: genome FASTA not found")
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head in (b"\x43\x27\x41\x1a", b"\x1a\x41\x27\x43"):  # the .2bit signature, in either byte order
            raise SequenceInputError(f"{path}: a .2bit genome; give it as FASTA (`twoBitToFa {self.path.name} out.fa`)")
        head = head[:3]
        # gzip, or a byte-order mark that pyfaidx's byte offsets would trip on: the needed chromosomes go in memory
        in_memory = head[:2] == b"\x1f\x8b" or head == b"\xef\xbb\xbf"
        self._seqs: dict[str, str] = {}
        self._faidx = None
        if not in_memory:
            import pyfaidx

            try:
                self._faidx = pyfaidx.Fasta(str(self.path), as_raw=True, sequence_always_upper=False)
            except (pyfaidx.FastaIndexingError, OSError, ValueError) as e:
                raise SequenceInputError(f"{path}: cannot index the genome FASTA ({e})") from None
            keys = list(self._faidx.keys())  # iterating a pyfaidx.Fasta yields records, not names
            self._names = {canonical_chrom(k): k for k in keys}
            self.sizes = {canonical_chrom(k): len(self._faidx[k]) for k in keys}
            self.records = list(keys)
        else:
            wanted = {canonical_chrom(c) for c in chromosomes} if chromosomes else None
            self.records = []  # every record's name, also those not kept: for messages
            try:
                for rec in read_fasta(self.path):
                    self.records.append(rec.name)
                    if wanted is None or canonical_chrom(rec.name) in wanted:
                        self._seqs[canonical_chrom(rec.name)] = rec.sequence
            except FastaFormatError as e:
                raise SequenceInputError(str(e)) from None
            self.sizes = {k: len(v) for k, v in self._seqs.items()}

    def record_names(self, limit: int = 20) -> str:
        """The records' names for a message: the first ``limit``, and how many in all (a genome may hold thousands
        of contigs)."""
        shown = ", ".join(self.records[:limit])
        return shown if len(self.records) <= limit else f"{shown}, ... ({len(self.records):,} in all)"

    def fetch(self, chrom: str, start: int, end: int) -> str:
        c = canonical_chrom(chrom)
        if self._faidx is not None:
            seq = str(self._faidx[self._names[c]][start:end])
            if " " in seq or "\t" in seq:  # pyfaidx's offsets count them as bases: every coordinate after is off
                raise SequenceInputError(
                    f"{self.path}: sequence lines hold spaces or tabs, which the index counts as bases; remove them "
                    "(sed '/^>/!s/[[:blank:]]//g') or gzip the file (it is then read in memory, spaces dropped)"
                )
            return seq
        return self._seqs[c][start:end]


def read_bed_records(bed: str | Path) -> list[BedRecord]:
    """The lines of a BED file (plain or gzip), with a SequenceInputError naming the file and line for a bad one."""
    bed = Path(bed)
    try:
        with open_text(bed) as handle:
            text = handle.read()
    except BinaryInputError as e:
        raise SequenceInputError(str(e)) from None
    except (OSError, EOFError, zlib.error) as e:
        raise SequenceInputError(f"{bed}: cannot read ({e})") from None
    try:
        return parse_bed(text, bed)
    except BedFormatError as e:
        raise SequenceInputError(str(e)) from None


def bed_problem(
    r: BedRecord, genome: GenomeFasta, flank: int = 0, longest: int | None = None, limit: str = "allowed"
) -> str | None:
    """Why a BED interval (widened by ``flank`` on each side) cannot be read from the genome, or is longer than
    ``longest`` (named by ``limit``), in words; None when it can."""
    size = genome.sizes.get(canonical_chrom(r.chrom))
    if size is None:
        return f"chromosome {r.chrom!r} is not in {genome.path}"
    if problem := interval_problem(r.start, r.end):
        return problem
    if longest is not None and r.end - r.start + 2 * flank > longest:
        return f"{r.end - r.start + 2 * flank:,} bases, above the {longest:,} {limit}"
    lo, hi = r.start - flank, r.end + flank
    if lo < 0 or hi > size:
        widened = " (with flanks)" if flank else ""
        return f"interval {r.chrom}:{lo}-{hi}{widened} lies outside the chromosome (length {size:,})"
    return None


# individual warnings for the first skipped sequences; the rest are counted in one line at the end
SKIP_WARNINGS = 5


def skip_invalid_sequences(
    records, policy: str = "iupac_to_n", on_skip: Callable[[int], None] | None = None, warn: bool = True
) -> Iterator[SequenceRecord]:
    """``records`` less those holding a character the tokenizer (with ``policy``) refuses, each skipped with a
    warning naming where it is (the first ``SKIP_WARNINGS``, then a count; none unless ``warn``: one process of
    several) and ``on_skip(1)`` (a progress bar's total). All skipped is an error."""
    import warnings

    from hyenadna.tokenizer import CharacterTokenizer, InvalidCharacterError, sequence_label

    tokenizer = CharacterTokenizer(policy=policy)
    seen = skipped = 0
    for i, rec in enumerate(records):
        seen += 1
        try:
            empty = tokenizer.encode_bases(rec.sequence, i, rec.name).size == 0
        except InvalidCharacterError as e:
            problem, where = str(e), rec.where(e.position) or rec.source or "input"
        else:
            problem = f"{sequence_label(i, rec.name)} has no sequence" if empty else None
            where = (f"{rec.source}:{rec.line}" if rec.line else rec.source) or "input"
        if problem:
            skipped += 1
            if on_skip is not None:
                on_skip(1)
            if warn and skipped <= SKIP_WARNINGS:
                warnings.warn(f"{where}: skipped: {problem}", stacklevel=2)
            continue
        yield rec
    if warn and skipped > SKIP_WARNINGS:
        warnings.warn(
            f"skipped {skipped:,} of {seen:,} sequences: empty, or holding characters that are not DNA", stacklevel=2
        )
    if seen and skipped == seen:
        raise SequenceInputError(
            f"every one of the {seen:,} sequences was empty or held a character that is not DNA; nothing to do"
        )


def read_bed_sequences(
    bed: str | Path,
    genome: str | Path,
    flank: int = 0,
    skip_invalid: bool = False,
    on_skip: Callable[[int], None] | None = None,
    warn: bool = True,
) -> Iterator[SequenceRecord]:
    """One record per BED line: the interval (plus ``flank`` bases on each side), reverse-complemented on '-'.

    An interval on an unknown chromosome or beyond its end is an error naming the line, or, with ``skip_invalid``,
    skipped with a warning (unless not ``warn``) and ``on_skip(1)``."""
    import warnings

    rows = read_bed_records(bed)
    fasta = GenomeFasta(genome, {r.chrom for r in rows})
    kept = 0
    for r in rows:
        lo, hi = r.start - flank, r.end + flank
        problem = bed_problem(r, fasta, flank)
        if problem:
            if not skip_invalid:
                raise SequenceInputError(f"{bed}:{r.line}: {problem}")
            if on_skip is not None:
                on_skip(1)
            if warn:
                warnings.warn(f"{bed}:{r.line}: skipped: {problem}", stacklevel=2)
            continue
        seq = fasta.fetch(r.chrom, lo, hi)
        kept += 1
        yield SequenceRecord(
            r.name, reverse_complement(seq) if r.strand == "-" else seq, str(bed), r.line, unit="interval"
        )
    if rows and not kept:
        raise SequenceInputError(f"{bed}: every one of its {len(rows)} intervals was skipped; nothing to do")
