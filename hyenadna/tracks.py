"""Genome tracks: per-base log P(base | its left context) over a region or a whole chromosome, as a bedGraph.

The region is read in blocks, each with ``overlap`` bases of context before it (and after it, for the reverse
strand), and scored in windows of the model's context that re-read ``overlap`` tokens; memory stays that of one
block whatever the region's length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from hyenadna.data.readers import GenomeFasta
from hyenadna.data.regions import Interval, canonical_chrom
from hyenadna.tokenizer import PAD, UNK, N


def likelihood_track(
    model,
    tokenizer,
    genome: str | Path,
    region: Interval | str,
    overlap: int | None = None,
    both_strands: bool = False,
    batch_size: int = 8,
    block: int = 1 << 18,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(0-based start, values) for consecutive blocks covering ``region`` (an Interval, or a chromosome name for all
    of it): values[i] = log P(base at start + i | the bases before it), natural log; with ``both_strands``, the mean
    with the reverse strand's log P of its complement given the bases after it. NaN where nothing is scored: N
    bases, and a chromosome's first base (forward strand only; its last on the reverse strand)."""
    from hyenadna.data.pipeline import plan_chunks
    from hyenadna.scoring import log_probs_and_embeddings, scoring_policy

    chrom = region if isinstance(region, str) else region.chrom
    fasta = GenomeFasta(genome, {chrom})
    size = fasta.sizes.get(canonical_chrom(chrom))
    if size is None:
        raise ValueError(f"{chrom!r} is not in {genome} (its records: {fasta.record_names()})")
    if isinstance(region, str):
        region = Interval(canonical_chrom(chrom), 0, size)
    if region.end > size:
        raise ValueError(f"region {region} lies outside {chrom} (length {size:,})")
    context = model.config.l_max
    overlap = context // 2 if overlap is None else overlap
    policy = scoring_policy(context, overlap=overlap)
    strands = 2 if both_strands else 1
    prefix = len(tokenizer.prefix)
    for b in range(region.start, region.end, block):
        e = min(region.end, b + block)
        lo = max(0, b - overlap)
        hi = min(size, e + overlap) if both_strands else e
        ids = tokenizer.encode_bases(fasta.fetch(chrom, lo, hi), 0, f"{chrom}:{lo}-{hi}")
        chunks = plan_chunks([ids], tokenizer, policy, strands)
        lps, _ = log_probs_and_embeddings(model, chunks, 1, strands, batch_size, skip_tokens=(N, PAD, UNK))
        n = len(ids)
        values = lps[0][0][prefix : prefix + n]
        if both_strands:
            reverse = lps[0][1][prefix : prefix + n][::-1]  # reverse-complement token t is forward base n-1-t
            with np.errstate(invalid="ignore"):
                values = np.nanmean(np.stack([values, reverse]), axis=0)
        if progress is not None:
            progress(e - b)
        yield b, values[b - lo : e - lo]


def check_bedgraph_path(path: str | Path) -> None:
    """A bedGraph is text (gzip under .gz); a binary track format's name would hold text no browser reads."""
    if Path(path).suffix.lower() in (".bw", ".bigwig", ".bb", ".bigbed"):
        raise ValueError(
            f"{path}: the track is written as bedGraph (.bedgraph, or .bedgraph.gz); make a bigWig of it with "
            "bedGraphToBigWig"
        )


def write_bedgraph(path: str | Path, chrom_name: str, blocks: Iterator[tuple[int, np.ndarray]], digits: int = 4) -> int:
    """One line per scored base, ``chrom start end value`` (0-based, half-open, sorted): what bedGraphToBigWig and
    genome browsers read. Written atomically, gzip-compressed where ``path`` ends in .gz; returns the number of
    lines."""
    from hyenadna.utils.io import atomic_text_file

    check_bedgraph_path(path)
    lines = 0
    with atomic_text_file(path) as f:
        for start, values in blocks:
            keep = np.flatnonzero(np.isfinite(values))
            pos = start + keep
            text = np.char.add(
                np.char.add(f"{chrom_name}\t", pos.astype(str)),
                np.char.add(
                    np.char.add("\t", (pos + 1).astype(str)),
                    np.char.add("\t", np.char.mod(f"%.{digits}f", values[keep])),
                ),
            )
            if len(text):
                f.write("\n".join(text.tolist()) + "\n")
            lines += len(keep)
    return lines
