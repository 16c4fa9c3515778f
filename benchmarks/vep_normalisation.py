"""Does an indel's LLR depend on how the VCF spells it? Two spellings of one change, scored on ``vep``'s windows.

Every indel of the 194 real chr20 indels (../shared/data/variants) that lies in a repeat can be written further
right with the same result (the same haplotype: checked here). Each is scored in both spellings by the bundled model,
on 1,024-base windows centred on the change as spelled (``vep`` until 2026-12-08) and on the change as ``vep`` now
normalises it (trimmed and shifted left, as ``bcftools norm`` writes it), where both spellings must give one score.

    .venv/bin/python benchmarks/vep_normalisation.py --out benchmarks/results/vep_normalisation.json
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import torch

from hyenadna.utils.io import atomic_write_text

SHARED = Path(__file__).resolve().parents[2] / "shared"
VCF = SHARED / "data" / "variants" / "vt_chr20_indels.vcf.gz"
GENOME = SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from hyenadna import HyenaDNA
    from hyenadna.data.readers import GenomeFasta
    from hyenadna.vep import Variant, _windows_from, normalized, score_window_pairs, variant_windows

    model = HyenaDNA()
    genome = GenomeFasta(GENOME, {"20"})

    def seq(a: int, b: int) -> str:
        return genome.fetch("20", a, b).upper()

    def as_spelled(v: Variant, alt: str) -> tuple[str, str]:
        start = v.pos - 1
        return _windows_from(v, alt, genome, start - min(start, args.window // 2), args.window)[:2]

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
            pairs += [as_spelled(v, alt), as_spelled(w, right[2]), variant_windows(v, alt, genome, args.window)[:2]]
            pairs.append(variant_windows(w, right[2], genome, args.window)[:2])
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
    atomic_write_text(args.out, json.dumps({"window": args.window, "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    with torch.no_grad():
        main()
