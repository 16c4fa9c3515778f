"""What ``vep``'s windows measured before 2026-12-08, and what they measure now: two measurements on real chr20 DNA.

1. Gaps (``--part gaps``): SNVs at set distances before and after each gap (an N run of at least 10 kb) in the
   held-out region, one alternative base each (the first of A, C, G, T that is not the reference), scored by the
   bundled model on 1,024-base windows (the variant at offset 512) two ways: summed over every position (``vep``
   until then) and over the positions where neither window holds N (``vep`` since). The per-position
   log-probabilities are the same; only the sums differ.
2. Spellings (``--part spellings``): every one of the 194 real chr20 indels (../shared/data/variants) that lies in a
   repeat can be written further right with the same result (the same haplotype: checked here). Each is scored in
   both spellings on windows centred on the change as spelled (``vep`` until then) and on the change as ``vep`` now
   normalises it (trimmed and shifted left, as ``bcftools norm`` writes it), where both spellings must give one score.

    .venv/bin/python benchmarks/vep_windows.py --out benchmarks/results/vep_windows.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

import numpy as np
import torch

from hyenadna.utils.io import atomic_write_text

SHARED = Path(__file__).resolve().parents[2] / "shared"
GENOME = SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"
VCF = SHARED / "data" / "variants" / "vt_chr20_indels.vcf.gz"
HELD_OUT = (32_000_000, 63_025_520)


def gaps(genome, chrom: str, lo: int, hi: int, min_length: int = 10_000) -> list[tuple[int, int]]:
    """(start, end) of the N runs of at least ``min_length`` bases that lie inside [lo, hi)."""
    seq = genome.fetch(chrom, lo, hi).upper()
    return [(lo + m.start(), lo + m.end()) for m in re.finditer("N+", seq) if m.end() - m.start() >= min_length]


def shifted_right(pos: int, ref: str, alt: str, seq) -> tuple[int, str, str] | None:
    """The same indel (1-based ``pos``, VCF alleles sharing their first base) written as far right as the repeat it
    lies in allows, or None where it is not in one. ``seq(a, b)``: the genome's bases [a, b), 0-based."""
    if len(ref) == len(alt) or ref[0] != alt[0] or min(len(ref), len(alt)) != 1:
        return None
    deletion = len(ref) > len(alt)
    unit = (ref if deletion else alt)[1:]  # the deleted or inserted bases
    at = pos  # 0-based: the first deleted base, or the base the insertion comes before
    while True:
        # one base further right: a deletion while the base after it equals its first, an insertion while the next
        # base equals its first (the inserted bases then rotate)
        nxt = seq(at + len(unit), at + len(unit) + 1) if deletion else seq(at, at + 1)
        if nxt != unit[0]:
            break
        unit, at = unit[1:] + unit[0], at + 1
    if at == pos:
        return None
    anchor = seq(at - 1, at)
    return (at, anchor + unit, anchor) if deletion else (at, anchor, anchor + unit)


def haplotype(pos: int, ref: str, alt: str, seq, lo: int, hi: int) -> str:
    """The genome's [lo, hi) with the allele applied (0-based; the allele inside)."""
    return seq(lo, pos - 1) + alt + seq(pos - 1 + len(ref), hi)


def gap_part(model, genome, window: int, distances: list[int]) -> dict:
    """LLRs of SNVs near the held-out region's gaps, summed over every position and with N targets left out."""
    from hyenadna.vep import Variant, variant_windows, window_log_probs

    rows = []
    size = genome.sizes["20"]
    for start, end in gaps(genome, "20", *HELD_OUT):
        for side, edge in (("before", start), ("after", end)) if end < size else (("before", start),):
            for d in distances:
                p = edge - d - 1 if side == "before" else edge + d  # 0-based; d bases between it and the gap
                ref = genome.fetch("20", p, p + 1).upper()
                alt = next(b for b in "ACGT" if b != ref)
                ref_w, alt_w, _ = variant_windows(Variant(0, "20", p + 1, ".", ref, [alt]), alt, genome, window)
                (lp_ref,), (lp_alt,) = window_log_probs(model.model, model.tokenizer, [ref_w, alt_w])[0]
                gap = np.array([x == "N" or y == "N" for x, y in zip(ref_w, alt_w, strict=True)])
                # every target's log P by hand, N ones included (one forward pass of both windows)
                ids = torch.tensor([model.tokenizer.encode(w) for w in (ref_w, alt_w)])
                logp = model.model(ids).logits.float().log_softmax(-1)
                lp_all = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0].numpy()
                kept = ~gap[1:]
                rows.append(
                    {
                        "gap": f"20:{start}-{end}",
                        "side": side,
                        "distance": d,
                        "pos": p + 1,
                        "ref": ref,
                        "alt": alt,
                        "n_in_window": int(gap.sum()),
                        "llr_every_position": float(lp_all[1].sum() - lp_all[0].sum()),
                        "llr_n_left_out": float(np.nansum(lp_alt) - np.nansum(lp_ref)),
                        "llr_n_left_out_by_hand": float(lp_all[1][kept].sum() - lp_all[0][kept].sum()),
                    }
                )
                r = rows[-1]
                print(
                    f"{r['gap']} {side:6} {d:5}  N {r['n_in_window']:4}  every position {r['llr_every_position']:9.4f}"
                    f"  N left out {r['llr_n_left_out']:9.4f}"
                )
    summary = {}
    for side in ("before", "after"):
        for d in distances:
            at = [r for r in rows if (r["side"], r["distance"]) == (side, d)]
            shift = [abs(r["llr_every_position"] - r["llr_n_left_out"]) for r in at]
            lo, mid, hi = min(shift), float(np.median(shift)), max(shift)
            summary[f"{side} {d}"] = {"gaps": len(shift), "min": lo, "median": mid, "max": hi}
            print(f"{side:6} {d:5}: |LLR every position - LLR N left out| {lo:.3f}-{hi:.3f}, median {mid:.3f}")
    assert all(abs(r["llr_n_left_out"] - r["llr_n_left_out_by_hand"]) < 2e-3 for r in rows)  # vep's sums, by hand
    return {"summary": summary, "rows": rows}


