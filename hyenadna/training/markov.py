"""Order-k Markov baseline for next-base prediction, scored on exactly the targets the language model is scored on.

Counts k-mers of A/C/G/T only (any k-mer touching N or another token is skipped), with additive smoothing. Positions
with fewer than k bases of context inside a window use the longest context they have.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hyenadna.tokenizer import A, reverse_complement_ids


def _kmer_codes(x: np.ndarray, max_order: int):
    """For j = 0 .. max_order: (j, base-4 codes of every (j+1)-mer of x (values 0-3), which of them are all-ACGT).
    Each order extends the previous one's codes by one base, so all orders cost one pass each."""
    valid = (x >= 0) & (x < 4)
    # run[i]: consecutive valid bases ending at i
    idx = np.arange(len(x))
    last_bad = np.maximum.accumulate(np.where(valid, -1, idx))
    run = idx - last_bad
    base = np.where(valid, x, 0).astype(np.int64)
    code = base
    for j in range(max_order + 1):
        if len(x) <= j:
            return
        if j:
            code = code[:-1] * 4 + base[j:]
        yield j, code, run[j:] >= j + 1


def _codes(x: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Base-4 codes of every (order+1)-mer of x (values 0-3), and which of them are all-ACGT."""
    for j, code, ok in _kmer_codes(x, order):
        if j == order:
            return code, ok
    raise ValueError(f"a sequence of {len(x)} bases has no {order + 1}-mer")


class MarkovModel:
    def __init__(self, order: int, alpha: float = 0.5):
        self.order = order
        self.alpha = alpha
        self.counts: list[np.ndarray] = []  # counts[j]: (4**j, 4) next-base counts after each j-mer context

    def fit(self, sequences: Iterable[np.ndarray], both_strands: bool = False, progress=None) -> MarkovModel:
        """Count every k-mer of the sequences (and their reverse complements); ``progress(bases)`` after each."""
        counts = [np.zeros(4 ** (j + 1), dtype=np.int64) for j in range(self.order + 1)]
        for ids in sequences:
            strands = [ids, reverse_complement_ids(ids)] if both_strands else [ids]
            for s in strands:
                x = s.astype(np.int16) - A
                for j, code, ok in _kmer_codes(x, self.order):
                    counts[j] += np.bincount(code[ok], minlength=4 ** (j + 1))
                if progress is not None:
                    progress(len(s))
        self.counts = [c.reshape(-1, 4) for c in counts]
        return self

    def log_probs(self, windows: np.ndarray) -> np.ndarray:
        """Natural-log probability of windows[:, t] given the previous bases, for t = 1 .. L-1: (B, L-1)."""
        x = windows.astype(np.int64) - A
        if (x < 0).any() or (x > 3).any():
            raise ValueError("Markov scoring needs windows of A/C/G/T only")
        batch, length = x.shape
        out = np.empty((batch, length - 1))
        for t in range(1, length):
            j = min(t, self.order)
            ctx = np.zeros(batch, dtype=np.int64)
            for m in range(t - j, t):
                ctx = ctx * 4 + x[:, m]
            table = self.counts[j]
            num = table[ctx, x[:, t]] + self.alpha
            den = table[ctx].sum(1) + 4 * self.alpha
            out[:, t - 1] = np.log(num / den)
        return out

    def nll(self, windows: np.ndarray) -> float:
        """Mean negative log-likelihood in nats per predicted base."""
        return float(-self.log_probs(windows).mean())


def select_markov(
    fit_sequences: list[np.ndarray],
    val_windows: np.ndarray,
    orders: Iterable[int] = range(2, 13),
    alphas: Iterable[float] = (0.01, 0.1, 1.0),
    both_strands: Iterable[bool] = (False, True),
    log=print,
) -> tuple[dict, list[dict]]:
    """Grid over order, smoothing and strands, scored on validation windows; returns the best setting and all."""
    from tqdm.auto import tqdm

    results = []
    orders, alphas, both_strands = list(orders), list(alphas), list(both_strands)
    bases = sum(len(s) * (2 if strands else 1) for s in fit_sequences for strands in both_strands)
    bar = tqdm(total=bases, unit="bp", unit_scale=True, desc="Markov fit", leave=False, disable=None, mininterval=1)
    for strands in both_strands:
        full = MarkovModel(max(orders)).fit(fit_sequences, both_strands=strands, progress=bar.update)
        for k in orders:
            model = MarkovModel(k)
            model.counts = full.counts[: k + 1]
            for a in alphas:
                model.alpha = a
                nll = model.nll(val_windows)
                results.append({"order": k, "alpha": a, "both_strands": strands, "val_nll": nll})
                log(f"markov order {k:2d} alpha {a:<5} both_strands {strands!s:5}: {nll:.4f} nats/base")
    bar.close()
    best = min(results, key=lambda r: r["val_nll"])
    return best, results
