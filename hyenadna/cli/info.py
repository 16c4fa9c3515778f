"""``hyenadna info``: a checkpoint's config and size."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hyenadna.cli.common import (
    add_command,
    add_hub_args,
    add_model_option,
    add_runtime_args,
    sdk_config,
    take_model_option,
)


def cmd_info(args: argparse.Namespace) -> int:
    from hyenadna.sdk import build_model

    take_model_option(args)
    if args.model and (Path(args.model) / "finetune.json").is_file():
        meta = json.loads((Path(args.model) / "finetune.json").read_text())
        model, source = build_model(sdk_config(args, model_path=Path(args.model) / "backbone", model_name=None))
        head = {k: meta.get(k) for k in ("head", "output_size", "label_names", "pooling", "max_length")}
        print(json.dumps({"fine_tuned": head, "source": source, "parameters": model.num_parameters()}, indent=2))
        return 0
    model, source = build_model(sdk_config(args))
    info = {
        "source": source,
        "parameters": model.num_parameters(),
        "context": model.config.l_max,
        "config": model.config.to_dict(),
    }
    print(json.dumps(info, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "info", "show a checkpoint's config, parameter count and context", cmd_info)
    p.add_argument("model", nargs="?", help="model name or checkpoint path (default: the bundled model)")
    add_model_option(p)
    add_runtime_args(p)
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--allow-unsafe-pickle", action="store_true")
    add_hub_args(p)
