"""How much a gap's N bases moved a variant's LLR before ``vep`` left them out of its sums.

SNVs at set distances before and after each gap (an N run of at least 10 kb) in the held-out region of chr20, one
alternative base each (the first of A, C, G, T that is not the reference), scored by the bundled model on
``vep``'s windows (1,024 bases, the variant at offset 512) two ways: summed over every position (``vep`` until
2026-12-08) and over the positions where neither window holds N (``vep`` since). The per-position log-probabilities
are the same; only the sums differ.

    .venv/bin/python benchmarks/vep_gaps.py --out benchmarks/results/vep_gaps.json
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from hyenadna.utils.io import atomic_write_text

SHARED = Path(__file__).resolve().parents[2] / "shared"
GENOME = SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"
HELD_OUT = (32_000_000, 63_025_520)


def gaps(genome, chrom: str, lo: int, hi: int, min_length: int = 10_000) -> list[tuple[int, int]]:
    """(start, end) of the N runs of at least ``min_length`` bases that lie inside [lo, hi)."""
    seq = genome.fetch(chrom, lo, hi).upper()
    return [(lo + m.start(), lo + m.end()) for m in re.finditer("N+", seq) if m.end() - m.start() >= min_length]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--distances", type=int, nargs="+", default=[5, 50, 200, 400, 500, 2000])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from hyenadna import HyenaDNA
    from hyenadna.data.readers import GenomeFasta
    from hyenadna.vep import Variant, variant_windows, window_log_probs

    model = HyenaDNA()
    genome = GenomeFasta(GENOME, {"20"})
    rows = []
    size = genome.sizes["20"]
    for start, end in gaps(genome, "20", *HELD_OUT):
        for side, edge in (("before", start), ("after", end)) if end < size else (("before", start),):
            for d in args.distances:
                p = edge - d - 1 if side == "before" else edge + d  # 0-based; d bases between it and the gap
                ref = genome.fetch("20", p, p + 1).upper()
                alt = next(b for b in "ACGT" if b != ref)
                ref_w, alt_w, _ = variant_windows(Variant(0, "20", p + 1, ".", ref, [alt]), alt, genome, args.window)
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
        for d in args.distances:
            at = [r for r in rows if (r["side"], r["distance"]) == (side, d)]
            shift = [abs(r["llr_every_position"] - r["llr_n_left_out"]) for r in at]
            lo, mid, hi = min(shift), float(np.median(shift)), max(shift)
            summary[f"{side} {d}"] = {"gaps": len(shift), "min": lo, "median": mid, "max": hi}
            print(f"{side:6} {d:5}: |LLR every position - LLR N left out| {lo:.3f}-{hi:.3f}, median {mid:.3f}")
    assert all(abs(r["llr_n_left_out"] - r["llr_n_left_out_by_hand"]) < 2e-3 for r in rows)  # vep's sums, by hand
    result = {"window": args.window, "model": "bundled", "summary": summary, "rows": rows}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    with torch.no_grad():
        main()
