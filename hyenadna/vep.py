"""Variant effect scores: for each VCF allele, the log-likelihood ratio of the alternative against the reference
sequence in a window centred on the variant, and the distance between their embeddings."""

from __future__ import annotations

import itertools
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hyenadna.data.fasta import BinaryInputError, open_text
from hyenadna.data.readers import GenomeFasta, SequenceInputError
from hyenadna.data.regions import canonical_chrom

_BASES = set("ACGTN")


@dataclass
class Variant:
    line: int
    chrom: str
    pos: int  # 1-based, as in the VCF
    id: str
    ref: str
    alts: list[str] = field(default_factory=list)


def read_vcf(path: str | Path) -> Iterator[Variant]:
    """Data lines of a VCF (plain or gzip). A malformed line raises a SequenceInputError naming the line."""
    path = Path(path)
    try:
        handle = open_text(path)
    except BinaryInputError as e:
        raise SequenceInputError(str(e)) from None
    except OSError as e:
        raise SequenceInputError(f"{path}: cannot open ({e})") from None
    try:
        saw_header = False
        for lineno, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if line.startswith("##"):
                continue
            if line.startswith("#"):
                saw_header = True
                continue
            if not line.strip():
                continue
            if not saw_header:
                raise SequenceInputError(f"{path}:{lineno}: data before the '#CHROM' header line; is this a VCF?")
            f = line.split("\t")
            if len(f) < 5:
                raise SequenceInputError(f"{path}:{lineno}: a VCF data line needs at least 5 tab-separated columns")
            try:
                pos = int(f[1])
            except ValueError:
                raise SequenceInputError(f"{path}:{lineno}: POS {f[1][:20]!r} is not an integer") from None
            if pos < 1:
                raise SequenceInputError(f"{path}:{lineno}: POS must be >= 1")
            yield Variant(lineno, f[0], pos, f[2], f[3].upper(), [a.upper() for a in f[4].split(",")])
        if not saw_header:
            raise SequenceInputError(f"{path}: no '#CHROM' header line; is this a VCF?")
    except (UnicodeDecodeError, EOFError, zlib.error) as e:
        raise SequenceInputError(f"{path}: cannot read ({e}); the file may be truncated or not really gzip") from None
    except OSError as e:
        raise SequenceInputError(f"{path}: cannot read ({e})") from None
    finally:
        handle.close()


