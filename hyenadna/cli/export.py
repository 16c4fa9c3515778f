"""``hyenadna export``: a pretraining run as a model folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hyenadna.cli.common import add_command


def cmd_export(args: argparse.Namespace) -> int:
    from hyenadna.training.export import export_run

    evaluation = None
    if args.evaluation:
        try:
            evaluation = json.loads(Path(args.evaluation).read_text())
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError(
                f"--evaluation {args.evaluation}: not the JSON report of `hyenadna evaluate -o` ({e})"
            ) from None
        if not isinstance(evaluation, dict) or "model_nll" not in evaluation:
            raise ValueError(
                f"--evaluation {args.evaluation}: not the JSON report of `hyenadna evaluate -o` (no model_nll)"
            )
    name = args.name or Path(args.destination).name
    folder = Path(args.evaluation).parent if args.evaluation else None
    dest = export_run(
        args.run, args.destination, name, evaluation, args.bundled, evaluation_dir=folder, parents=args.parent or []
    )
    print(f"exported {args.run} -> {dest} (config.json, weights, README.md model card, plots)", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "export", "turn a pretraining run into a model folder with a model card", cmd_export)
    p.add_argument("run", help="the pretraining run folder (--out of hyenadna pretrain)")
    p.add_argument("destination", help="model folder to write")
    p.add_argument("--name", help="model name for the card (default: the folder name)")
    p.add_argument("--bundled", action="store_true", help="the card says the model ships inside the package")
    p.add_argument("--evaluation", help="JSON written by `hyenadna evaluate -o` to report instead of the last eval")
    p.add_argument(
        "--parent",
        action="append",
        metavar="RUN",
        help="a run this one was warm-started from (--init-from), oldest first; repeatable: the card counts its "
        "tokens and CPU hours in",
    )
