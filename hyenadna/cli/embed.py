"""``hyenadna embed``: embeddings of sequences or BED intervals."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from hyenadna.cli.common import (
    Progress,
    add_command,
    add_input_args,
    add_model_args,
    count_records,
    in_chunks,
    int_at_least,
    located,
    read_records,
    sdk_config,
    step_size,
)

# the per-token arrays embedded at a time: records are handed to the model in groups of about this size (a longer
# record alone), so that memory follows the longest record, not the number of records in a group
PER_TOKEN_CHUNK_BYTES = 2**30


def _check_parquet_memory(chunk: list, per_base: int, copies: int) -> None:
    """Per-token rows that Parquet could not encode in the memory available: an error before any work, not the OOM
    killer after it."""
    from hyenadna.utils.memory import available_bytes

    bases = sum(len(r.sequence) for r in chunk)
    need, have = per_base * bases, available_bytes("cpu")
    if have is None or need <= have:
        return
    longest = max(chunk, key=lambda r: len(r.sequence))
    what = f"'{longest.name}' ({bases:,} bases)" if len(chunk) == 1 else f"{len(chunk)} records ({bases:,} bases)"
    raise MemoryError(
        f"per-token Parquet of {what} needs about {need / 1e9:.1f} GB while it is written (pyarrow holds the rows "
        f"about {copies} more times as it encodes them), and {have / 1e9:.1f} GB is available: write .npz (one "
        "array a record, as it is) or .npy (filled on disk), pool them (--pooling mean), or embed shorter pieces "
        "(--bed intervals of --genome)"
    )


def _per_token_npy(args: argparse.Namespace, model, layers: list[int], outputs: list[str], progress: Progress) -> None:
    """Per-token rows of every record as one (N, L_max, D) .npy a layer, filled on disk through a memory map, so
    memory stays at the model's windows whatever the records' lengths (a whole chromosome), and
    ``np.load(path, mmap_mode="r")`` reads it back a piece at a time. Rows past a record's end are never written:
    zeros, which on most file systems are holes that take no disk. Ids and lengths go beside it, a line each."""
    import shutil

    import numpy as np

    from hyenadna.utils.io import atomic_path, atomic_write_text

    records = list(read_records(args, progress.skip))  # a byte a base: the rows are 1,024 times that
    with located(records):
        data = model.process_data([r.sequence for r in records], names=[r.name for r in records])
    rows = model.per_base_rows(data)  # fewer than the bases under --long-sequences truncate
    need = 4 * model.embedding_dim * len(layers) * int(rows.sum())
    folder = Path(args.output).resolve().parent
    free = shutil.disk_usage(folder).free
    if need > free:
        raise OSError(
            f"per-token .npy of {len(data):,} records ({int(data.lengths.sum()):,} bases) needs {need / 1e9:.1f} GB "
            f"of disk, and {folder} has {free / 1e9:.1f} GB free: pool them (--pooling mean), or write elsewhere"
        )
    with contextlib.ExitStack() as stack:
        paths = iter([stack.enter_context(atomic_path(o)) for o in outputs])

        def on_disk(shape: tuple[int, int, int]) -> np.ndarray:
            return np.lib.format.open_memmap(next(paths), mode="w+", dtype=np.float32, shape=shape)

        arrays = model.get_embeddings(
            data, layer=layers, overlap=args.overlap, on_batch=progress.add_bases, allocate=on_disk
        )
        for array in arrays:
            array.flush()
        del arrays  # unmapped before the files are renamed into place
    for output in outputs:
        atomic_write_text(output + ".ids.txt", "".join(f"{name}\n" for name in data.names))
        atomic_write_text(output + ".lengths.txt", "".join(f"{n}\n" for n in rows.tolist()))
    progress.update(len(data))


def _layer_path(output: str, layer: int) -> str:
    path = Path(output)
    suffix = "".join(path.suffixes[-1:])
    return str(path.with_name(f"{path.name[: len(path.name) - len(suffix)]}.layer{layer}{suffix}"))


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from hyenadna.cli.distributed import Sharding
    from hyenadna.data.writers import PARQUET_PER_TOKEN_COPIES, EmbeddingWriter
    from hyenadna.sdk import HyenaDNA

    shard = Sharding(args.output, "embed")
    pooling = None if args.pooling == "none" else args.pooling
    model = HyenaDNA(
        sdk_config(
            args,
            device=shard.device(args.device),
            pooling=pooling,
            rc_average=args.rc_average,
            framing=args.framing,
            long_sequences=args.long_sequences,
            progress=False,
        )
    )
    print(f"model: {model.source}", file=sys.stderr)
    layers = model.model.backbone.layer_indices(args.layer)  # checked before any file is opened
    if len(set(layers)) < len(layers):  # two writers on one file: say so, not write it twice
        twice = sorted({k for k in layers if layers.count(k) > 1})
        raise ValueError(
            f"--layer {' '.join(map(str, args.layer))} names layer {', '.join(map(str, twice))} twice (-1 is layer "
            f"{model.model.config.n_layer}, the last)"
        )
    outputs = [args.output] if len(layers) == 1 else [_layer_path(args.output, k) for k in layers]
    # per token, a chunk's arrays (and what writing them holds) stay near PER_TOKEN_CHUNK_BYTES, whatever the records'
    # count and lengths
    copies = PARQUET_PER_TOKEN_COPIES if pooling is None and Path(args.output).suffix == ".parquet" else 0
    per_base = 4 * model.embedding_dim * (len(layers) + copies)
    max_bases = PER_TOKEN_CHUNK_BYTES // per_base if pooling is None else None
    n_seq = 0
    progress = Progress(
        "sequences", total=lambda: count_records(args), enabled=None if shard.is_main else False, share=shard.world
    )

    def embed(chunk: list) -> tuple:
        with located(chunk, n_seq):
            data = model.process_data([r.sequence for r in chunk], names=[r.name for r in chunk], start_index=n_seq)
        if copies:
            _check_parquet_memory(chunk, per_base, copies)
        # per token: one array a record, so memory follows the bases read, not the chunk's count times its longest
        embeddings = model.get_embeddings(
            data, layer=layers, overlap=args.overlap, ragged=pooling is None, on_batch=progress.add_bases
        )
        # per token, a record's length is its rows (fewer than its bases under --long-sequences truncate)
        lengths = np.array([len(e) for e in embeddings[0]]) if pooling is None else data.lengths
        return data, embeddings, lengths

    if pooling is None and Path(args.output).suffix == ".npy":
        if shard.active:
            raise ValueError("per-token .npy is written by one process: with torchrun, write .npz or .parquet")
        _per_token_npy(args, model, layers, outputs, progress)
    elif shard.active:  # this rank's blocks now; rank 0 writes them all, in input order, once every rank is done
        records = read_records(args, progress.skip, warn=shard.is_main)  # every rank reads all: one warns
        for k, chunk in enumerate(in_chunks(records, step_size(args), max_bases)):
            if shard.mine(k):
                data, embeddings, lengths = embed(chunk)
                named = {f"layer{i}": e for i, e in enumerate(embeddings)}
                shard.save(k, {"names": np.array(data.names, dtype=str), "lengths": lengths, **named})
                progress.update(len(data))  # its bases came batch by batch
            n_seq += len(chunk)

        def merge(blocks) -> None:
            with contextlib.ExitStack() as stack:
                writers = [stack.enter_context(EmbeddingWriter(o, per_token=pooling is None)) for o in outputs]
                for arrays, _ in blocks:
                    for i, writer in enumerate(writers):
                        writer.add([str(x) for x in arrays["names"]], arrays["lengths"], arrays[f"layer{i}"])

        shard.finish(merge)
    else:
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(EmbeddingWriter(o, per_token=pooling is None)) for o in outputs]
            for chunk in in_chunks(read_records(args, progress.skip), step_size(args), max_bases):
                data, embeddings, lengths = embed(chunk)
                for writer, emb in zip(writers, embeddings, strict=True):
                    writer.add(data.names, lengths, emb)
                n_seq += len(data)
                progress.update(len(data))  # its bases came batch by batch
    kind = "per token" if pooling is None else f"{pooling}-pooled"
    progress.finish("embedded", ", ".join(outputs), f", {kind}, dim {model.embedding_dim}{shard.note}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "embed", "embed sequences (FASTA/FASTQ/CSV/TSV/text/stdin, or BED intervals on a genome)", cmd_embed
    )
    add_input_args(p)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .npz, .npy or .parquet (per token, .npy is one (N, L_max, D) array filled on disk)",
    )
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
