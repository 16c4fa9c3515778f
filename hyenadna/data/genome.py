"""A genome held in memory as uint8 token ids per chromosome (one byte per base: 133 Mb fits easily)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hyenadna.data.fasta import read_fasta
from hyenadna.data.regions import Interval, canonical_chrom
from hyenadna.tokenizer import CharacterTokenizer


class Genome:
    def __init__(self, chromosomes: dict[str, np.ndarray]):
        self.chromosomes = chromosomes

    @classmethod
    def from_fasta(cls, paths: Iterable[str | Path], policy: str = "iupac_to_n") -> Genome:
        tok = CharacterTokenizer(policy=policy)
        chroms: dict[str, np.ndarray] = {}
        for path in paths:
            for i, rec in enumerate(read_fasta(path)):
                name = canonical_chrom(rec.name)
                if name in chroms:
                    raise ValueError(f"{path}: chromosome {rec.name!r} appears twice")
                chroms[name] = tok.encode_bases(rec.sequence, i, f"{path}:{rec.name}")
        return cls(chroms)

    @property
    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.chromosomes.items()}

    def fetch(self, interval: Interval) -> np.ndarray:
        return self.chromosomes[canonical_chrom(interval.chrom)][interval.start : interval.end]
