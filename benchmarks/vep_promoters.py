"""Real variants through a fine-tuned promoter classifier (``HyenaDNAFineTuningModel.variant_effects``): the 194 chr20
indels of ../shared/data/variants, scored two ways.

1. Centred: the model reads 300 bases with the variant at their middle (the length of promoter_all's windows).
2. In regions: the model reads the promoter windows it was trained on, -249..+50 of each annotated chr20 TSS on the
   gene strand (``tss.parquet``, built here as a BED), wherever a variant lies in one.

The model is the one of docs/ism (saved before fine-tuned folders recorded their training length, hence the window):

    hyenadna fine-tune ../shared/benchmarks/promoter_all --out promoter_model --epochs 10 --patience 3 --lr 1e-4 \\
        --head-init probe --seed 0
    .venv/bin/python benchmarks/vep_promoters.py promoter_model --out docs/vep
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from hyenadna.utils.io import atomic_write_text

SHARED = Path(__file__).resolve().parents[2] / "shared"
VCF = SHARED / "data" / "variants" / "vt_chr20_indels.vcf.gz"
GENOME = SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"
TSS = SHARED / "data" / "annotation" / "tss.parquet"


def promoter_bed(path: Path) -> int:
    """-249..+50 of each chr20 TSS on its gene's strand, as promoter_all's windows (TSS at index 249)."""
    t = pd.read_parquet(TSS)
    t = t[t["_labels"] == "chr20"]
    lines = []
    for name, strand, start in zip(t["gene_name"], t["Strand"], t["_starts"], strict=True):
        tss = int(start) - 1  # 1-based in the table
        lo, hi = (tss - 249, tss + 51) if strand == "+" else (tss - 50, tss + 250)
        if lo >= 0:
            lines.append(f"chr20\t{lo}\t{hi}\t{name}\t0\t{strand}")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a folder written by `hyenadna fine-tune` on promoter_all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import torch

    from hyenadna.finetune import HyenaDNAFineTuningModel

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    ft = HyenaDNAFineTuningModel.load(args.model, batch_size=32)
    promoter = ft.label_names.index("promoter")
    bed = Path(tempfile.mkdtemp()) / "promoters_chr20.bed"  # rebuilt from the annotation each run
    n_regions = promoter_bed(bed)
    started = time.perf_counter()
    centred = ft.variant_effects(VCF, GENOME, window=300, target=promoter)
    seconds = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the count of alleles in no region is reported below
        listed = ft.variant_effects(VCF, GENOME, target=promoter, regions=bed)
    in_regions = listed[listed["status"] != "outside_regions"]
    ok = centred[centred["status"] == "ok"]
    summary = {
        "alleles": len(centred),
        "statuses": centred["status"].value_counts().to_dict(),
        "centred_seconds": round(seconds, 1),
        "threads": args.threads,
        "delta_log_odds_median": float(ok["delta_log_odds"].median()),
        "delta_log_odds_quartiles": [float(ok["delta_log_odds"].quantile(q)) for q in (0.25, 0.75)],
        "predicted_class_flips": int((ok["ref_class"] != ok["alt_class"]).sum()),
        "promoter_windows": n_regions,
        "rows_in_promoter_windows": len(in_regions),
        "alleles_in_no_promoter_window": int((listed["status"] == "outside_regions").sum()),
    }
    centred.to_csv(args.out / "indels_centred.tsv", sep="\t", index=False)
    in_regions.to_csv(args.out / "indels_in_promoters.tsv", sep="\t", index=False)
    atomic_write_text(args.out / "results.json", json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    if len(in_regions):
        print(in_regions.to_string())


if __name__ == "__main__":
    main()