def variant_windows(variant: Variant, alt: str, genome: GenomeFasta, window: int) -> tuple[str, str, int] | str:
    """(reference window, alternative window, offset of the variant in both), or why the allele cannot be scored.

    Both windows have the same length (``window``, less where the chromosome ends) and hold the variant at the same
    offset: ``window // 2`` bases of left flank (fewer near the chromosome's start), the allele, then right flank to
    fill the window. For an indel the two right flanks end at different genome positions, so that no window is longer
    than the other and an LLR never measures length."""
    if window < 2:
        raise ValueError(f"window={window}: must be at least 2 bases")
    c = canonical_chrom(variant.chrom)
    size = genome.sizes.get(c)
    if size is None:
        return "not_in_genome"
    if not alt or any(ch not in _BASES for ch in alt) or not variant.ref or any(ch not in _BASES for ch in variant.ref):
        return "unsupported_allele"
    start = variant.pos - 1
    end = start + len(variant.ref)
    if end > size:
        return "outside_chromosome"
    if genome.fetch(c, start, end).upper() != variant.ref:
        return "ref_mismatch"
    left = min(start, window // 2)
    flank = genome.fetch(c, start - left, start).upper()
    ref = genome.fetch(c, start - left, min(size, start - left + window)).upper()
    right = genome.fetch(c, end, min(size, end + max(0, window - left - len(alt)))).upper()
    alt_seq = (flank + alt + right)[:window]
    n = min(len(ref), len(alt_seq))
    return ref[:n], alt_seq[:n], left


def vep_columns(both_strands: bool = False) -> list[str]:
    """The columns of ``score_variants``' rows, in order."""
    strands = ["llr_forward", "llr_reverse"] if both_strands else []
    head = ["chrom", "pos", "id", "ref", "alt", "status", "llr", "ref_ll", "alt_ll"]
    return [*head, *strands, "window", "offset", "embedding_cosine_distance", "embedding_l2_distance"]


def window_log_probs(
    model, tokenizer, windows: list[str], batch_size: int = 8, strands: int = 1, embeddings: bool = False
):
    """Each window's per-position log-probabilities, ``[window][strand]`` arrays (natural log; the first position
    NaN), and with ``embeddings`` the windows' mean last hidden states (a tensor, else None), as ``vep`` scores them."""
    from hyenadna.data.pipeline import plan_chunks
    from hyenadna.scoring import log_probs_and_embeddings, scoring_policy

    bases = [tokenizer.encode_bases(w, i) for i, w in enumerate(windows)]
    chunks = plan_chunks(bases, tokenizer, scoring_policy(model.config.l_max), strands)
    pooling = "mean" if embeddings else None
    return log_probs_and_embeddings(model, chunks, len(bases), strands, batch_size, pooling=pooling)


def score_window_pairs(
    model,
    tokenizer,
    pairs: list[tuple[str, str]],
    batch_size: int = 8,
    both_strands: bool = False,
    embeddings: bool = True,
) -> list[dict]:
    """For each (reference window, alternative window): ``llr``, ``ref_ll``, ``alt_ll`` (natural log, summed over
    every position but the first; strand-averaged with ``both_strands``, which adds ``llr_forward`` and
    ``llr_reverse``) and, with ``embeddings``, the cosine and L2 distance of the windows' mean last hidden states.
    A window that several pairs share (in-silico mutagenesis: one reference for three bases) is scored once."""
    strands = 2 if both_strands else 1
    unique = list(dict.fromkeys(w for pair in pairs for w in pair))
    index = {w: i for i, w in enumerate(unique)}
    lps, emb = window_log_probs(model, tokenizer, unique, batch_size, strands, embeddings)
    ll = [[float(np.nansum(lp[s])) for s in range(strands)] for lp in lps]
    emb = emb.cpu().numpy() if emb is not None else None
    out = []
    for ref, alt in pairs:
        r, a = index[ref], index[alt]
        per_strand = [ll[a][s] - ll[r][s] for s in range(strands)]
        row = {"llr": float(np.mean(per_strand)), "ref_ll": float(np.mean(ll[r])), "alt_ll": float(np.mean(ll[a]))}
        if both_strands:
            row |= {"llr_forward": per_strand[0], "llr_reverse": per_strand[1]}
        if emb is not None:
            e_ref, e_alt = emb[r], emb[a]
            cos = 1 - float(np.dot(e_ref, e_alt) / (np.linalg.norm(e_ref) * np.linalg.norm(e_alt) + 1e-12))
            row |= {"embedding_cosine_distance": cos, "embedding_l2_distance": float(np.linalg.norm(e_ref - e_alt))}
        out.append(row)
    return out


def score_variant_blocks(
    model,
    tokenizer,
    vcf: str | Path,
    genome_path: str | Path,
    window: int = 1024,
    batch_size: int = 8,
    both_strands: bool = False,
    variants_per_batch: int = 64,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[int, list[dict]]]:
    """One row per (variant, ALT allele), streamed in VCF order. Alleles that cannot be scored get a status and a
    warning.

    ``llr`` = log P(alt window) - log P(ref window), natural log, each the sum of log P(token | tokens before it in
    the window) over the same positions (all but the first) of two windows of equal length that hold the variant at
    the same offset (``variant_windows``). With ``both_strands``, the mean of that and the same on the two windows'
    reverse complements (``llr_forward``, ``llr_reverse`` give each). The embedding distances compare the mean-pooled
    last hidden states of the two windows (averaged over both strands with ``both_strands``). Windows of
    ``variants_per_batch`` records are scored together, in length-bucketed batches of ``batch_size``.

    Yields (block index, rows) per block of ``variants_per_batch`` VCF records; with ``shard=(rank, world)`` only the
    blocks with index % world == rank. Every block is scored on its own, so a sharded run computes each block exactly
    as a single process does."""
    variants = read_vcf(vcf)
    first = next(variants, None)
    if first is None:
        return
    chroms = {v.chrom for v in read_vcf(vcf)}
    genome = GenomeFasta(genome_path, chroms)
    columns = vep_columns(both_strands)

    def score(pending: list[tuple[dict, tuple[str, str, int]]]) -> Iterator[dict]:
        if not pending:
            return
        pairs = [(ref, alt) for _, (ref, alt, _) in pending]
        effects = score_window_pairs(model, tokenizer, pairs, batch_size, both_strands)
        for (row, (ref, _, offset)), effect in zip(pending, effects, strict=True):
            full = {**row, "status": "ok", **effect, "window": len(ref), "offset": offset}
            yield {k: full[k] for k in columns}

    empty = dict.fromkeys(("llr", "ref_ll", "alt_ll", "window", "offset"))
    empty |= dict.fromkeys(("embedding_cosine_distance", "embedding_l2_distance"))
    if both_strands:
        empty |= dict.fromkeys(("llr_forward", "llr_reverse"))
    rank, world = shard
    records = _chain([first], variants)
    for k in itertools.count():
        block = list(itertools.islice(records, variants_per_batch))
        if not block:
            return
        if k % world != rank:
            continue
        rows: list[dict] = []
        pending: list[tuple[dict, tuple[str, str, int]]] = []
        for v in block:
            for alt in v.alts:
                row = {"chrom": v.chrom, "pos": v.pos, "id": v.id, "ref": v.ref, "alt": alt}
                windows = variant_windows(v, alt, genome, window)
                if isinstance(windows, str):
                    rows.extend(score(pending))  # keep the output in VCF order
                    pending = []
                    why = windows.replace("_", " ")
                    if windows == "ref_mismatch":
                        start = v.pos - 1
                        found = genome.fetch(canonical_chrom(v.chrom), start, start + len(v.ref)).upper()
                        why = f"REF {v.ref} differs from the genome's {found} there"
                    elif windows == "not_in_genome":
                        why = f"chromosome {v.chrom!r} is not in {genome_path}"
                    warnings.warn(f"{vcf}:{v.line}: {v.chrom}:{v.pos} {v.ref}>{alt}: {why}; not scored", stacklevel=2)
                    rows.append({**row, "status": windows, **empty})
                    continue
                pending.append((row, windows))
        rows.extend(score(pending))
        yield k, rows


def score_variants(*args, **kwargs) -> Iterator[dict]:
    """One row per (variant, ALT allele), streamed in VCF order; see ``score_variant_blocks`` for the arguments."""
    for _, rows in score_variant_blocks(*args, **kwargs):
        yield from rows


def _chain(first, rest):
    yield from first
    yield from rest