def spelling_part(model, genome, window: int) -> dict:
    """LLRs of the real chr20 indels that lie in a repeat, in two spellings, centred as spelled and normalised."""
    from hyenadna.vep import Variant, _windows_from, normalized, score_window_pairs, variant_windows

    def seq(a: int, b: int) -> str:
        return genome.fetch("20", a, b).upper()

    def as_spelled(v: Variant, alt: str) -> tuple[str, str]:
        start = v.pos - 1
        return _windows_from(v, alt, genome, start - min(start, window // 2), window)[:2]

    rows, pairs, records, moved = [], [], 0, 0
    with gzip.open(VCF, "rt") as f:
        lines = f.readlines()
    for line in lines:
        if line.startswith("#"):
            continue
        _, pos, _, ref, alts = line.split("\t")[:5]
        for alt in alts.split(","):
            records += 1
            v = Variant(0, "20", int(pos), ".", ref, [alt])
            moved += normalized(v, alt, genome)[0].pos != v.pos
            right = shifted_right(int(pos), ref, alt, seq)
            if right is None:
                continue
            w = Variant(0, "20", right[0], ".", right[1], [right[2]])
            lo, hi = int(pos) - 200, right[0] + 200
            assert haplotype(int(pos), ref, alt, seq, lo, hi) == haplotype(*right, seq, lo, hi), (pos, ref, alt)
            rows.append({"pos": int(pos), "ref": ref, "alt": alt, "right": list(right)})
            pairs += [as_spelled(v, alt), as_spelled(w, right[2]), variant_windows(v, alt, genome, window)[:2]]
            pairs.append(variant_windows(w, right[2], genome, window)[:2])
    llr = [r["llr"] for r in score_window_pairs(model.model, model.tokenizer, pairs, embeddings=False)]
    for i, row in enumerate(rows):
        names = ("llr_as_spelled", "llr_right_as_spelled", "llr_normalised", "llr_right_normalised")
        row |= dict(zip(names, llr[4 * i : 4 * i + 4], strict=True))
    apart = np.array([abs(r["llr_as_spelled"] - r["llr_right_as_spelled"]) for r in rows])
    apart_norm = np.array([abs(r["llr_normalised"] - r["llr_right_normalised"]) for r in rows])
    size = np.array([abs(r["llr_as_spelled"]) for r in rows])
    summary = {
        "alleles": records,
        "moved_by_normalising": moved,
        "in_a_repeat": len(rows),
        "apart_as_spelled": {"median": float(np.median(apart)), "max": float(apart.max())},
        "apart_normalised": {"median": float(np.median(apart_norm)), "max": float(apart_norm.max())},
        "abs_llr_as_spelled_median": float(np.median(size)),
    }
    print(json.dumps(summary, indent=1))
    return {"summary": summary, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["gaps", "spellings"], nargs="+", default=["gaps", "spellings"])
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--distances", type=int, nargs="+", default=[5, 50, 200, 400, 500, 2000])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from hyenadna import HyenaDNA
    from hyenadna.data.readers import GenomeFasta

    model = HyenaDNA()
    genome = GenomeFasta(GENOME, {"20"})
    result = {"window": args.window, "model": "bundled"}
    if "gaps" in args.part:
        result["gaps"] = gap_part(model, genome, args.window, args.distances)
    if "spellings" in args.part:
        result["spellings"] = spelling_part(model, genome, args.window)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    with torch.no_grad():
        main()
