"""Streaming FASTA reading: one record at a time, plain or gzip/bgzip, with errors that name the file and line."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


class FastaFormatError(ValueError):
    """A malformed FASTA file; the message names the file and line."""


@dataclass
class FastaRecord:
    name: str
    description: str
    sequence: str
    line: int = 0  # line of the first sequence line in the file (0: unknown)
    width: int = 0  # bases per sequence line when all but the last have that many (0: irregular, or one line)


_BINARY_MAGIC = {
    b"\x7fELF": "an ELF executable or library",
    b"PK\x03\x04": "a zip archive",
    b"BZh": "a bzip2 file (decompress it first)",
    b"\xfd7zXZ": "an xz file (decompress it first)",
    b"(\xb5/\xfd": "a zstd file (decompress it first)",
    b"%PDF": "a PDF document",
    b"\x89HDF": "an HDF5 file",
    b"\x89PNG": "a PNG image",
    b"PAR1": "a Parquet file",
    # the genomics formats inside BGZF: found in the decompressed bytes
    b"BAM\x01": "a BAM file (its reads as FASTA: samtools fasta FILE > reads.fa)",
    b"CRAM": "a CRAM file (its reads as FASTA: samtools fasta FILE > reads.fa)",
    b"BCF\x02": "a BCF file (as VCF: bcftools view FILE -Oz -o out.vcf.gz)",
}


def open_text(path: str | Path) -> io.TextIOBase:
    """Open plain or gzip-compressed (including bgzip) text, detected by magic bytes, not by the file name. A binary
    file (an executable, an archive, NUL bytes in its first 4 KiB) is refused by name, not read as text."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file")
    with open(path, "rb") as f:
        head = f.read(4096)
    compressed = head[:2] == b"\x1f\x8b"
    if compressed:  # what is inside counts: BAM and BCF are gzip (BGZF) too
        try:
            with gzip.open(path, "rb") as g:
                head = g.read(4096)
        except (OSError, EOFError, zlib.error):
            head = b""  # a broken gzip (not its compressed bytes, which hold NULs): reading it reports that
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise BinaryInputError(f"{path} is {what.replace('FILE', path.name)}, not a text file of sequences")
    if b"\x00" in head:
        raise BinaryInputError(f"{path} is a binary file (it holds NUL bytes), not a text file of sequences")
    # utf-8-sig: a byte-order mark (Windows editors write one) is dropped, not read as three bad characters
    if compressed:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


class BinaryInputError(ValueError):
    """A binary file where text was expected."""


def read_fasta(path: str | Path, allow_empty: bool = False) -> Iterator[FastaRecord]:
    """Yield records in file order. Lines are joined, outer whitespace dropped. Sequence characters are checked later,
    by the tokenizer, which names the record and position."""
    path = Path(path)
    handle = open_text(path)  # a missing, folder or binary path is its own clear error, raised here
    try:
        with handle:
            yield from parse_fasta(enumerate(handle, 1), str(path), allow_empty)
    except (OSError, EOFError, zlib.error) as e:
        raise FastaFormatError(f"{path}: cannot read ({e}); the file may be truncated or not really gzip") from None


def parse_fasta(
    lines: Iterable[tuple[int, str]], label: str = "<stdin>", allow_empty: bool = False
) -> Iterator[FastaRecord]:
    """The one FASTA parser: records from numbered lines (files, standard input), streamed. Empty and ``;`` comment
    lines are skipped; errors name ``label`` and the line."""
    name, desc, parts, header_line, first_line, last_line, gapless = None, "", [], 0, 0, 0, True
    for lineno, line in lines:
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if name is not None:
                yield _finish(label, name, desc, parts, header_line, first_line, gapless, allow_empty)
            fields = line[1:].split(maxsplit=1)
            if not fields:
                raise FastaFormatError(f"{label}:{lineno}: empty FASTA header")
            name, desc = fields[0], (fields[1].strip() if len(fields) > 1 else "")
            parts, header_line, first_line, gapless = [], lineno, 0, True
        elif name is None:
            raise FastaFormatError(
                f"{label}:{lineno}: sequence data before the first '>' header; is this a FASTA file?"
            )
        else:
            if not parts:
                first_line = lineno
            elif lineno != last_line + 1:
                gapless = False  # a blank or comment line inside the record: positions no longer map to lines
            if " " in line or "\t" in line:  # spaced sequence lines (GenBank-style blocks): whitespace is no base
                line, gapless = "".join(line.split()), False
            parts.append(line)
            last_line = lineno
    if name is None:
        raise FastaFormatError(f"{label}: no FASTA records (no line starts with '>')")
    yield _finish(label, name, desc, parts, header_line, first_line, gapless, allow_empty)


def _finish(
    label: str, name: str, desc: str, parts: list[str], line: int, first_line: int, gapless: bool, allow_empty: bool
) -> FastaRecord:
    seq = "".join(parts)
    if not seq and not allow_empty:
        raise FastaFormatError(f"{label}:{line}: record {name!r} has no sequence")
    width = len(parts[0]) if parts else 0
    regular = bool(parts) and gapless and all(len(p) == width for p in parts[:-1]) and len(parts[-1]) <= width
    return FastaRecord(name, desc, seq, first_line, width if regular else 0)
