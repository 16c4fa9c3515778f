"""Held-out evaluation of a long-context model beside the 1k model: NLL on the 1k windows every model card uses, and
NLL by position band on full-length windows, with the whole window as context and with it cut to 1,024 tokens.

    .venv/bin/python benchmarks/long_context_eval.py --model docs/pretraining/tiny-16k-d256/model \\
        --name hyenadna-tiny-16k-d256-grch37 --out docs/pretraining/tiny-16k-d256/eval   # ~10 min on 2 cores

Writes ``evaluation.json`` (for ``hyenadna export --evaluation``: the 1k-window NLL and the card's sections),
``position_nll.png`` and ``position_nll.npz`` (the per-position curves) into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the repository, or the folder HYENADNA_SHARED names (as for the tests)
GENOME = Path(os.environ.get("HYENADNA_SHARED") or REPO.parent / "shared") / "data" / "genome"
FASTA = [str(GENOME / "GRCh37_chr20.fa.gz"), str(GENOME / "GRCh37_chrX_0-70Mb.fa.gz")]
MARKOV_1K = 1.2439  # order-12 Markov baseline on the same 256 x 1k windows (the bundled 1k model's card)


def held_out_windows(*specs: tuple[int, int]) -> list[np.ndarray]:
    """For each (count, length): the N-free held-out windows every card and long-context page scores (chr20:32-63 Mb,
    ``fixed_windows`` seed 1234), as (count, length) token arrays; the genome is read once."""
    from hyenadna.data.genome import Genome
    from hyenadna.training.pretrain import PretrainConfig, training_intervals
    from hyenadna.training.windows import fixed_windows

    genome = Genome.from_fasta(FASTA)
    _, evaluation = training_intervals(PretrainConfig(fasta=FASTA, out_dir=""), genome)
    return [fixed_windows(genome, evaluation, count, length) for count, length in specs]


def load_model(model: str, device: str = "cpu"):
    """A bundled or published model by name, or a model folder, on ``device``."""
    from hyenadna.cli.common import model_name_or_path
    from hyenadna.sdk import HyenaDNAConfig, build_model

    name, path = model_name_or_path(model)
    return build_model(HyenaDNAConfig(model_name=name, model_path=path, progress=False, device=device))[0]


def main() -> None:
    from hyenadna.hub import BUNDLED_MODEL
    from hyenadna.training.context import band_means, plot_position_curves, position_nll
    from hyenadna.training.pretrain import evaluate_nll, nll_report
    from hyenadna.utils.io import atomic_path, atomic_write_text

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the long-context model (name or folder)")
    ap.add_argument("--name", help="the model's name in the tables (default: its folder name)")
    ap.add_argument("--baseline", default=BUNDLED_MODEL, help="the 1k model beside it (default: the bundled one)")
    ap.add_argument(
        "--baseline-label",
        help="what the baseline is to this model, for the card (e.g. 'the 1k model it was warm-started from')",
    )
    ap.add_argument("--windows-1k", type=int, default=256)
    ap.add_argument("--windows-long", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=16384)
    ap.add_argument("--cut", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model, base = load_model(args.model, args.device), load_model(args.baseline, args.device)
    short, long = held_out_windows((args.windows_1k, 1025), (args.windows_long, args.seq_len + 1))
    t0 = time.perf_counter()
    nll_1k = {"model": evaluate_nll(model, short, 16), "baseline": evaluate_nll(base, short, 16)}
    curves = {
        "model_whole": position_nll(model, long, 1),
        f"model_cut_{args.cut}": position_nll(model, long, 1, context=args.cut),
        f"baseline_cut_{args.cut}": position_nll(base, long, 1, context=args.cut),
    }
    seconds = time.perf_counter() - t0
    bands = {k: band_means(v) for k, v in curves.items()}
    with atomic_path(out / "position_nll.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **curves)
    m, b = args.name or Path(args.model).name, Path(args.baseline).name
    plot_position_curves(
        {
            f"{m}, whole window": curves["model_whole"],
            f"{m}, context cut to {args.cut:,}": curves[f"model_cut_{args.cut}"],
            f"{b}, context cut to {args.cut:,}": curves[f"baseline_cut_{args.cut}"],
        },
        str(out / "position_nll.png"),
        f"{args.windows_long} held-out windows of {args.seq_len:,} bases (chr20:32-63 Mb)",
    )
    names = list(bands["model_whole"])
    rows = [
        f"| {m}, whole window | " + " | ".join(f"{bands['model_whole'][n]:.4f}" for n in names) + " |",
        f"| {m}, context cut to {args.cut:,} | "
        + " | ".join(f"{bands[f'model_cut_{args.cut}'][n]:.4f}" for n in names)
        + " |",
        f"| {b}, context cut to {args.cut:,} | "
        + " | ".join(f"{bands[f'baseline_cut_{args.cut}'][n]:.4f}" for n in names)
        + " |",
    ]
    gain = {n: bands[f"model_cut_{args.cut}"][n] - bands["model_whole"][n] for n in names}
    label = f" ({args.baseline_label})" if args.baseline_label else ""
    section_1k = f"""## Against {b} on the 1k windows

The same {args.windows_1k} windows of 1,025 bases as the 1k model's card (nats/base):

| model | nats/base |
|---|---|
| this model | {nll_1k["model"]:.4f} |
| {b}{label} | {nll_1k["baseline"]:.4f} |
| order-12 Markov baseline (from the 1k model's card) | {MARKOV_1K:.4f} |"""
    section_bands = f"""## Does it use its long context?

NLL (nats/base) by position in {args.windows_long} held-out windows of {args.seq_len + 1:,} bases (chr20:32-63 Mb):
position t is a target with t bases of left context. "Context cut to {args.cut:,}": the same windows read in pieces
of {args.cut:,} bases every {args.cut // 2:,}, so each target past position {args.cut:,} sees
{args.cut // 2:,}-{args.cut:,} bases (`hyenadna evaluate --by-position`, `hyenadna/training/context.py`).

| model | {" | ".join(names)} |
|---|{"---|" * len(names)}
{chr(10).join(rows)}

Whole window minus cut context, this model: {", ".join(f"{n} {-gain[n]:+.4f}" for n in names)} nats/base (negative:
the long context helps).

![NLL by position](position_nll.png)

Reproduce: `.venv/bin/python benchmarks/long_context_eval.py --model <this folder> --out <folder>`"""
    report = {
        "model": args.model,
        "baseline": args.baseline,
        "windows": args.windows_1k,
        "window_length": 1024,
        "model_nll": nll_report(nll_1k["model"]),
        "baseline_nll_1k": nll_report(nll_1k["baseline"]),
        "long_windows": args.windows_long,
        "long_window_length": args.seq_len,
        "bands": bands,
        "seconds": seconds,
        "threads": args.threads,
        "card_sections": [section_1k, section_bands],
    }
    atomic_write_text(out / "evaluation.json", json.dumps(report, indent=1) + "\n")
    print(section_1k + "\n\n" + section_bands)


if __name__ == "__main__":
    main()
