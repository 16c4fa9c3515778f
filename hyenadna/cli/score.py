"""``hyenadna score``: per-sequence log-likelihood."""

from __future__ import annotations

import argparse
import sys

from hyenadna.cli.common import (
    add_command,
    add_input_args,
    add_model_args,
    in_chunks,
    int_at_least,
    progress_bar,
    read_records,
    sdk_config,
    write_rows,
)


def cmd_score(args: argparse.Namespace) -> int:
    from hyenadna.scoring import score_bases, scoring_policy
    from hyenadna.sdk import HyenaDNA

    model = HyenaDNA(sdk_config(args, framing=args.framing, progress=False))
    policy = scoring_policy(model.context_length, overlap=args.overlap)
    print(f"model: {model.source}", file=sys.stderr)
    bar = progress_bar("seq")

    def rows():
        n = 0
        for chunk in in_chunks(read_records(args), args.chunk_size):
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
                    "n_skipped": s.n_skipped,
                    "nll_per_base": s.nll_per_base,
                    "perplexity": s.perplexity,
                }
            n += len(data)
            bar.update(len(data))

    write_rows(rows(), args.output, args.out_format)
    bar.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "score", "per-sequence log-likelihood, NLL per base and perplexity", cmd_score)
    add_input_args(p)
    p.add_argument("-o", "--output", help="output .jsonl or .tsv (default: JSON Lines on stdout)")
    p.add_argument("--out-format", choices=["auto", "jsonl", "tsv"], default="auto")
    p.add_argument("--framing", choices=["none", "sep", "cls_sep"], default="none")
    p.add_argument(
        "--overlap",
        type=int_at_least(1),
        default=1,
        help="sequences longer than the context: tokens of left context each window re-reads (at least 1, so every "
        "base but the first is scored; default 1)",
    )
    add_model_args(p)
