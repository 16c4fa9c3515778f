"""Streaming FASTA reading: one record at a time, plain or gzip/bgzip, with errors that name the file and line."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
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
    name, desc, parts, header_line = None, "", [], 0
    try:
        with open_text(path) as handle:
            for lineno, line in enumerate(handle, 1):
                line = line.strip()
                if not line or line.startswith(";"):
                    continue
                if line.startswith(">"):
                    if name is not None:
                        yield _finish(path, name, desc, parts, header_line, allow_empty)
                    header = line[1:].strip()
                    if not header:
                        raise FastaFormatError(f"{path}:{lineno}: empty FASTA header")
                    name, _, desc = header.partition(" ")
                    desc = desc.strip()
                    parts, header_line = [], lineno
                elif name is None:
                    raise FastaFormatError(
                        f"{path}:{lineno}: sequence data before the first '>' header; is this a FASTA file?"
                    )
                else:
                    parts.append(line)
    except (OSError, EOFError, zlib.error) as e:
        raise FastaFormatError(f"{path}: cannot read ({e}); the file may be truncated or not really gzip") from None
    if name is None:
        raise FastaFormatError(f"{path}: no FASTA records (no line starts with '>')")
    yield _finish(path, name, desc, parts, header_line, allow_empty)


def _finish(path: Path, name: str, desc: str, parts: list[str], line: int, allow_empty: bool) -> FastaRecord:
    seq = "".join(parts)
    if not seq and not allow_empty:
        raise FastaFormatError(f"{path}:{line}: record {name!r} has no sequence")
    return FastaRecord(name, desc, seq)
