"""``hyenadna embed``: embeddings of sequences or BED intervals."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from hyenadna.cli.common import (
    add_command,
    add_input_args,
    add_model_args,
    in_chunks,
    int_at_least,
    progress_bar,
    read_records,
    sdk_config,
)


def _layer_path(output: str, layer: int) -> str:
    path = Path(output)
    suffix = "".join(path.suffixes[-1:])
    return str(path.with_name(f"{path.name[: len(path.name) - len(suffix)]}.layer{layer}{suffix}"))


def cmd_embed(args: argparse.Namespace) -> int:
    from hyenadna.data.writers import EmbeddingWriter
    from hyenadna.sdk import HyenaDNA

    pooling = None if args.pooling == "none" else args.pooling
    model = HyenaDNA(
        sdk_config(
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
    bar = progress_bar("seq")
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(EmbeddingWriter(o, per_token=pooling is None)) for o in outputs]
        for chunk in in_chunks(read_records(args), args.chunk_size):
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


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "embed", "embed sequences (FASTA/FASTQ/CSV/TSV/text/stdin, or BED intervals on a genome)", cmd_embed
    )
    add_input_args(p)
    p.add_argument("-o", "--output", required=True, help="output .npz, .npy (pooled) or .parquet")
    p.add_argument(
        "--pooling", choices=["mean", "last", "max", "none"], default="mean", help="none: per-token embeddings"
    )
    p.add_argument("--rc-average", action="store_true", help="average with the reverse complement's embedding")
    p.add_argument("--framing", choices=["none", "sep", "cls_sep"], default="none")
    p.add_argument("--long-sequences", choices=["window", "truncate", "error"], default="window")
    p.add_argument(
        "--overlap", type=int_at_least(0), default=0, help="with windows: tokens of left context each window re-reads"
    )
    p.add_argument(
        "--layer",
        type=int,
        nargs="+",
        default=[-1],
        help="hidden layer(s): 0 = token embeddings ... n_layer = -1 = final output (default); several write "
        "OUTPUT.layer<k>.<ext> each",
    )
    add_model_args(p)
