"""Generation speed with the inference cache against rerunning the window for each base (``generate(cache=False)``,
the plain path), side by side in one process, rounds in alternating order; prompts are held-out DNA
(chr20:32,000,000-63,025,520, GRCh37). Also checks that both sample the same bases from the same seed. Nothing else
should run on the machine meanwhile.

    .venv/bin/python benchmarks/generate_speed.py --out benchmarks/results/generate_speed.json    # ~5 min
    .venv/bin/python benchmarks/generate_speed.py --blocks 128 256 512 1024 2048   # the cache's block sizes alone
    .venv/bin/python benchmarks/generate_speed.py --small-rows-ab   # one-token projections: F.linear or oneDNN
    .venv/bin/python benchmarks/generate_speed.py --plot benchmarks/results/generate_speed_zen5_t2.json \
        benchmarks/results/generate_speed_zen5_t1.json --out docs/speed/generate_speed.png   # the plot of such runs

Each case: model, prompt length, bases generated with the cache and without it (from long prompts fewer without: each
costs a whole window, and the first bases, at the shortest window, cost the least).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
GENOME = REPO.parent / "shared" / "data" / "genome" / "GRCh37_chr20.fa.gz"
HELD_OUT_START = 32_000_000
CASES = [  # model, prompt bases, bases with the cache, bases without
    ("hyenadna-tiny-1k-d256-grch37", 24, 2000, 2000),
    ("hyenadna-tiny-1k-d256-grch37", 1000, 2000, 200),
    ("hyenadna-tiny-16k-d256-grch37", 8000, 2000, 20),
    ("hyenadna-16k-d256-l3-grch37", 16000, 2000, 10),
]


def held_out_dna(length: int, offset: int = 1_000_000) -> str:
    """``length`` N-free bases of the held-out region."""
    from hyenadna.data.genome import Genome
    from hyenadna.tokenizer import VOCAB

    letters = {i: b for b, i in VOCAB.items()}
    bases = Genome.from_fasta([str(GENOME)]).chromosomes["20"]
    start = HELD_OUT_START + offset
    while True:
        text = "".join(letters[int(i)] for i in bases[start : start + length])
        if "N" not in text:
            return text
        start += length


def plot(runs: list[Path], png: Path) -> None:
    """Bases/s with and without the cache for each case of each run (one panel a run), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyenadna.utils.io import atomic_path

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4), sharey=True, squeeze=False)
    for ax, path in zip(axes[0], runs, strict=True):
        report = json.loads(path.read_text())
        rows = report["results"]
        labels = [
            f"{r['model'].removeprefix('hyenadna-').removesuffix('-grch37')}\nfrom {r['prompt_bases']:,}" for r in rows
        ]
        x = range(len(rows))
        cached = [r["bases_per_s_cached"] for r in rows]
        ax.bar([i - 0.2 for i in x], cached, 0.4, label="inference cache")
        ax.bar([i + 0.2 for i in x], [r["bases_per_s_plain"] for r in rows], 0.4, label="rerunning the window")
        for i, r in enumerate(rows):
            ax.text(i - 0.2, cached[i] * 1.2, f"{r['ratio']:.0f}x", ha="center", fontsize=9)
        ax.set_yscale("log")
        ax.set_ylim(0.5, max(cached) * 12)  # room for the ratios and the legend
        ax.set_xticks(list(x), labels, fontsize=8)
        ax.set_title(f"{report['threads']} thread{'s' if report['threads'] > 1 else ''}, {report['cpu']}", fontsize=10)
    axes[0][0].set_ylabel("bases generated per second")
    axes[0][0].legend(fontsize=8, ncols=2, loc="upper right")
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def compare_blocks(args: argparse.Namespace) -> None:
    """Each decoding block size (``allocate_inference_cache(block=...)``) against the first."""
    from functools import partial

    def with_block(block: int):
        def setup(sdk) -> None:
            sdk.model.allocate_inference_cache = partial(
                type(sdk.model).allocate_inference_cache, sdk.model, block=block
            )

        return setup

    compare_variants(args, {f"block {b}": with_block(b) for b in args.blocks})


def compare_small_rows(args: argparse.Namespace) -> None:
    """``SMALL_INFERENCE_ROWS`` as set (F.linear for a step's few tokens) against 0 (oneDNN for every projection)."""
    import hyenadna.ops.linear as linear_module

    default = linear_module.SMALL_INFERENCE_ROWS

    def rows_up_to(n: int):
        return lambda sdk: setattr(linear_module, "SMALL_INFERENCE_ROWS", n)

    try:
        compare_variants(args, {"F.linear": rows_up_to(default), "oneDNN": rows_up_to(0)})
    finally:
        linear_module.SMALL_INFERENCE_ROWS = default


