"""Order-k Markov baseline for next-base prediction, scored on exactly the targets the language model is scored on.

Counts k-mers of A/C/G/T only (any k-mer touching N or another token is skipped), with additive smoothing. Positions
with fewer than k bases of context inside a window use the longest context they have.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hyenadna.tokenizer import A


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


SEGMENT_BASES = 32_000_000  # k-mer ends counted at a time: a whole chromosome held an int64 code a base an order


def count_kmers(
    sequences: Iterable[np.ndarray],
    max_order: int,
    ends_from: Iterable[int] | None = None,
    progress=None,
) -> list[np.ndarray]:
    """Next-base counts of the sequences' forward strand for every order j = 0 .. max_order: counts[j] is (4**j, 4),
    rows the j-mer contexts, columns the next base. ``ends_from[i]``: count only the k-mers of sequence i that end at
    or after that index (a sequence's tail, whose counts added to its head's give the whole sequence's exactly).
    ``progress(bases)`` as it goes.

    The k-mers are counted by where they end, ``SEGMENT_BASES`` positions at a time (each segment read with the
    ``max_order`` bases before it), so memory does not grow with a chromosome's length."""
    counts = [np.zeros(4 ** (j + 1), dtype=np.int64) for j in range(max_order + 1)]
    starts = iter(ends_from) if ends_from is not None else None
    for ids in sequences:
        end_from = next(starts) if starts is not None else 0
        for start in range(end_from, len(ids), SEGMENT_BASES):
            first = max(0, start - max_order)  # no k-mer ending at start or later begins before this
            x = ids[first : start + SEGMENT_BASES].astype(np.int16) - A
            for j, code, ok in _kmer_codes(x, max_order):
                skip = max(0, start - first - j)  # the k-mer beginning at p ends at p + j
                counts[j] += np.bincount(code[skip:][ok[skip:]], minlength=4 ** (j + 1))
            if progress is not None:
                progress(len(x) - (start - first))
    return [c.reshape(-1, 4) for c in counts]


def add_reverse_complement(counts: list[np.ndarray]) -> list[np.ndarray]:
    """Both strands' counts from the forward strand's: every k-mer read on the reverse strand is the reverse
    complement of one on the forward strand (N-free on one strand iff on the other), so the reverse strand's table is
    the forward one with each base complemented (A=0 <-> T=3, C=1 <-> G=2: every axis flipped) and the bases in reverse
    order (the axes reversed). Exact, without reading the sequences a second time."""
    both = []
    for j, table in enumerate(counts):
        cube = table.reshape((4,) * (j + 1))  # axis i: the k-mer's base i (the first base is the most significant)
        both.append(table + np.flip(cube).transpose(tuple(range(j, -1, -1))).reshape(table.shape))
    return both


class MarkovModel:
    def __init__(self, order: int, alpha: float = 0.5):
        self.order = order
        self.alpha = alpha
        self.counts: list[np.ndarray] = []  # counts[j]: (4**j, 4) next-base counts after each j-mer context

    def fit(self, sequences: Iterable[np.ndarray], both_strands: bool = False, progress=None) -> MarkovModel:
        """Count every k-mer of the sequences (and of their reverse complements); ``progress(bases)`` after each."""
        counts = count_kmers(sequences, self.order, progress=progress)
        self.counts = add_reverse_complement(counts) if both_strands else counts
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
    counts: list[np.ndarray] | None = None,
) -> tuple[dict, list[dict]]:
    """Grid over order, smoothing and strands, scored on validation windows; returns the best setting and all.
    ``counts``: the fit sequences' forward counts (``count_kmers``) up to the highest order, if already made."""
    from tqdm.auto import tqdm

    results = []
    orders, alphas, both_strands = list(orders), list(alphas), list(both_strands)
    if counts is None:
        bases = sum(len(s) for s in fit_sequences)
        bar = tqdm(total=bases, unit="bp", unit_scale=True, desc="Markov fit", leave=False, disable=None, mininterval=1)
        counts = count_kmers(fit_sequences, max(orders), progress=bar.update)
        bar.close()
    for strands in both_strands:
        full = MarkovModel(max(orders))
        full.counts = add_reverse_complement(counts) if strands else counts
        for k in orders:
            model = MarkovModel(k)
            model.counts = full.counts[: k + 1]
            for a in alphas:
                model.alpha = a
                nll = model.nll(val_windows)
                results.append({"order": k, "alpha": a, "both_strands": strands, "val_nll": nll})
                log(f"markov order {k:2d} alpha {a:<5} both_strands {strands!s:5}: {nll:.4f} nats/base")
    best = min(results, key=lambda r: r["val_nll"])
    return best, results
