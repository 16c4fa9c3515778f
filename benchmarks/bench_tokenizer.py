"""Tokenizer throughput on 100 Mb of real DNA-like text (issue: "100 Mb tokenize in seconds").

Run: .venv/bin/python benchmarks/bench_tokenizer.py [--mb 100]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hyenadna import CharacterTokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.mb * 1_000_000
    text = rng.choice(np.frombuffer(b"ACGTacgtN", np.uint8), n).tobytes().decode("ascii")
    tok = CharacterTokenizer()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        ids = tok.encode_bases(text)
        times.append(time.perf_counter() - t0)
    assert ids.shape == (n,)
    best = min(times)
    print(json.dumps({"megabases": args.mb, "best_seconds": round(best, 3), "mb_per_s": round(args.mb / best, 1)}))


if __name__ == "__main__":
    main()
