"""Genomic intervals: parsing ``chrom:start-end`` and BED, chromosome-name aliases, and interval arithmetic.

Coordinates are 0-based, half-open, as in BED.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hyenadna.data.fasta import open_text


@dataclass(frozen=True, order=True)
class Interval:
    chrom: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start}-{self.end}"


def canonical_chrom(name: str) -> str:
    """'chr20', 'Chr20' and '20' are one chromosome; 'chrM' and 'MT' too."""
    n = name[3:] if name.lower().startswith("chr") else name
    return "MT" if n.upper() == "M" else n


# The region every evaluation draws from and no training may touch (GRCh37; see the benchmarks README).
HELD_OUT = Interval("20", 32_000_000, 63_025_520)

_REGION = re.compile(r"^([^:\s]+)(?::([\d,]+)-([\d,]+))?$")


def parse_region(text: str) -> Interval | str:
    """'chr20:100-200' -> Interval; 'chrX' alone -> the chromosome name (the whole chromosome)."""
    m = _REGION.match(text.strip())
    if not m:
        raise ValueError(f"cannot parse region {text!r}; expected chrom or chrom:start-end")
    chrom = canonical_chrom(m.group(1))
    if m.group(2) is None:
        return chrom
    start, end = int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))
    if end <= start:
        raise ValueError(f"region {text!r}: end must be greater than start")
    return Interval(chrom, start, end)


@dataclass(frozen=True)
class BedRecord:
    line: int
    chrom: str  # as written in the file
    start: int
    end: int
    name: str
    strand: str  # "+", "-" or "."


class BedFormatError(ValueError):
    """A malformed BED line; the message names the file and line."""


def parse_bed(text: str, source: str | Path = "<bed>") -> list[BedRecord]:
    """BED lines (3 to 6+ columns; track/browser/comment lines skipped). Intervals are checked against the genome
    by the caller, which knows the chromosome lengths."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        f = line.split("\t") if "\t" in line else line.split()
        if len(f) < 3:
            raise BedFormatError(f"{source}:{lineno}: expected 'chrom start end [name score strand]'")
        for key, value in (("start", f[1]), ("end", f[2])):
            if not value.strip().isdigit():
                raise BedFormatError(f"{source}:{lineno}: {key} {value!r} is not a whole number of bases (0 or more)")
        chrom, start, end = f[0], int(f[1]), int(f[2])
        strand = f[5] if len(f) > 5 else "+"
        if strand not in ("+", "-", "."):
            raise BedFormatError(f"{source}:{lineno}: strand must be +, - or ., got {strand!r}")
        name = f[3] if len(f) > 3 and f[3] not in ("", ".") else f"{chrom}:{start}-{end}({strand})"
        out.append(BedRecord(lineno, chrom, start, end, name, strand))
    return out


def interval_problem(start: int, end: int) -> str | None:
    """Why BED coordinates name no bases (0-based, half-open), or None."""
    if start < 0 or end <= start:
        return f"invalid interval: start {start}, end {end}; BED needs 0 <= start < end (0-based, end excluded)"
    return None


def read_bed(path: str | Path) -> list[Interval]:
    out = []
    with open_text(path) as handle:  # plain or gzip, a byte-order mark dropped
        text = handle.read()
    for r in parse_bed(text, path):
        if problem := interval_problem(r.start, r.end):
            raise BedFormatError(f"{path}:{r.line}: {problem}")
        out.append(Interval(canonical_chrom(r.chrom), r.start, r.end))
    return out


def parse_regions(specs: Iterable[str], chrom_sizes: dict[str, int], skip_absent: bool = False) -> list[Interval]:
    """Regions from a mix of 'chrom', 'chrom:start-end' and BED file paths, clipped to the chromosomes. A region that
    names no base of the genome (its chromosome absent, or it starts past the end) is an error, or with
    ``skip_absent`` (regions to leave out, such as a genome-wide blacklist) is dropped."""
    out: list[Interval] = []
    for spec in specs:
        from_file = Path(spec).is_file()
        if from_file:
            items: list[Interval | str] = list(read_bed(spec))
        else:
            items = [parse_region(spec)]
        for item in items:
            chrom = item if isinstance(item, str) else item.chrom
            if skip_absent and (
                chrom not in chrom_sizes or (isinstance(item, Interval) and item.start >= chrom_sizes[chrom])
            ):
                continue
            if isinstance(item, str):
                if item not in chrom_sizes:
                    raise ValueError(f"region {spec!r}: chromosome {item!r} is not in the genome ({list(chrom_sizes)})")
                out.append(Interval(item, 0, chrom_sizes[item]))
            else:
                if item.chrom not in chrom_sizes:
                    raise ValueError(
                        f"region {spec!r}{f' ({item})' if from_file else ''}: chromosome {item.chrom!r} is not in the"
                        " genome"
                    )
                size = chrom_sizes[item.chrom]
                if item.start >= size:  # a region of another assembly, or a typo: it names no base of this genome
                    raise ValueError(
                        f"region {spec!r}{f' ({item})' if from_file else ''}: starts at {item.start:,}, past the end"
                        f" of chromosome {item.chrom!r} ({size:,} bases in this genome)"
                    )
                out.append(Interval(item.chrom, item.start, min(item.end, size)))
    return merge(out)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for iv in sorted(intervals):
        if out and out[-1].chrom == iv.chrom and iv.start <= out[-1].end:
            out[-1] = Interval(iv.chrom, out[-1].start, max(out[-1].end, iv.end))
        elif len(iv) > 0:
            out.append(iv)
    return out


def subtract(intervals: Iterable[Interval], remove: Iterable[Interval]) -> list[Interval]:
    remove = merge(remove)
    out = []
    for iv in merge(intervals):
        pieces = [iv]
        for r in remove:
            if r.chrom != iv.chrom:
                continue
            nxt = []
            for p in pieces:
                if r.end <= p.start or r.start >= p.end:
                    nxt.append(p)
                    continue
                if p.start < r.start:
                    nxt.append(Interval(p.chrom, p.start, r.start))
                if r.end < p.end:
                    nxt.append(Interval(p.chrom, r.end, p.end))
            pieces = nxt
        out.extend(pieces)
    return out


def overlap(a: Iterable[Interval], b: Iterable[Interval]) -> int:
    """Number of bases in both sets."""
    total = 0
    b = merge(b)
    for x in merge(a):
        for y in b:
            if x.chrom == y.chrom:
                total += max(0, min(x.end, y.end) - max(x.start, y.start))
    return total
