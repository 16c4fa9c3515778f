"""``hyenadna download``: prefetching from the Hugging Face Hub."""

from __future__ import annotations

import argparse
import sys
import time

from hyenadna.cli.common import add_command

DOWNLOAD_EXAMPLES = """examples:
  hyenadna download hyenadna-tiny-1k-seqlen-d256 hyenadna-small-32k-seqlen --dataset nt
  HF_HOME=/shared/hf hyenadna download LongSafari/hyenadna-medium-160k-seqlen-hf    # a cache the cluster shares
  HF_HOME=/shared/hf hyenadna embed seqs.fa -o emb.npz --model hyenadna-medium-160k-seqlen --offline
"""


def cmd_download(args: argparse.Namespace) -> int:
    """Prefetch models and benchmark suites into the Hugging Face cache, for machines without a network."""
    from hyenadna.benchmark.suites import fetch_suite
    from hyenadna.hub import BUNDLED_DIR, HubOptions, bundled_models, download_model

    if not args.names and not args.dataset:
        raise ValueError("name at least one model, or --dataset SUITE")
    hub = HubOptions(revision=args.revision, layout=args.hub_layout)
    t0 = time.time()
    for name in args.names:
        if name in bundled_models():  # installed with the package; no Hub repository holds it
            print(f"{name}: bundled with hyenadna ({BUNDLED_DIR / name}); nothing to download", flush=True)
            continue
        folder = download_model(name, hub)
        print(f"{name}: {folder}", flush=True)
    for suite in args.dataset or []:
        folders = fetch_suite(suite, HubOptions(revision=args.revision))
        print(f"{suite}: {len(folders)} tasks in {folders[0].parent}", flush=True)
    print(
        f"downloaded in {time.time() - t0:.1f} s; use them offline with --offline or HF_HUB_OFFLINE=1", file=sys.stderr
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "download",
        "prefetch models and benchmark suites from the Hugging Face Hub into its cache (HF_HOME), for offline use",
        cmd_download,
        epilog=DOWNLOAD_EXAMPLES,
    )
    p.add_argument("names", nargs="*", help="published model names or Hub repo ids")
    p.add_argument("--dataset", nargs="+", choices=["nt"], help="benchmark suites to fetch (nt: the 18 NT tasks)")
    p.add_argument("--revision", help="Hub branch, tag or commit (default: main)")
    p.add_argument("--hub-layout", choices=["auto", "hf", "lightning"], default="auto")
