"""The ``hyenadna`` command line. Exit codes: 0 success, 1 bad input or runtime failure, 2 usage error."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

EXAMPLES = """examples:
  hyenadna embed hyenadna/examples/example.fa -o emb.npz                 # bundled model, mean-pooled
  hyenadna embed reads.fq.gz -o emb.parquet --pooling none               # per-token, streamed
  hyenadna embed --bed peaks.bed --genome hg19.fa --flank 100 -o peaks.npz
  cat seqs.txt | hyenadna embed - -o emb.npy --model ~/weights/hyenadna-tiny-1k-seqlen-d256
  hyenadna score hyenadna/examples/example.fa -o scores.tsv
  hyenadna vep variants.vcf.gz --genome hg19.fa.gz --window 1024 -o effects.tsv
  hyenadna generate --prompt ACGTTGCA --length 200 --num-samples 3 --temperature 0.8 --top-k 3 --seed 1
  hyenadna info hyenadna-tiny-1k-seqlen
  hyenadna convert weights_dir/ converted_dir/ --layout hyenadna
"""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="published model name (fetched from the Hugging Face Hub on first use, then cached), Hub repo id "
        "(org/name) or checkpoint path (default: the bundled model)",
    )
    _add_hub_args(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: autocast the MLP matmuls, faster on CPUs with native bf16 (default: fp32, exact)",
    )
    p.add_argument(
        "--random-init",
        action="store_true",
        help="use a randomly initialised model of the named (or default) shape instead of weights",
    )
    p.add_argument(
        "--allow-unsafe-pickle",
        action="store_true",
        help="allow full unpickling of a trusted .ckpt that holds non-tensor objects",
    )


def _int_at_least(low: int):
    """An argparse type: an integer >= low, else a usage error (exit 2) that names the flag."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _add_hub_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revision", help="Hub branch, tag or commit to use (default: main)")
    p.add_argument(
        "--offline", action="store_true", help="never use the network: the Hub cache only (as HF_HUB_OFFLINE=1)"
    )
    p.add_argument(
        "--hub-layout",
        choices=["auto", "hf", "lightning"],
        default="auto",
        help="for a published name: auto (LongSafari/<name>-hf, else the Lightning repo), hf or lightning",
    )


def _model_name_or_path(model: str | None) -> tuple[str | None, str | None]:
    """``--model`` is a path when it exists on disk, else a model name."""
    if model is not None and Path(model).expanduser().exists():
        return None, model
    return model, None


def _sdk_config(args: argparse.Namespace, **kw):
    from hyenadna.sdk import HyenaDNAConfig

    name, path = _model_name_or_path(args.model)
    return HyenaDNAConfig(
        model_name=name,
        model_path=path,
        device=args.device,
        batch_size=args.batch_size,
        pretrained=not args.random_init,
        allow_unsafe_pickle=args.allow_unsafe_pickle,
        precision=getattr(args, "precision", "fp32"),
        revision=getattr(args, "revision", None),
        local_files_only=getattr(args, "offline", False),
        hub_layout=getattr(args, "hub_layout", "auto"),
        **kw,
    )


def _add_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", help="FASTA/FASTQ (.gz), CSV/TSV, text (one sequence per line), or - for stdin")
    p.add_argument("--format", choices=["auto", "fasta", "fastq", "csv", "tsv", "txt"], default="auto")
    p.add_argument("--column", default="sequence", help="sequence column of a CSV/TSV input")
    p.add_argument("--bed", help="BED intervals to cut from --genome (strand-aware) instead of INPUT")
    p.add_argument("--genome", help="genome FASTA for --bed (indexed if uncompressed)")
    p.add_argument("--flank", type=int, default=0, help="bases added on each side of every BED interval")
    p.add_argument("--skip-invalid", action="store_true", help="skip BED intervals outside the genome with a warning")
    p.add_argument("--chunk-size", type=int, default=1000, help="sequences read and processed at a time")


def _records(args: argparse.Namespace):
    from hyenadna.data.readers import read_bed_sequences, read_sequences

    if args.bed:
        if not args.genome:
            raise ValueError("--bed needs --genome")
        return read_bed_sequences(args.bed, args.genome, args.flank, args.skip_invalid)
    if not args.input:
        raise ValueError("give an INPUT file (or - for stdin), or --bed with --genome")
    return read_sequences(args.input, args.format, args.column)


