"""How far back do the bundled models' Hyena filters reach? For each layer: the share of the long-convolution filter's
energy at lags 0-16, 16-1k, 1k-4k and 4k-16k, and a log-log plot of the filter RMS against lag. Seconds, no data.

    .venv/bin/python benchmarks/filter_reach.py     # -> docs/pretraining/tiny-16k-d256/eval/filter_reach.{json,png}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from hyenadna import HyenaDNA, HyenaDNAConfig
    from hyenadna.training.context import filter_reach, plot_filter_reach
    from hyenadna.utils.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["hyenadna-tiny-1k-d256-grch37", "hyenadna-tiny-16k-d256-grch37"])
    ap.add_argument("--out", default=str(REPO / "docs/pretraining/tiny-16k-d256/eval"))
    args = ap.parse_args()
    reach = {}
    for name in args.models:
        reach[name] = filter_reach(HyenaDNA(HyenaDNAConfig(model_name=name, progress=False)).model)
    out = Path(args.out)
    report = {
        name: [{"layer": i + 1, "l_max": r["l_max"], "energy_share": r["energy_share"]} for i, r in enumerate(layers)]
        for name, layers in reach.items()
    }
    atomic_write_text(out / "filter_reach.json", json.dumps(report, indent=1) + "\n")
    plot_filter_reach(reach, str(out / "filter_reach.png"), "Hyena long-convolution filters: RMS tap by lag")
    for name, layers in report.items():
        for r in layers:
            shares = ", ".join(f"{band} {100 * v:.1f}%" for band, v in r["energy_share"].items())
            print(f"{name} layer {r['layer']}: {shares}")


if __name__ == "__main__":
    main()
