"""Variant effect scores: for each VCF allele, the log-likelihood ratio of the alternative against the reference
sequence in a window centred on the variant, and the distance between their embeddings; or, under a fine-tuned
model, how its prediction for that window moves."""

from __future__ import annotations

import bisect
import itertools
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hyenadna.data.fasta import BinaryInputError, open_text
from hyenadna.data.readers import (
    GenomeFasta,
    SequenceInputError,
    bed_problem,
    read_bed_records,
    reverse_complement,
)
from hyenadna.data.regions import BedRecord, canonical_chrom

if TYPE_CHECKING:
    import pandas as pd

    from hyenadna.finetune import HyenaDNAFineTuningModel

_BASES = set("ACGTN")
# alleles of one status warned of one by one, the rest counted in one warning: a gVCF's reference blocks (<NON_REF>)
# or a joint call's spanning deletions (*) would otherwise print a line each, millions for a genome
WARNINGS_PER_STATUS = 5


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
    problem = allele_problem(variant, alt, genome)
    if problem:
        return problem
    variant, alt = normalized(variant, alt, genome)
    start = variant.pos - 1
    windows = _windows_from(variant, alt, genome, start - min(start, window // 2), window)
    return _unless_unseen(variant, alt, windows, window)


def normalized(variant: Variant, alt: str, genome: GenomeFasta) -> tuple[Variant, str]:
    """The allele as ``bcftools norm`` writes it: bases that REF and ALT share trimmed, and an indel shifted as far
    left as the sequence repeats (Tan, Abecasis and Kang 2015). A change has one spelling this way, so the windows
    centred on it do not depend on which a VCF used: two spellings of one indel in a repeat had scored a median
    0.35 nats apart (``benchmarks/vep_windows.py``). A shift stops before a base that is not A, C, G or T."""
    start, ref = variant.pos - 1, variant.ref
    if ref == alt:
        return variant, alt
    left, left_start = "", start  # the genome before ``start``, fetched a block at a time as the shift needs it
    while ref[-1] == alt[-1]:
        if min(len(ref), len(alt)) == 1:
            if not left:
                lo = max(0, left_start - 64)
                left, left_start = genome.fetch(variant.chrom, lo, left_start).upper(), lo
            if not left or left[-1] not in "ACGT":
                break
            ref, alt, left, start = left[-1] + ref, left[-1] + alt, left[:-1], start - 1
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, start = ref[1:], alt[1:], start + 1
    return Variant(variant.line, variant.chrom, start + 1, variant.id, ref, [alt]), alt


def _unless_unseen(
    variant: Variant, alt: str, windows: tuple[str, str, int], window: int
) -> tuple[str, str, int] | str:
    """The windows, or why they cannot tell the alleles apart: at a chromosome's end both are cut to the shorter,
    which can leave out all that differs (``past_chromosome_end``: a deletion of the last bases), and a change in a
    repeat that reaches past their end moves only bases beyond it (``repeat_past_window``: an A inserted in 150 As
    with 60 bases of window after the change). An LLR of 0 there would be no measurement."""
    ref, alt_seq, _ = windows
    if ref != alt_seq or variant.ref == alt:
        return windows
    return "past_chromosome_end" if len(ref) < window else "repeat_past_window"


def region_windows(variant: Variant, alt: str, genome: GenomeFasta, region: BedRecord) -> tuple[str, str, int] | str:
    """The windows of ``variant_windows`` anchored at a region instead of centred on the variant: the region's
    sequence and the same length of sequence carrying the allele (past an indel, the genome fills to the region's
    length), both reverse-complemented on a '-' region, as a model trained on such regions reads them. The offset is
    the variant's, from the region's start on the genome's + strand. The variant's REF must lie inside the region."""
    problem = allele_problem(variant, alt, genome)
    if problem:
        return problem
    start = variant.pos - 1
    if not region.start <= start or start + len(variant.ref) > region.end:
        return "outside_region"
    length = region.end - region.start
    windows = _unless_unseen(variant, alt, _windows_from(variant, alt, genome, region.start, length), length)
    if isinstance(windows, str):
        return windows
    ref, alt_seq, offset = windows
    if region.strand == "-":
        ref, alt_seq = reverse_complement(ref), reverse_complement(alt_seq)
    return ref, alt_seq, offset


def allele_problem(variant: Variant, alt: str, genome: GenomeFasta) -> str | None:
    """Why an allele cannot be scored (its status), or None."""
    size = genome.sizes.get(canonical_chrom(variant.chrom))
    if size is None:
        return "not_in_genome"
    if not alt or any(ch not in _BASES for ch in alt) or not variant.ref or any(ch not in _BASES for ch in variant.ref):
        return "unsupported_allele"
    if "N" in alt or "N" in variant.ref:
        return "n_allele"
    start = variant.pos - 1
    if start + len(variant.ref) > size:
        return "outside_chromosome"
    if genome.fetch(variant.chrom, start, start + len(variant.ref)).upper() != variant.ref:
        return "ref_mismatch"
    return None


def _windows_from(variant: Variant, alt: str, genome: GenomeFasta, lo: int, window: int) -> tuple[str, str, int]:
    """``window`` bases of the genome from ``lo``, and the same with the allele: flank, allele, then the genome after
    the REF allele up to the same length (both cut to the shorter where the chromosome ends)."""
    c = variant.chrom
    size = genome.sizes[canonical_chrom(c)]
    start = variant.pos - 1
    end = start + len(variant.ref)
    ref = genome.fetch(c, lo, min(size, lo + window)).upper()
    right = genome.fetch(c, end, min(size, end + max(0, window - (start - lo) - len(alt)))).upper()
    alt_seq = (genome.fetch(c, lo, start).upper() + alt + right)[:window]
    n = min(len(ref), len(alt_seq))
    return ref[:n], alt_seq[:n], start - lo


def centred(window: int) -> Callable[[Variant, str, GenomeFasta], list]:
    """``variant_blocks``' ``windows_of`` for windows centred on each allele (``variant_windows``)."""
    return lambda v, alt, genome: [({}, variant_windows(v, alt, genome, window))]


def vep_columns(both_strands: bool = False) -> list[str]:
    """The columns of ``score_variants``' rows, in order."""
    strands = ["llr_forward", "llr_reverse"] if both_strands else []
    head = ["chrom", "pos", "id", "ref", "alt", "status", "llr", "ref_ll", "alt_ll"]
    return [*head, *strands, "window", "offset", "n_skipped", "embedding_cosine_distance", "embedding_l2_distance"]


def window_log_probs(
    model, tokenizer, windows: list[str], batch_size: int = 8, strands: int = 1, embeddings: bool = False
):
    """Each window's per-position log-probabilities, ``[window][strand]`` arrays (natural log; NaN at the first
    position and at targets that are N, as ``score`` leaves them out), and with ``embeddings`` the windows' mean last
    hidden states (a tensor, else None), as ``vep`` scores them."""
    from hyenadna.data.pipeline import plan_chunks
    from hyenadna.scoring import log_probs_and_embeddings, scoring_policy
    from hyenadna.tokenizer import PAD, UNK, N

    bases = [tokenizer.encode_bases(w, i) for i, w in enumerate(windows)]
    chunks = plan_chunks(bases, tokenizer, scoring_policy(model.config.l_max), strands)
    pooling = "mean" if embeddings else None
    return log_probs_and_embeddings(
        model, chunks, len(bases), strands, batch_size, pooling=pooling, skip_tokens=(N, PAD, UNK)
    )


def check_window(model, tokenizer, window: int) -> None:
    """Refuse a window longer than the language model reads at once: it would be scored in pieces, each starting
    its context again, so a variant's LLR would depend on where a piece boundary fell."""
    room = model.config.l_max - len(tokenizer.prefix) - len(tokenizer.suffix)
    if window > room:
        raise ValueError(
            f"window {window:,}: the model reads at most {room:,} bases at once (l_max {model.config.l_max:,}); "
            f"give a window of at most {room:,}, or a model with a longer context"
        )


def score_window_pairs(
    model,
    tokenizer,
    pairs: list[tuple[str, str]],
    batch_size: int = 8,
    both_strands: bool = False,
    embeddings: bool = True,
) -> list[dict]:
    """For each (reference window, alternative window): ``llr``, ``ref_ll``, ``alt_ll`` (natural log, summed over
    the same positions of both windows: every one but the first, less those where either window holds N, counted in
    ``n_skipped``; strand-averaged with ``both_strands``, which adds ``llr_forward`` and ``llr_reverse``) and, with
    ``embeddings``, the cosine and L2 distance of the windows' mean last hidden states. A window that several pairs
    share (in-silico mutagenesis: one reference for three bases) is scored once."""
    strands = 2 if both_strands else 1
    unique = list(dict.fromkeys(w for pair in pairs for w in pair))
    index = {w: i for i, w in enumerate(unique)}
    lps, emb = window_log_probs(model, tokenizer, unique, batch_size, strands, embeddings)
    emb = emb.cpu().numpy() if emb is not None else None
    out = []
    for ref, alt in pairs:
        r, a = index[ref], index[alt]
        # The model's probability of an N is not a property of the DNA, and where a gap lay in the window the
        # variant's change of it outweighed the variant's own effect (2-14 nats for SNVs 5-200 bases before a gap,
        # benchmarks/vep_windows.py); leaving it out of one window only would make the LLR measure where the gap is.
        kept = [np.isfinite(lps[r][s]) & np.isfinite(lps[a][s]) for s in range(strands)]
        ll_ref = [float(lps[r][s][kept[s]].sum()) for s in range(strands)]
        ll_alt = [float(lps[a][s][kept[s]].sum()) for s in range(strands)]
        per_strand = [ll_alt[s] - ll_ref[s] for s in range(strands)]
        row = {"llr": float(np.mean(per_strand)), "ref_ll": float(np.mean(ll_ref)), "alt_ll": float(np.mean(ll_alt))}
        row["n_skipped"] = int(len(kept[0]) - 1 - kept[0].sum())
        if both_strands:
            row |= {"llr_forward": per_strand[0], "llr_reverse": per_strand[1]}
        if emb is not None:
            e_ref, e_alt = emb[r], emb[a]
            # rounding can put the cosine a hair above 1 for windows the model sees as one
            cos = max(0.0, 1 - float(np.dot(e_ref, e_alt) / (np.linalg.norm(e_ref) * np.linalg.norm(e_alt) + 1e-12)))
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
    the window) over the same positions (all but the first, less those where either window holds N: ``n_skipped``)
    of two windows of equal length that hold the variant at the same offset (``variant_windows``). With
    ``both_strands``, the mean of that and the same on the two windows' reverse complements (``llr_forward``,
    ``llr_reverse`` give each). The embedding distances compare the mean-pooled last hidden states of the two
    windows (averaged over both strands with ``both_strands``). Windows of ``variants_per_batch`` records are scored
    together, in length-bucketed batches of ``batch_size``.

    Yields (block index, rows) per block of ``variants_per_batch`` VCF records; with ``shard=(rank, world)`` only the
    blocks with index % world == rank. Every block is scored on its own, so a sharded run computes each block exactly
    as a single process does."""

    check_window(model, tokenizer, window)

    def score(pairs: list[tuple[str, str]]) -> list[dict]:
        return score_window_pairs(model, tokenizer, pairs, batch_size, both_strands)

    columns = vep_columns(both_strands)
    yield from variant_blocks(vcf, genome_path, centred(window), score, columns, variants_per_batch, shard)


def effects_table(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows of variant effects as a DataFrame; integer columns stay integers, empty (<NA>) where not scored."""
    import pandas as pd

    table = pd.DataFrame(rows, columns=columns)
    for column in ("window", "offset", "n_skipped", "target", "ref_class", "alt_class"):
        values = [row.get(column) for row in rows]
        if column in table and all(v is None or isinstance(v, int) for v in values):
            table[column] = pd.array(values, dtype="Int64")
    return table


