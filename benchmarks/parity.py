"""Max abs error against every reference fixture, per layout and path (fast and plain reference).

.venv/bin/python benchmarks/parity.py [--fixtures ../shared/fixtures/reference]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from hyenadna import load_model

SOURCES = [
    ("tiny", "tiny"),
    ("tiny", "tiny/lightning_weights.ckpt"),
    ("tiny", "tiny_ckpt_layer"),
    ("tiny", "tiny_hf"),
    ("deep_long", "deep_long"),
    ("wide", "wide"),
]
CASES = ("batch4", "long", "padded", "single", "all_ids")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixtures", default=str(Path(__file__).resolve().parents[2] / "shared/fixtures/reference"))
    root = Path(parser.parse_args().fixtures)
    print("| fixture (layout) | path | hidden states max abs err | logits max abs err |")
    print("|---|---|---|---|")
    for name, source in SOURCES:
        io = load_file(root / name / "io.safetensors")
        for ref in (False, True):
            model = load_model(root / source).use_reference_path(ref)
            hidden, logits = 0.0, 0.0
            with torch.no_grad():
                for case in CASES:
                    out = model(io[f"{case}.input_ids"])
                    hidden = max(hidden, (out.hidden_states - io[f"{case}.hidden_states"]).abs().max().item())
                    if f"{case}.logits" in io:
                        logits = max(logits, (out.logits - io[f"{case}.logits"]).abs().max().item())
            lg = f"{logits:.1e}" if f"{CASES[0]}.logits" in io else "n/a"
            print(f"| {source} | {'reference' if ref else 'fast'} | {hidden:.1e} | {lg} |")


if __name__ == "__main__":
    main()
