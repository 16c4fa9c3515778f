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


def open_text(path: str | Path) -> io.TextIOBase:
    """Open plain or gzip-compressed (including bgzip) text, detected by magic bytes, not by the file name."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="ascii", errors="replace")
    return open(path, encoding="ascii", errors="replace")


def read_fasta(path: str | Path, allow_empty: bool = False) -> Iterator[FastaRecord]:
    """Yield records in file order. Lines are joined, outer whitespace dropped. Sequence characters are checked later,
    by the tokenizer, which names the record and position."""
    path = Path(path)
    try:
        with open_text(path) as handle:
            yield from parse_fasta(enumerate(handle, 1), str(path), allow_empty)
    except (OSError, EOFError, zlib.error) as e:
        raise FastaFormatError(f"{path}: cannot read ({e}); the file may be truncated or not really gzip") from None


def parse_fasta(
    lines: Iterable[tuple[int, str]], label: str = "<stdin>", allow_empty: bool = False
) -> Iterator[FastaRecord]:
    """The one FASTA parser: records from numbered lines (files, standard input), streamed. Empty and ``;`` comment
    lines are skipped; errors name ``label`` and the line."""
    name, desc, parts, header_line = None, "", [], 0
    for lineno, line in lines:
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if name is not None:
                yield _finish(label, name, desc, parts, header_line, allow_empty)
            fields = line[1:].split(maxsplit=1)
            if not fields:
                raise FastaFormatError(f"{label}:{lineno}: empty FASTA header")
            name, desc = fields[0], (fields[1].strip() if len(fields) > 1 else "")
            parts, header_line = [], lineno
        elif name is None:
            raise FastaFormatError(
                f"{label}:{lineno}: sequence data before the first '>' header; is this a FASTA file?"
            )
        else:
            parts.append(line)
    if name is None:
        raise FastaFormatError(f"{label}: no FASTA records (no line starts with '>')")
    yield _finish(label, name, desc, parts, header_line, allow_empty)


def _finish(label: str, name: str, desc: str, parts: list[str], line: int, allow_empty: bool) -> FastaRecord:
    seq = "".join(parts)
    if not seq and not allow_empty:
        raise FastaFormatError(f"{label}:{line}: record {name!r} has no sequence")
    return FastaRecord(name, desc, seq)