def _chunks(records, size: int):
    chunk = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _progress(unit: str):
    from tqdm.auto import tqdm

    return tqdm(unit=unit, dynamic_ncols=True, mininterval=1, leave=False, disable=None)  # None: only on a terminal


def _layer_path(output: str, layer: int) -> str:
    path = Path(output)
    suffix = "".join(path.suffixes[-1:])
    return str(path.with_name(f"{path.name[: len(path.name) - len(suffix)]}.layer{layer}{suffix}"))


def cmd_embed(args: argparse.Namespace) -> int:
    from hyenadna.data.writers import EmbeddingWriter
    from hyenadna.sdk import HyenaDNA

    pooling = None if args.pooling == "none" else args.pooling
    model = HyenaDNA(
        _sdk_config(
            args,
            pooling=pooling,
            rc_average=args.rc_average,
            framing=args.framing,
            long_sequences=args.long_sequences,
            progress=False,
        )
    )
    print(f"model: {model.source}", file=sys.stderr)
    layers = model.model.backbone.layer_indices(args.layer)  # checked before any file is opened
    outputs = [args.output] if len(layers) == 1 else [_layer_path(args.output, k) for k in layers]
    t0, n_seq, n_bp = time.perf_counter(), 0, 0
    bar = _progress("seq")
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(EmbeddingWriter(o, per_token=pooling is None)) for o in outputs]
        for chunk in _chunks(_records(args), args.chunk_size):
            data = model.process_data([r.sequence for r in chunk], names=[r.name for r in chunk], start_index=n_seq)
            embeddings = model.get_embeddings(data, layer=layers, overlap=args.overlap)
            for writer, emb in zip(writers, embeddings, strict=True):
                writer.add(data.names, data.lengths, emb)
            n_seq += len(data)
            n_bp += int(data.lengths.sum())
            bar.update(len(data))
            bar.set_postfix(bp_s=f"{n_bp / (time.perf_counter() - t0):,.0f}", refresh=False)
    bar.close()
    dt = time.perf_counter() - t0
    kind = "per token" if pooling is None else f"{pooling}-pooled"
    print(
        f"embedded {n_seq} sequences ({n_bp:,} bp) in {dt:.2f} s ({n_bp / max(dt, 1e-9):,.0f} bp/s), {kind}, "
        f"dim {model.embedding_dim} -> {', '.join(outputs)}",
        file=sys.stderr,
    )
    return 0


def _write_rows(rows, output: str | None, fmt: str) -> None:
    """Rows (dicts) as JSON Lines or TSV, to a file (atomically) or stdout."""
    from hyenadna.utils.io import atomic_path

    fmt = fmt if fmt != "auto" else ("tsv" if output and output.endswith(".tsv") else "jsonl")

    def emit(handle) -> None:
        header = None
        for row in rows:
            if fmt == "jsonl":
                handle.write(json.dumps(row) + "\n")
                continue
            if header is None:
                header = list(row)
                handle.write("\t".join(header) + "\n")
            handle.write("\t".join("" if row[k] is None else str(row[k]) for k in header) + "\n")

    if output:
        with atomic_path(output) as tmp, open(tmp, "w") as f:
            emit(f)
    else:
        emit(sys.stdout)


def cmd_score(args: argparse.Namespace) -> int:
    from hyenadna.scoring import score_bases, scoring_policy
    from hyenadna.sdk import HyenaDNA

    model = HyenaDNA(_sdk_config(args, framing=args.framing, progress=False))
    policy = scoring_policy(model.context_length, overlap=args.overlap)
    print(f"model: {model.source}", file=sys.stderr)
    bar = _progress("seq")

    def rows():
        n = 0
        for chunk in _chunks(_records(args), args.chunk_size):
            data = model.process_data([r.sequence for r in chunk], names=[r.name for r in chunk], start_index=n)
            scores = score_bases(
                model.model, data.ids, model.tokenizer, policy, model.config.batch_size, data.names, start_index=n
            )
            for name, length, s in zip(data.names, data.lengths, scores, strict=True):
                yield {
                    "id": name,
                    "length": int(length),
                    "log_likelihood": s.log_likelihood,
                    "n_scored": s.n_scored,
                    "nll_per_base": s.nll_per_base,
                    "perplexity": s.perplexity,
                }
            n += len(data)
            bar.update(len(data))

    _write_rows(rows(), args.output, args.out_format)
    bar.close()
    return 0


