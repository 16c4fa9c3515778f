"""``hyenadna score``: per-sequence log-likelihood."""

from __future__ import annotations

import argparse
import sys

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
    write_blocks,
)


def cmd_score(args: argparse.Namespace) -> int:
    from hyenadna.cli.distributed import Sharding
    from hyenadna.scoring import score_bases, scoring_policy
    from hyenadna.sdk import HyenaDNA

    shard = Sharding(args.output, "score")
    model = HyenaDNA(sdk_config(args, device=shard.device(args.device), framing=args.framing, progress=False))
    policy = scoring_policy(model.context_length, overlap=args.overlap)
    print(f"model: {model.source}", file=sys.stderr)
    progress = Progress("sequences", total=lambda: count_records(args), enabled=None if shard.is_main else False)

    def blocks():
        """(block index, rows) for this process's blocks of the input."""
        n = 0
        for k, chunk in enumerate(in_chunks(read_records(args), step_size(args))):
            if shard.mine(k):
                with located(chunk, n):
                    data = model.process_data([r.sequence for r in chunk], names=[r.name for r in chunk], start_index=n)
                scores = score_bases(
                    model.model, data.ids, model.tokenizer, policy, model.config.batch_size, data.names, start_index=n
                )
                rows = [
                    {
                        "id": name,
                        "length": int(length),
                        "log_likelihood": s.log_likelihood,
                        "n_scored": s.n_scored,
                        "n_skipped": s.n_skipped,
                        "nll_per_base": s.nll_per_base,
                        "perplexity": s.perplexity,
                    }
                    for name, length, s in zip(data.names, data.lengths, scores, strict=True)
                ]
                progress.update(len(data), int(data.lengths.sum()))
                yield k, rows
            n += len(chunk)

    write_blocks(shard, blocks(), args.output, args.out_format)
    progress.finish("scored", args.output, shard.note)
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
