"""``hyenadna predict``: predictions of a fine-tuned classifier."""

from __future__ import annotations

import argparse
import contextlib
import warnings

from hyenadna.cli.common import (
    ROW_FORMATS,
    Progress,
    add_command,
    add_input_args,
    add_model_option,
    add_runtime_args,
    count_records,
    in_chunks,
    located,
    read_records,
    row_format,
    step_size,
    take_model_option,
    write_rows,
)


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from hyenadna.finetune import HyenaDNAFineTuningModel, cut_message, no_dna_message, without_dna

    take_model_option(args, then="input")
    fmt = row_format(args.output, args.out_format)  # a refused extension before any work
    ft = HyenaDNAFineTuningModel.load(args.model, device=args.device, batch_size=args.batch_size)
    label_names = ft.label_names or [str(i) for i in range(ft.output_size)]
    progress = Progress("sequences", total=lambda: count_records(args))
    # sequences longer than the model reads, and sequences with no DNA: one warning each a run, not one a chunk
    stats = {"n": 0, "cut": 0, "longest": (0, ""), "no_dna": 0, "first_no_dna": ""}

    def rows():
        """A row a sequence, a chunk at a time, so that they stream to the output (they were all held first)."""
        for chunk in in_chunks(read_records(args, progress.skip), step_size(args)):
            with located(chunk):
                data = ft.process_data([r.sequence for r in chunk], names=[r.name for r in chunk])
            stats["cut"] += int((data.lengths > ft.max_bases).sum())
            pairs = zip(data.lengths.tolist(), data.names, strict=True)
            stats["longest"] = max([stats["longest"], *pairs], key=lambda x: x[0])
            empty = without_dna(data)
            if empty and not stats["no_dna"]:
                stats["first_no_dna"] = data.names[empty[0]]
            stats["no_dna"] += len(empty)
            with quiet_about_cuts():
                predicted = ft.predict(data, rc_average=args.rc_average)
            if ft.head_type == "regression":
                values = np.asarray(predicted).reshape(len(data), -1)
                yield from (
                    {"id": name, "value": [float(x) for x in v] if len(v) > 1 else float(v[0])}
                    for name, v in zip(data.names, values, strict=True)
                )
            else:
                labels, probs = predicted
                yield from (
                    {
                        "id": name,
                        "label": label_names[int(y)],
                        "label_index": int(y),
                        "probabilities": {label_names[j]: round(float(p[j]), 6) for j in range(len(label_names))},
                    }
                    for name, y, p in zip(data.names, labels, probs, strict=True)
                )
            stats["n"] += len(data)
            progress.update(len(data), int(data.lengths.sum()))

    write_rows(rows() if fmt in ("jsonl", "json") else map(_flat, rows()), args.output, fmt)
    if stats["cut"]:
        longest = stats["longest"]
        message = cut_message(stats["cut"], stats["n"], ft.max_bases, longest[1], longest[0], "predicted from")
        warnings.warn(message, stacklevel=1)
    if stats["no_dna"]:
        warnings.warn(no_dna_message(stats["no_dna"], stats["n"], stats["first_no_dna"]), stacklevel=1)
    progress.finish("predicted", args.output)
    return 0


def _flat(row: dict) -> dict:
    """A table's row: a column per class probability (p_<label>) or output value."""
    out = {k: v for k, v in row.items() if k not in ("probabilities", "value")}
    out.update({f"p_{k}": v for k, v in row.get("probabilities", {}).items()})
    if "value" in row:
        values = row["value"] if isinstance(row["value"], list) else [row["value"]]
        out.update({"value": values[0]} if len(values) == 1 else {f"value_{i}": v for i, v in enumerate(values)})
    return out


@contextlib.contextmanager
def quiet_about_cuts():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".* bases the model reads;")
        warnings.filterwarnings("ignore", message=".* hold no A, C, G or T")
        yield


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "predict", "predict labels with a fine-tuned model (JSON Lines, JSON, TSV or CSV)", cmd_predict
    )
    p.add_argument("model", nargs="?", help="a folder written by `hyenadna fine-tune`")
    add_model_option(p)
    add_input_args(p)
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument(
        "--out-format",
        choices=["auto", *ROW_FORMATS],
        default="auto",
        help="auto (default): by the output's extension (.json, .tsv/.txt, .csv; else JSON Lines); tsv and csv hold "
        "a column per class probability (p_<label>)",
    )
    p.add_argument("--rc-average", action="store_true")
    add_runtime_args(p, batch_size=16)
