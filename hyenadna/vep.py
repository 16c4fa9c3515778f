"""Variant effect scores: for each VCF allele, the log-likelihood ratio of the alternative against the reference
sequence in a window centred on the variant, and the distance between their embeddings."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hyenadna.data.fasta import open_text
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


def variant_windows(variant: Variant, alt: str, genome: GenomeFasta, window: int) -> tuple[str, str] | str:
    """(reference window, alternative window), or the reason the allele cannot be scored."""
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
    left = max(0, start - window // 2)
    right = min(size, end + max(0, window - (start - left) - len(variant.ref)))
    ref = genome.fetch(c, left, right).upper()
    alt_seq = ref[: start - left] + alt + ref[end - left :]
    return ref, alt_seq


def score_variants(
    model, tokenizer, vcf: str | Path, genome_path: str | Path, window: int = 1024, batch_size: int = 8
) -> Iterator[dict]:
    """One row per (variant, ALT allele): llr = log P(alt window) - log P(ref window) in nats, plus cosine and L2
    distances between mean-pooled embeddings. Alleles that cannot be scored get a status and a warning."""
    import torch

    from hyenadna.pooling import masked_pool
    from hyenadna.scoring import score_ids
    from hyenadna.tokenizer import pad_batch

    variants = list(read_vcf(vcf))
    genome = GenomeFasta(genome_path, {v.chrom for v in variants})
    device = next(model.parameters()).device
    context = model.config.l_max
    for v in variants:
        for alt in v.alts:
            row = {"chrom": v.chrom, "pos": v.pos, "id": v.id, "ref": v.ref, "alt": alt}
            windows = variant_windows(v, alt, genome, window)
            if isinstance(windows, str):
                warnings.warn(
                    f"{vcf}:{v.line}: {v.chrom}:{v.pos} {v.ref}>{alt}: {windows.replace('_', ' ')}; not scored",
                    stacklevel=2,
                )
                yield {
                    **row,
                    "status": windows,
                    "llr": None,
                    "ref_ll": None,
                    "alt_ll": None,
                    "embedding_cosine_distance": None,
                    "embedding_l2_distance": None,
                }
                continue
            ids = [tokenizer.frame(tokenizer.encode_bases(s)) for s in windows]
            ref_s, alt_s = score_ids(model, ids, context, batch_size, device)
            with torch.no_grad():
                enc = pad_batch([x[:context] for x in ids]).to(device)
                emb = masked_pool(model.backbone(enc.input_ids), enc.attention_mask).float().cpu().numpy()
            cos = 1 - float(np.dot(emb[0], emb[1]) / (np.linalg.norm(emb[0]) * np.linalg.norm(emb[1]) + 1e-12))
            yield {
                **row,
                "status": "ok",
                "llr": alt_s.log_likelihood - ref_s.log_likelihood,
                "ref_ll": ref_s.log_likelihood,
                "alt_ll": alt_s.log_likelihood,
                "embedding_cosine_distance": cos,
                "embedding_l2_distance": float(np.linalg.norm(emb[0] - emb[1])),
            }