def classifier_vep_columns(classification: bool = True, regions: bool = False) -> list[str]:
    """The columns of ``classifier_variant_blocks``' rows, in order: a classifier's log-odds, probability and
    predicted class, or a regressor's value; with ``regions``, the region (BED name) and its strand."""
    m = "log_odds" if classification else "value"
    predicted = ["ref_prob", "alt_prob", "ref_class", "alt_class"] if classification else []
    head = ["chrom", "pos", "id", "ref", "alt", *(["region", "strand"] if regions else []), "status", "target"]
    return [*head, f"delta_{m}", f"ref_{m}", f"alt_{m}", *predicted, "window", "offset"]


def classifier_window(ft: HyenaDNAFineTuningModel, window: int | None) -> int:
    """The bases a fine-tuned model reads around each variant: ``window``, by default the median length of the
    sequences it was trained on (a model reads best what it was trained on); at most what fits beside its framing
    tokens."""
    if window is None:
        window = ft.input_length
        if window is None:
            raise ValueError(
                "this fine-tuned model does not record the length of the sequences it was trained on (it was saved "
                "before that was kept): give the window, as long as its training sequences (--window)"
            )
    room = ft.max_bases
    if window > room:
        raise ValueError(f"window {window:,}: the model reads at most {room:,} bases beside its framing tokens")
    return window