def compare_variants(args: argparse.Namespace, variants: dict) -> None:
    """Bases/s of cached generation under each variant (a function that sets the loaded model up), rounds in rotating
    order, every variant sampling the same bases; each ratio is the first variant's speed over the variant's."""
    from hyenadna import HyenaDNA, HyenaDNAConfig
    from hyenadna.generate import generate

    prompt_dna = held_out_dna(max(c[1] for c in CASES))
    names, rows = list(variants), []
    for model_name, prompt_length, bases, _ in CASES:
        bases = max(1, bases // 10) if args.quick else bases
        sdk = HyenaDNA(HyenaDNAConfig(model_name=model_name, progress=False))
        seconds: dict[str, list[float]] = {k: [] for k in names}
        for r in range(args.rounds):
            samples = set()
            for key in names[r % len(names) :] + names[: r % len(names)]:
                variants[key](sdk)
                t0 = time.perf_counter()
                samples.add(tuple(generate(sdk.model, sdk.tokenizer, prompt_dna[-prompt_length:], bases, seed=r)))
                seconds[key].append(time.perf_counter() - t0)
            if len(samples) != 1:
                raise SystemExit(f"{model_name}, round {r}: the variants sampled different bases")
        rates = {k: statistics.median(bases / s for s in v) for k, v in seconds.items()}
        ratios = {k: [b / a for a, b in zip(seconds[names[0]], seconds[k], strict=True)] for k in names[1:]}
        rows.append(
            {
                "model": model_name,
                "prompt_bases": prompt_length,
                "bases": bases,
                "bases_per_s": rates,
                "ratio": {k: statistics.median(v) for k, v in ratios.items()},
                "ratio_range": {k: [min(v), max(v)] for k, v in ratios.items()},
            }
        )
        print(
            f"{model_name}, prompt {prompt_length}: bases/s "
            + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
            + "; "
            + ", ".join(
                f"{names[0]} / {k} {statistics.median(v):.2f}x ({min(v):.2f}-{max(v):.2f}x)" for k, v in ratios.items()
            ),
            flush=True,
        )
    write_report(args, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--num-samples", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="a tenth of the bases")
    ap.add_argument("--blocks", type=int, nargs="+", help="time these decoding block sizes against each other instead")
    ap.add_argument(
        "--small-rows-ab",
        action="store_true",
        help="cached generation with one-token projections through F.linear (ops/linear.py: SMALL_INFERENCE_ROWS) "
        "against oneDNN, instead",
    )
    ap.add_argument("--plot", type=Path, nargs="+", metavar="JSON", help="plot these runs' results into --out (PNG)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.plot:
        return plot(args.plot, args.out)
    torch.set_num_threads(args.threads)
    if args.blocks:
        return compare_blocks(args)
    if args.small_rows_ab:
        return compare_small_rows(args)

    from hyenadna import HyenaDNA, HyenaDNAConfig
    from hyenadna.generate import generate

    prompt_dna = held_out_dna(max(c[1] for c in CASES))
    results = []
    for name, prompt_length, cached_bases, plain_bases in CASES:
        if args.quick:
            cached_bases, plain_bases = max(1, cached_bases // 10), max(1, plain_bases // 10)
        sdk = HyenaDNA(HyenaDNAConfig(model_name=name, progress=False))
        prompt = prompt_dna[-prompt_length:]
        lengths = {True: cached_bases, False: plain_bases}
        seconds: dict[bool, list[float]] = {True: [], False: []}
        samples: dict[bool, list[str]] = {}
        for r in range(args.rounds):
            for cache in (True, False) if r % 2 == 0 else (False, True):
                t0 = time.perf_counter()
                samples[cache] = generate(
                    sdk.model, sdk.tokenizer, prompt, lengths[cache], args.num_samples, seed=r, cache=cache
                )
                seconds[cache].append(time.perf_counter() - t0)
            # the plain path's bases are the first of the cached path's, from the same seed
            same = all(c[:plain_bases] == p for c, p in zip(samples[True], samples[False], strict=True))
            if not same:
                raise SystemExit(f"{name}, round {r}: the cached and the plain path sampled different bases")
        rates = {c: [lengths[c] * args.num_samples / s for s in seconds[c]] for c in (True, False)}
        row = {
            "model": name,
            "l_max": sdk.model.config.l_max,
            "prompt_bases": prompt_length,
            "bases_cached": cached_bases,
            "bases_plain": plain_bases,
            "bases_per_s_cached": statistics.median(rates[True]),
            "bases_per_s_plain": statistics.median(rates[False]),
            "ratio": statistics.median(a / b for a, b in zip(rates[True], rates[False], strict=True)),
            "ratio_range": [
                min(a / b for a, b in zip(rates[True], rates[False], strict=True)),
                max(a / b for a, b in zip(rates[True], rates[False], strict=True)),
            ],
            "same_bases": True,
        }
        results.append(row)
        print(
            f"{name}, prompt {prompt_length}: cached {row['bases_per_s_cached']:,.0f} bases/s, plain "
            f"{row['bases_per_s_plain']:,.1f} bases/s, {row['ratio']:,.0f}x "
            f"({row['ratio_range'][0]:,.0f}-{row['ratio_range'][1]:,.0f}x), same bases",
            flush=True,
        )
    write_report(args, results)


def write_report(args: argparse.Namespace, results: list[dict]) -> None:
    """The machine, the settings and the results, to --out (JSON) when given."""
    from hyenadna.ops.autotune import cpu_features, cpu_name
    from hyenadna.utils.io import atomic_write_text

    if not args.out:
        return
    report = {
        "cpu": cpu_name(),
        "cpu_features": cpu_features(),
        "threads": args.threads,
        "rounds": args.rounds,
        "num_samples": args.num_samples,
        "torch": torch.__version__,
        "results": results,
    }
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
