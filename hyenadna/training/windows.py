"""Training and validation windows drawn from genome intervals.

Each step's windows come from a generator seeded by (seed, rank, step), so a resumed run draws exactly the windows
the uninterrupted run would have, and every distributed rank draws different ones.
"""

from __future__ import annotations

import numpy as np

from hyenadna.data.genome import Genome
from hyenadna.data.regions import Interval
from hyenadna.tokenizer import PAD, N, reverse_complement_ids


class WindowSampler:
    """Uniform random windows of ``length`` tokens from ``intervals`` (weighted by how many starts each has)."""

    def __init__(
        self,
        genome: Genome,
        intervals: list[Interval],
        max_n_fraction: float = 0.05,
        reverse_complement: bool = False,
        n_to_pad: bool = False,
        seed: int = 0,
        rank: int = 0,
    ):
        self.genome = genome
        self.intervals = intervals
        self.max_n_fraction = max_n_fraction
        self.reverse_complement = reverse_complement
        self.n_to_pad = n_to_pad
        self.seed = seed
        self.rank = rank

    def batch(self, step: int, batch_size: int, length: int) -> np.ndarray:
        """(batch_size, length) int64 windows for this step."""
        rng = np.random.default_rng([self.seed, self.rank, step])
        spans = np.array([max(0, len(iv) - length + 1) for iv in self.intervals], dtype=np.float64)
        if spans.sum() == 0:
            raise ValueError(f"no training interval is at least {length} bases long")
        probs = spans / spans.sum()
        out = np.empty((batch_size, length), dtype=np.int64)
        filled, tries = 0, 0
        while filled < batch_size:
            tries += 1
            if tries > 1000 * batch_size:
                raise ValueError(
                    f"{tries - 1:,} random windows of {length:,} bases in the training regions all held more than "
                    f"max_n_fraction={self.max_n_fraction:g} of N: raise it, or train on regions with fewer N"
                )
            iv = self.intervals[rng.choice(len(self.intervals), p=probs)]
            start = iv.start + int(rng.integers(0, len(iv) - length + 1))
            w = self.genome.fetch(Interval(iv.chrom, start, start + length))
            if np.count_nonzero(w == N) > self.max_n_fraction * length:
                continue
            if self.reverse_complement and rng.random() < 0.5:
                w = reverse_complement_ids(w)
            out[filled] = w
            filled += 1
        if self.n_to_pad:
            out[out == N] = PAD
        return out


def fixed_windows(genome: Genome, intervals: list[Interval], count: int, length: int, seed: int = 1234) -> np.ndarray:
    """``count`` N-free windows spread over ``intervals``, the same for every run with the same arguments."""
    if not intervals:
        raise ValueError("no evaluation region: name one with eval_region (--eval-region)")
    if not any(len(iv) >= length for iv in intervals):
        longest = max(intervals, key=len)
        raise ValueError(
            f"the evaluation windows take {length:,} bases and the longest evaluation interval ({longest}) has "
            f"{len(longest):,}: give shorter windows (--seq-len) or a longer region (--eval-region)"
        )
    sampler = WindowSampler(genome, intervals, max_n_fraction=0.0, seed=seed, rank=0)
    return sampler.batch(0, count, length)