def classifier_window_pairs(
    ft: HyenaDNAFineTuningModel, pairs: list[tuple[str, str]], target: int | None = None, rc_average: bool = False
) -> list[dict]:
    """For each (reference window, alternative window): how the fine-tuned model's output moves, as its
    ``predict`` computes it. A classifier: the log-odds of class ``target`` (default: the class it predicts for the
    reference window) on both windows and their difference, that class's probability on both, and the class
    predicted for each; a regressor: output ``target`` (default 0). ``rc_average``: outputs averaged over both
    strands, as ``predict(rc_average=True)``."""
    from hyenadna.finetune import target_score

    classification = ft.head_type == "classification"
    if target is not None:
        ft.check_target(target)
    unique = list(dict.fromkeys(w for pair in pairs for w in pair))
    index = {w: i for i, w in enumerate(unique)}
    outputs = ft.get_outputs(unique, rc_average).astype(np.float64)
    names = ft.label_names or []
    m = "log_odds" if classification else "value"
    if classification:
        probs = np.exp(outputs - outputs.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
    out = []
    for ref, alt in pairs:
        r, a = index[ref], index[alt]
        t = target if target is not None else (int(outputs[r].argmax()) if classification else 0)
        ref_score, alt_score = target_score(outputs[[r, a]], t, classification).tolist()
        row = {"target": _class_name(names, t), f"delta_{m}": alt_score - ref_score}
        row |= {f"ref_{m}": ref_score, f"alt_{m}": alt_score}
        if classification:
            row |= {"ref_prob": float(probs[r, t]), "alt_prob": float(probs[a, t])}
            row |= {"ref_class": _class_name(names, int(outputs[r].argmax()))}
            row |= {"alt_class": _class_name(names, int(outputs[a].argmax()))}
        out.append(row)
    return out


def classifier_variant_blocks(
    ft: HyenaDNAFineTuningModel,
    vcf: str | Path,
    genome_path: str | Path,
    window: int | None = None,
    target: int | None = None,
    rc_average: bool = False,
    regions: str | Path | None = None,
    variants_per_batch: int = 64,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[int, list[dict]]]:
    """Each VCF allele scored by a fine-tuned model (``classifier_window_pairs``), on one of two kinds of window:

    - by default the equal-length reference and alternative windows that ``score_variant_blocks`` scores
      (``variant_windows``: the variant at ``window // 2``), ``window`` bases long (``classifier_window``): right for
      a model trained on windows centred on what it classifies;
    - with ``regions`` (a BED file, strand in column 6) each allele inside a region, in every region that holds its
      REF allele, scored on that region as the model reads it (``region_windows``; reverse-complemented on '-'):
      right for a model trained on windows anchored elsewhere, such as promoters at -249..+50 of a TSS on the gene
      strand. Rows then name the region and its strand; an allele wholly inside no region gets one row with status
      ``outside_regions`` and empty effects (one warning counts them), so every VCF allele is accounted for.

    Blocks, shards and statuses as in ``score_variant_blocks``."""
    if target is not None:
        ft.check_target(target)
    columns = classifier_vep_columns(ft.head_type == "classification", regions is not None)

    def score(pairs: list[tuple[str, str]]) -> list[dict]:
        return classifier_window_pairs(ft, pairs, target, rc_average)

    if regions is None:
        window = classifier_window(ft, window)
        yield from variant_blocks(vcf, genome_path, centred(window), score, columns, variants_per_batch, shard)
        return
    if window is not None:
        raise ValueError("give a window or regions, not both: with regions the model reads each region")
    records = read_bed_records(regions)
    index = RegionIndex(records)

    def check(genome: GenomeFasta) -> None:
        for r in records:
            problem = bed_problem(r, genome, longest=ft.max_bases, limit="the model reads beside its framing tokens")
            if problem:
                raise SequenceInputError(f"{regions}:{r.line}: {problem}")

    def windows_of(v: Variant, alt: str, genome: GenomeFasta) -> list:
        return [
            ({"region": r.name, "strand": r.strand}, region_windows(v, alt, genome, r))
            for r in index.containing(v.chrom, v.pos - 1, v.pos - 1 + max(1, len(v.ref)))
        ]

    chroms = {r.chrom for r in records}
    yield from variant_blocks(vcf, genome_path, windows_of, score, columns, variants_per_batch, shard, chroms, check)


class RegionIndex:
    """BED records by chromosome, for the regions that contain a span."""

    def __init__(self, records: list[BedRecord]):
        self.by_chrom: dict[str, tuple[list[int], list[BedRecord], int]] = {}
        grouped: dict[str, list[BedRecord]] = {}
        for r in records:
            grouped.setdefault(canonical_chrom(r.chrom), []).append(r)
        for c, rs in grouped.items():
            rs.sort(key=lambda r: (r.start, r.line))
            self.by_chrom[c] = ([r.start for r in rs], rs, max(r.end - r.start for r in rs))

    def containing(self, chrom: str, start: int, end: int) -> list[BedRecord]:
        """The regions holding [start, end), in file order."""
        entry = self.by_chrom.get(canonical_chrom(chrom))
        if entry is None:
            return []
        starts, rs, longest = entry
        lo, hi = bisect.bisect_left(starts, start - longest), bisect.bisect_right(starts, start)
        return sorted((r for r in rs[lo:hi] if r.end >= end), key=lambda r: r.line)


def variant_blocks(
    vcf: str | Path,
    genome_path: str | Path,
    windows_of: Callable[[Variant, str, GenomeFasta], list[tuple[dict, tuple[str, str, int] | str]]],
    score_pairs: Callable[[list[tuple[str, str]]], list[dict]],
    columns: list[str],
    variants_per_batch: int = 64,
    shard: tuple[int, int] = (0, 1),
    chromosomes: set[str] | None = None,
    check: Callable[[GenomeFasta], None] | None = None,
) -> Iterator[tuple[int, list[dict]]]:
    """The VCF in blocks of ``variants_per_batch`` records, each allele's windows (``windows_of``: (fields for its
    row, windows or why not) per row) scored by ``score_pairs`` (a list of (reference, alternative) windows -> one
    dict of effect columns per pair), rows in VCF order with ``columns``; an allele that cannot be scored gets its
    status, empty effects and a warning. The genome holds the VCF's chromosomes and ``chromosomes``; ``check``
    sees it first."""
    variants = read_vcf(vcf)
    first = next(variants, None)
    if first is None:
        return
    chroms = {v.chrom for v in read_vcf(vcf)} | (chromosomes or set())
    genome = GenomeFasta(genome_path, chroms)
    if check is not None:
        check(genome)

    def score(pending: list[tuple[int, dict, tuple[str, str, int]]]) -> Iterator[tuple[int, dict]]:
        """(place in the block's rows, row) for every pending window pair, scored in one call."""
        if not pending:
            return
        effects = score_pairs([(ref, alt) for _, _, (ref, alt, _) in pending])
        for (i, row, (ref, _, offset)), effect in zip(pending, effects, strict=True):
            full = {**row, "status": "ok", **effect, "window": len(ref), "offset": offset}
            yield i, {k: full[k] for k in columns}

    given = ("chrom", "pos", "id", "ref", "alt", "region", "strand", "status")
    empty = dict.fromkeys(c for c in columns if c not in given)
    no_region = {**dict.fromkeys(c for c in ("region", "strand") if c in columns), "status": "outside_regions", **empty}
    rank, world = shard
    records = _chain([first], variants)
    unplaced, unscored = 0, {}
    for k in itertools.count():
        block = list(itertools.islice(records, variants_per_batch))
        if not block:
            break
        if k % world != rank:
            continue
        # rows in VCF order; the scored ones are filled in after one call for the whole block
        rows: list[dict | None] = []
        pending: list[tuple[int, dict, tuple[str, str, int]]] = []
        for v in block:
            for alt in v.alts:
                placed = windows_of(v, alt, genome)
                if not placed:  # in no region: listed, with nothing scored
                    unplaced += 1
                    rows.append({"chrom": v.chrom, "pos": v.pos, "id": v.id, "ref": v.ref, "alt": alt, **no_region})
                for fields, windows in placed:
                    row = {"chrom": v.chrom, "pos": v.pos, "id": v.id, "ref": v.ref, "alt": alt, **fields}
                    if isinstance(windows, str):
                        unscored[windows] = unscored.get(windows, 0) + 1
                        if unscored[windows] <= WARNINGS_PER_STATUS:
                            warnings.warn(
                                f"{vcf}:{v.line}: {v.chrom}:{v.pos} {v.ref}>{alt}: {_why(windows, v, genome)}; not "
                                "scored",
                                stacklevel=2,
                            )
                        rows.append({**row, "status": windows, **empty})
                        continue
                    pending.append((len(rows), row, windows))
                    rows.append(None)
        for i, row in score(pending):
            rows[i] = row
        yield k, rows
    for status, n in unscored.items():
        if n > WARNINGS_PER_STATUS:
            warnings.warn(
                f"{vcf}: {n - WARNINGS_PER_STATUS:,} more alleles with status {status} were not warned of one by one "
                f"({n:,} in all; their rows say so)",
                stacklevel=2,
            )
    if unplaced:
        warnings.warn(
            f"{vcf}: {unplaced:,} alleles lie wholly inside no region; listed with status outside_regions",
            stacklevel=2,
        )


def _why(status: str, v: Variant, genome: GenomeFasta) -> str:
    """A status in words, for the warning."""
    if status == "ref_mismatch":
        start = v.pos - 1
        found = genome.fetch(v.chrom, start, start + len(v.ref)).upper()
        return f"REF {v.ref} differs from the genome's {found} there"
    if status == "not_in_genome":
        return f"chromosome {v.chrom!r} is not in {genome.path}"
    if status == "n_allele":
        return "REF or ALT holds N, a base not known, whose change the model cannot score"
    if status == "repeat_past_window":
        return "it changes a repeat that runs past the windows' end, so they do not differ; a longer window sees it"
    if status == "past_chromosome_end":
        return "what the allele changes lies past the chromosome's end, outside both windows"
    return status.replace("_", " ")


def score_variants(*args, **kwargs) -> Iterator[dict]:
    """One row per (variant, ALT allele), streamed in VCF order; see ``score_variant_blocks`` for the arguments."""
    for _, rows in score_variant_blocks(*args, **kwargs):
        yield from rows


def classifier_variant_effects(*args, **kwargs) -> Iterator[dict]:
    """One row per (variant, ALT allele) under a fine-tuned model, streamed in VCF order; see
    ``classifier_variant_blocks`` for the arguments."""
    for _, rows in classifier_variant_blocks(*args, **kwargs):
        yield from rows


def _class_name(names: list, k: int):
    return names[k] if k < len(names) else k


def _chain(first, rest):
    yield from first
    yield from rest
