"""The ``hyenadna`` command line. Exit codes: 0 success, 1 bad input or runtime failure, 2 usage error."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

EXAMPLES = """examples:
  hyenadna embed hyenadna/examples/example.fa -o emb.npz               # bundled model, mean-pooled
  hyenadna embed seqs.fa -o emb.npz --model ~/weights/hyenadna-tiny-1k-seqlen-d256
  hyenadna embed seqs.fa -o emb.npz --random-init                      # random weights, on purpose
  hyenadna info ~/.cache/hyenadna/hyenadna-tiny-1k-seqlen
  hyenadna convert weights_dir/ converted_dir/ --layout hyenadna
"""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="published model name or checkpoint path (default: the bundled model)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
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


def _sdk_config(args: argparse.Namespace, **kw):
    from hyenadna.sdk import HyenaDNAConfig

    name, path = args.model, None
    if name is not None and (Path(name).expanduser().exists()):
        name, path = None, name
    return HyenaDNAConfig(
        model_name=name,
        model_path=path,
        device=args.device,
        batch_size=args.batch_size,
        pretrained=not args.random_init,
        allow_unsafe_pickle=args.allow_unsafe_pickle,
        **kw,
    )


def cmd_embed(args: argparse.Namespace) -> int:
    from hyenadna.data.fasta import read_fasta
    from hyenadna.sdk import HyenaDNA
    from hyenadna.utils.io import atomic_path

    pooling = None if args.pooling == "none" else args.pooling
    model = HyenaDNA(_sdk_config(args, pooling=pooling, rc_average=args.rc_average, framing=args.framing))
    print(f"model: {model.source}", file=sys.stderr)
    records = list(read_fasta(args.input))
    data = model.process_data([r.sequence for r in records], names=[r.name for r in records])
    t0 = time.perf_counter()
    emb = model.get_embeddings(data)
    dt = time.perf_counter() - t0
    n_tok = int(data.lengths.sum())
    out = Path(args.output)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        if out.suffix == ".npy":
            np.save(f, emb)
        else:
            np.savez(f, ids=np.array(data.names), embeddings=emb, lengths=data.lengths)
    print(
        f"embedded {len(data)} sequences ({n_tok} bp) in {dt:.2f} s ({n_tok / max(dt, 1e-9):,.0f} bp/s); "
        f"shape {tuple(emb.shape)} -> {out}",
        file=sys.stderr,
    )
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
    from hyenadna.models.checkpoint import convert_checkpoint

    out = convert_checkpoint(
        args.source, args.destination, layout=args.layout, allow_unsafe_pickle=args.allow_unsafe_pickle
    )
    print(f"wrote {args.layout} layout to {out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyenadna",
        description="HyenaDNA DNA language model tools.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "embed",
        help="embed the sequences of a FASTA file",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="FASTA file (.fa or .fa.gz)")
    p.add_argument("-o", "--output", required=True, help="output .npz (ids, embeddings, lengths) or .npy")
    p.add_argument("--pooling", choices=["mean", "last", "max", "none"], default="mean")
    p.add_argument("--rc-average", action="store_true", help="average with the reverse complement's embedding")
    p.add_argument("--framing", choices=["none", "sep", "cls_sep"], default="none")
    _add_model_args(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("info", help="show a checkpoint's config, parameter count and context")
    p.add_argument("model", nargs="?", help="model name or checkpoint path (default: the bundled model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--allow-unsafe-pickle", action="store_true")
    p.set_defaults(func=cmd_info, threads=None)

    p = sub.add_parser("convert", help="convert a checkpoint between layouts")
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--layout", choices=["hyenadna", "hf", "lightning"], default="hyenadna")
    p.add_argument("--allow-unsafe-pickle", action="store_true")
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"hyenadna {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hyenadna {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
