"""The k-mer logistic-regression baseline of the benchmarks README: standardised k-mer frequencies, L2 logistic
regression, k and C chosen on the validation split, refit on all of train."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hyenadna.tokenizer import A, CharacterTokenizer


def kmer_frequencies(sequences: list[str], k: int) -> np.ndarray:
    """(N, 4**k) frequencies of the A/C/G/T k-mers of each sequence (k-mers touching N are skipped)."""
    tok = CharacterTokenizer()
    out = np.zeros((len(sequences), 4**k), dtype=np.float32)
    for i, s in enumerate(sequences):
        x = tok.encode_bases(s, i).astype(np.int64) - A
        if len(x) < k:
            continue
        valid = np.lib.stride_tricks.sliding_window_view((x >= 0) & (x < 4), k).all(1)
        codes = np.lib.stride_tricks.sliding_window_view(np.clip(x, 0, 3), k) @ (4 ** np.arange(k - 1, -1, -1))
        counts = np.bincount(codes[valid], minlength=4**k)
        out[i] = counts / max(1, counts.sum())
    return out


def make_kmer_model(C: float, seed: int = 0):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