def cmd_vep(args: argparse.Namespace) -> int:
    import warnings

    from hyenadna.sdk import HyenaDNA
    from hyenadna.vep import score_variants

    model = HyenaDNA(_sdk_config(args, progress=False))
    print(f"model: {model.source}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
        rows = score_variants(
            model.model, model.tokenizer, args.vcf, args.genome, args.window, args.batch_size, args.both_strands
        )
        _write_rows(rows, args.output, args.out_format)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from hyenadna.generate import generate
    from hyenadna.sdk import HyenaDNA

    model = HyenaDNA(_sdk_config(args, progress=False))
    print(f"model: {model.source}", file=sys.stderr)
    samples = generate(
        model.model,
        model.tokenizer,
        args.prompt,
        args.length,
        args.num_samples,
        args.temperature,
        args.top_k,
        args.seed,
    )
    text = "".join(
        f">sample{i + 1} prompt_length={len(args.prompt)} seed={args.seed}\n{args.prompt}{s}\n"
        for i, s in enumerate(samples)
    )
    if args.output:
        from hyenadna.utils.io import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hyenadna.training.export import export_run

    evaluation = json.loads(Path(args.evaluation).read_text()) if args.evaluation else None
    dest = export_run(args.run, args.destination, args.name or Path(args.destination).name, evaluation)
    print(f"exported {args.run} -> {dest} (config.json, model.safetensors, README.md model card)", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from hyenadna.sdk import build_model

    model, source = build_model(_sdk_config(args))
    info = {
        "source": source,
        "parameters": model.num_parameters(),
        "context": model.config.l_max,
        "config": model.config.to_dict(),
    }
    print(json.dumps(info, indent=2))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from hyenadna.models.hyena_dna import convert_checkpoint

    out = convert_checkpoint(
        args.source, args.destination, layout=args.layout, allow_unsafe_pickle=args.allow_unsafe_pickle
    )
    print(f"wrote {args.layout} layout to {out}", file=sys.stderr)
    return 0


PRETRAIN_EXAMPLES = """examples:
  # the bundled model's recipe: GRCh37 chr20 + chrX, held-out chr20:32,000,000-63,025,520 excluded automatically
  hyenadna pretrain --fasta ../shared/data/genome/GRCh37_chr20.fa.gz ../shared/data/genome/GRCh37_chrX_0-70Mb.fa.gz \\
      --out runs/tiny-d256 --max-steps 8000 --max-minutes 150
  hyenadna pretrain --out runs/tiny-d256 --resume            # continue exactly where it stopped
  torchrun --nproc_per_node=2 -m hyenadna.cli pretrain ...    # data-parallel (gloo on CPU, nccl on GPU)
"""


def cmd_pretrain(args: argparse.Namespace) -> int:
    from hyenadna.training.pretrain import PretrainConfig, pretrain

    saved = Path(args.out) / "pretrain_config.json"
    runtime = {"threads": args.threads, "max_minutes": args.max_minutes, "device": args.device}
    if args.resume and saved.exists():
        cfg = PretrainConfig(**{**json.loads(saved.read_text()), **runtime})
        if args.max_steps is not None:
            cfg.max_steps = args.max_steps
    else:
        if not args.fasta:
            print("hyenadna pretrain: error: --fasta is required for a new run", file=sys.stderr)
            return 2
        model = {
            "d_model": args.d_model,
            "n_layer": args.n_layer,
            "d_inner": args.d_inner or 4 * args.d_model,
            "l_max": args.l_max or args.seq_len + 2,
        }
        stages = [[int(x) for x in s.split(":")] for s in args.stages.split(",")] if args.stages else []
        cfg = PretrainConfig(
            fasta=args.fasta,
            out_dir=args.out,
            model=model,
            include=args.include,
            exclude=args.exclude,
            eval_region=args.eval_region,
            force_overlap=args.force_overlap,
            seq_len=args.seq_len,
            batch_size=args.batch_size,
            grad_accum=args.grad_accum,
            stages=stages,
            max_steps=args.max_steps or 10_000,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup_steps,
            grad_clip=args.grad_clip,
            max_n_fraction=args.max_n_fraction,
            reverse_complement=not args.no_rc,
            n_to_pad=args.n_to_pad,
            bf16=args.bf16,
            compile=args.compile,
            seed=args.seed,
            log_every=args.log_every,
            eval_every=args.eval_every,
            eval_windows=args.eval_windows,
            ckpt_every=args.ckpt_every,
            markov=not args.no_markov,
            **runtime,
        )
    from hyenadna.training.pretrain import _dist_info

    if _dist_info()[0] == 0 and not (args.resume and saved.exists()):
        from dataclasses import asdict

        from hyenadna.utils.io import atomic_write_text

        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, json.dumps(asdict(cfg), indent=1))
    result = pretrain(cfg, resume=args.resume)
    print(json.dumps(result), file=sys.stderr)
    return 0


BENCHMARK_EXAMPLES = """examples:
  hyenadna benchmark --suite nt --model hyenadna-tiny-1k-seqlen-d256 --device cuda --out nt   # the model card's table
  hyenadna benchmark --suite nt --tasks H3 promoter_all --modes kmer probe --out nt_quick
  hyenadna benchmark --tasks-dir ../shared/benchmarks --quick --out docs/benchmarks/quick
  hyenadna benchmark --tasks ../shared/benchmarks/promoter_all --modes kmer probe --out one_task
  hyenadna benchmark --tasks-dir ../shared/benchmarks --tasks promoter_all --modes kmer probe --seeds 0 1 2
  hyenadna benchmark --tasks-dir ~/nt_downstream_tasks --out nt_results      # NT tasks: sequence,label files
"""


DOWNLOAD_EXAMPLES = """examples:
  hyenadna download hyenadna-tiny-1k-seqlen-d256 hyenadna-small-32k-seqlen --dataset nt
  HF_HOME=/shared/hf hyenadna download LongSafari/hyenadna-medium-160k-seqlen-hf    # a cache the cluster shares
  HF_HOME=/shared/hf hyenadna embed seqs.fa -o emb.npz --model hyenadna-medium-160k-seqlen --offline
"""


def cmd_download(args: argparse.Namespace) -> int:
    """Prefetch models and benchmark suites into the Hugging Face cache, for machines without a network."""
    from hyenadna.benchmark.suites import fetch_suite
    from hyenadna.hub import HubOptions, download_model

    if not args.names and not args.dataset:
        raise ValueError("name at least one model, or --dataset SUITE")
    hub = HubOptions(revision=args.revision, layout=args.hub_layout)
    t0 = time.time()
    for name in args.names:
        folder = download_model(name, hub)
        print(f"{name}: {folder}", flush=True)
    for suite in args.dataset or []:
        folders = fetch_suite(suite, HubOptions(revision=args.revision))
        print(f"{suite}: {len(folders)} tasks in {folders[0].parent}", flush=True)
    print(
        f"downloaded in {time.time() - t0:.1f} s; use them offline with --offline or HF_HUB_OFFLINE=1", file=sys.stderr
    )
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from hyenadna.benchmark.runner import BenchmarkConfig, run_benchmark

    if not (args.suite or args.tasks_dir or args.tasks):
        raise ValueError("name the tasks: --suite nt, --tasks-dir DIR [--tasks NAME...], or --tasks FOLDER...")
    if args.suite and args.tasks_dir:
        raise ValueError("--suite and --tasks-dir are alternatives: give one")
    name, path = _model_name_or_path(args.model)
    if path is None and name is not None and set(args.modes) & {"probe", "finetune", "scratch"}:
        from hyenadna.hub import HubOptions, resolve_weights

        hub = HubOptions(revision=args.revision, local_files_only=args.offline, layout=args.hub_layout)
        path = str(resolve_weights(name, None, hub))
    kw = {
        "tasks_dir": args.tasks_dir,
        "out_dir": args.out,
        "tasks": args.tasks,
        "suite": args.suite,
        "revision": args.suite_revision,
        "local_files_only": args.offline,
        "modes": args.modes,
        "model_name": name,
        "model_path": path,
        "device": args.device,
        "batch_size": args.batch_size,
    }
    if args.seeds is not None:
        kw["seeds"] = args.seeds
    for key in ("max_train", "max_test", "epochs", "finetune_lrs", "scratch_lrs", "head_init"):
        if getattr(args, key) is not None:
            kw[key] = getattr(args, key)
    cfg = BenchmarkConfig.quick(**kw) if args.quick else BenchmarkConfig(**kw)
    summary = run_benchmark(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(
        f"wrote {args.out}/results.md, results.json, results.png ({summary['wall_seconds_this_call']:.0f} s this call)",
        file=sys.stderr,
    )
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from hyenadna.benchmark.tasks import load_task
    from hyenadna.finetune import HyenaDNAFineTuningModel

    task = load_task(args.task)
    ft = HyenaDNAFineTuningModel(
        _sdk_config(args, seed=args.seed), "classification", task.num_classes, label_names=task.label_names
    )
    print(f"model: {ft.source}", file=sys.stderr)
    ft.train(
        task.train["sequence"].tolist(),
        task.train["label"].to_numpy(),
        epochs=args.epochs,
        lr=args.lr,
        rc_augment=args.rc_augment,
        head_init=args.head_init,
        seed=args.seed,
    )
    ft.save(args.out)
    scores = ft.evaluate(task.test["sequence"].tolist(), task.test["label"].to_numpy(), rc_average=args.rc_augment)
    print(json.dumps({"task": task.name, "test": scores}), file=sys.stderr)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from hyenadna.finetune import HyenaDNAFineTuningModel
    from hyenadna.utils.io import atomic_path

    ft = HyenaDNAFineTuningModel.load(args.model, device=args.device, batch_size=args.batch_size)
    records = list(_records(args))
    data = ft.process_data([r.sequence for r in records], names=[r.name for r in records])
    labels, probs = ft.predict(data, rc_average=args.rc_average)
    label_names = ft.label_names or [str(i) for i in range(ft.output_size)]
    rows = [
        {
            "id": n,
            "label": label_names[int(y)],
            "label_index": int(y),
            "probabilities": {label_names[j]: round(float(p[j]), 6) for j in range(len(label_names))},
        }
        for n, y, p in zip(data.names, labels, probs, strict=True)
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows) if args.out_format == "jsonl" else json.dumps(rows, indent=1)
    if args.output:
        with atomic_path(args.output) as tmp:
            tmp.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Held-out NLL of a model, beside the order-k Markov baseline fitted to the training DNA, on the same windows."""
    from hyenadna.data.genome import Genome
    from hyenadna.sdk import build_model
    from hyenadna.training.pretrain import (
        PretrainConfig,
        evaluate_nll,
        markov_baseline,
        nll_report,
        training_intervals,
    )
    from hyenadna.training.windows import fixed_windows
    from hyenadna.utils.io import atomic_write_text

    model, source = build_model(_sdk_config(args))
    genome = Genome.from_fasta(args.fasta)
    cfg = PretrainConfig(
        fasta=args.fasta,
        out_dir="",
        include=args.include,
        exclude=args.exclude,
        eval_region=args.eval_region,
        seq_len=args.seq_len,
    )
    train, evaluation = training_intervals(cfg, genome)
    windows = fixed_windows(genome, evaluation, args.windows, args.seq_len + 1)
    t0 = time.perf_counter()
    report = {
        "model": source,
        "eval_region": [str(x) for x in evaluation],
        "windows": args.windows,
        "window_length": args.seq_len,
        "model_nll": nll_report(evaluate_nll(model, windows, args.batch_size)),
    }
    report["model_seconds"] = time.perf_counter() - t0
    if args.markov:
        log = (lambda m: print(m, file=sys.stderr)) if args.verbose else (lambda m: None)
        report["markov"] = markov_baseline(genome, train, windows, log=log)
        report["markov"].pop("grid")
    text = json.dumps(report, indent=1)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyenadna",
        description="HyenaDNA DNA language model tools.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, func, epilog: str = EXAMPLES) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help, description=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        p.set_defaults(func=func)
        return p

    p = command("embed", "embed sequences (FASTA/FASTQ/CSV/TSV/text/stdin, or BED intervals on a genome)", cmd_embed)
    _add_input_args(p)
    p.add_argument("-o", "--output", required=True, help="output .npz, .npy (pooled) or .parquet")
    p.add_argument(
        "--pooling", choices=["mean", "last", "max", "none"], default="mean", help="none: per-token embeddings"
    )
    p.add_argument("--rc-average", action="store_true", help="average with the reverse complement's embedding")
    p.add_argument("--framing", choices=["none", "sep", "cls_sep"], default="none")
    p.add_argument("--long-sequences", choices=["window", "truncate", "error"], default="window")
    p.add_argument(
        "--overlap", type=_int_at_least(0), default=0, help="with windows: tokens of left context each window re-reads"
    )
    p.add_argument(
        "--layer",
        type=int,
        nargs="+",
        default=[-1],
        help="hidden layer(s): 0 = token embeddings ... n_layer = -1 = final output (default); several write "
        "OUTPUT.layer<k>.<ext> each",
    )
    _add_model_args(p)

    p = command("score", "per-sequence log-likelihood, NLL per base and perplexity", cmd_score)
    _add_input_args(p)
    p.add_argument("-o", "--output", help="output .jsonl or .tsv (default: JSON Lines on stdout)")
    p.add_argument("--out-format", choices=["auto", "jsonl", "tsv"], default="auto")
    p.add_argument("--framing", choices=["none", "sep", "cls_sep"], default="none")
    p.add_argument(
        "--overlap",
        type=_int_at_least(1),
        default=1,
        help="sequences longer than the context: tokens of left context each window re-reads (at least 1, so every "
        "base but the first is scored; default 1)",
    )
    _add_model_args(p)

    p = command("vep", "variant effects: ref/alt log-likelihood ratio and embedding distance per VCF allele", cmd_vep)
    p.add_argument("vcf", help="VCF (plain or gzip)")
    p.add_argument("--genome", required=True, help="genome FASTA (chromosome names may differ by a 'chr' prefix)")
    p.add_argument(
        "--window",
        type=_int_at_least(2),
        default=1024,
        help="bases in each of the equal-length ref and alt windows around the variant (default 1024)",
    )
    p.add_argument(
        "--both-strands", action="store_true", help="average the LLR with that of the reverse-complement windows"
    )
    p.add_argument("-o", "--output", help="output .tsv or .jsonl (default: JSON Lines on stdout)")
    p.add_argument("--out-format", choices=["auto", "jsonl", "tsv"], default="auto")
    _add_model_args(p)

    p = command("generate", "sample DNA continuations of a prompt", cmd_generate)
    p.add_argument("--prompt", required=True)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", help="output FASTA (default: stdout)")
    _add_model_args(p)

    p = sub.add_parser(
        "pretrain",
        help="pretrain a next-token model on genome FASTA",
        epilog=PRETRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--fasta", nargs="+", help="FASTA files (.fa, .fa.gz, bgzip; many records)")
    p.add_argument("--out", required=True, help="run directory (checkpoint, metrics, plots, exported model)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--include", nargs="*", default=[], help="regions (chrom, chrom:start-end) or BED files")
    p.add_argument("--exclude", nargs="*", default=[], help="regions or BED files to leave out")
    p.add_argument(
        "--eval-region",
        nargs="*",
        default=["20:32000000-63025520"],
        help="held-out validation region (default: GRCh37 chr20:32,000,000-63,025,520)",
    )
    p.add_argument("--force-overlap", action="store_true", help="allow training regions overlapping --eval-region")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--d-inner", type=int)
    p.add_argument("--l-max", type=int, help="filter grid / context (default: seq-len + 2)")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--stages", help="sequence-length warm-up, e.g. 500:256:32,1000:512:16 (until_step:len:batch)")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--max-n-fraction", type=float, default=0.05)
    p.add_argument("--no-rc", action="store_true", help="no reverse-complement augmentation")
    p.add_argument("--n-to-pad", action="store_true")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the matmuls (the FFT stays fp32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-windows", type=int, default=256)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--no-markov", action="store_true", help="skip the Markov baseline")
    p.add_argument("--max-minutes", type=float, help="stop cleanly with a checkpoint after this long")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser(
        "benchmark",
        help="probe / fine-tune / scratch / k-mer benchmark over task folders",
        epilog=BENCHMARK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--suite", choices=["nt"], help="a benchmark suite fetched from the Hub by name (nt: the 18 NT tasks)"
    )
    p.add_argument("--suite-revision", help="Hub revision of the suite's dataset (default: main)")
    p.add_argument("--tasks-dir", help="folder of task folders (task.json + train/test)")
    p.add_argument("--tasks", nargs="*", help="task names (default: all), or task folder paths")
    p.add_argument("--modes", nargs="*", default=["kmer", "probe", "finetune", "scratch"])
    p.add_argument("--seeds", nargs="*", type=int)
    p.add_argument("--quick", action="store_true", help="1,000/1,000 train/test rows, 1 seed, up to 3 epochs")
    p.add_argument("--max-train", type=int)
    p.add_argument("--max-test", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument(
        "--finetune-lrs",
        nargs="+",
        type=float,
        help="pretrained model: lrs tried, best validation MCC kept (default 1e-4 3e-4 1e-3; quick 1e-4 1e-3)",
    )
    p.add_argument(
        "--scratch-lrs",
        nargs="+",
        type=float,
        help="the same for the not-pretrained model (default 3e-4 1e-3; quick 1e-3)",
    )
    p.add_argument("--head-init", choices=["probe", "random"], help="fine-tuning head start (default: probe, LP-FT)")
    p.add_argument("--out", required=True, help="results folder (resumable: finished runs are skipped)")
    _add_model_args(p)
    p.set_defaults(func=cmd_benchmark, batch_size=16)

    p = sub.add_parser("fine-tune", help="fine-tune a classifier on a task folder and save it")
    p.add_argument("task", help="task folder (train/test csv.gz or parquet, columns sequence,label)")
    p.add_argument("--out", required=True, help="output folder for the fine-tuned model")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--rc-augment", action="store_true", help="reverse-complement augmentation and test-time averaging")
    p.add_argument(
        "--head-init", choices=["random", "probe"], default="random", help="probe: logistic-regression head, then FT"
    )
    p.add_argument("--seed", type=int, default=0)
    _add_model_args(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("predict", help="predict labels with a fine-tuned model (JSON Lines)")
    p.add_argument("model", help="a folder written by `hyenadna fine-tune`")
    _add_input_args(p)
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument("--out-format", choices=["jsonl", "json"], default="jsonl")
    p.add_argument("--rc-average", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="held-out NLL (nats/base, bits/base, perplexity) beside a Markov baseline")
    p.add_argument("--fasta", nargs="+", required=True)
    p.add_argument("--include", nargs="*", default=[], help="training regions the Markov baseline is fitted on")
    p.add_argument("--exclude", nargs="*", default=[])
    p.add_argument("--eval-region", nargs="*", default=["20:32000000-63025520"])
    p.add_argument("--windows", type=int, default=256, help="number of N-free held-out windows")
    p.add_argument("--seq-len", type=int, default=1024, help="predicted bases per window")
    p.add_argument("--no-markov", dest="markov", action="store_false")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("-o", "--output", help="also write the JSON report here")
    _add_model_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = command("info", "show a checkpoint's config, parameter count and context", cmd_info)
    p.add_argument("model", nargs="?", help="model name or checkpoint path (default: the bundled model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int)
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--allow-unsafe-pickle", action="store_true")
    _add_hub_args(p)

    p = command("export", "turn a pretraining run into a model folder with a model card", cmd_export)
    p.add_argument("run", help="the pretraining run folder (--out of hyenadna pretrain)")
    p.add_argument("destination", help="model folder to write")
    p.add_argument("--name", help="model name for the card (default: the folder name)")
    p.add_argument("--evaluation", help="JSON written by `hyenadna evaluate -o` to report instead of the last eval")

    p = command(
        "download",
        "prefetch models and benchmark suites from the Hugging Face Hub into its cache (HF_HOME), for offline use",
        cmd_download,
        epilog=DOWNLOAD_EXAMPLES,
    )
    p.add_argument("names", nargs="*", help="published model names or Hub repo ids")
    p.add_argument("--dataset", nargs="+", choices=["nt"], help="benchmark suites to fetch (nt: the 18 NT tasks)")
    p.add_argument("--revision", help="Hub branch, tag or commit (default: main)")
    p.add_argument("--hub-layout", choices=["auto", "hf", "lightning"], default="auto")

    p = command("convert", "convert a checkpoint between layouts (hyenadna, hf, lightning)", cmd_convert)
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--layout", choices=["hyenadna", "hf", "lightning"], default="hyenadna")
    p.add_argument("--allow-unsafe-pickle", action="store_true")
    p.add_argument("--threads", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        if getattr(args, "precision", "fp32") == "bf16":
            import torch

            from hyenadna.utils.device import resolve_device

            with torch.autocast(resolve_device(args.device).type, dtype=torch.bfloat16):
                return args.func(args)
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError, OSError) as e:
        print(f"hyenadna {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hyenadna {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
