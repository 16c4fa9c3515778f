"""Single-nucleotide tokenizer: one id per base, vectorised with a byte lookup table.

Vocabulary (fixed by the released checkpoints): [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6
A=7 C=8 G=9 T=10 N=11. The embedding has 16 rows; ids 12-15 are never produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

VOCAB: dict[str, int] = {
    "[CLS]": 0,
    "[SEP]": 1,
    "[BOS]": 2,
    "[MASK]": 3,
    "[PAD]": 4,
    "[RESERVED]": 5,
    "[UNK]": 6,
    "A": 7,
    "C": 8,
    "G": 9,
    "T": 10,
    "N": 11,
}
CLS, SEP, BOS, MASK, PAD, RESERVED, UNK = range(7)
A, C, G, T, N = 7, 8, 9, 10, 11
IUPAC_AMBIGUITY = "RYKMSWBDHV"
FRAMINGS = ("none", "sep", "cls_sep")
POLICIES = ("iupac_to_n", "strict", "reference")

_INVALID = 255
# complement on ids: A<->T, C<->G; N and specials map to themselves
COMPLEMENT_IDS = np.arange(16, dtype=np.uint8)
COMPLEMENT_IDS[[A, C, G, T]] = [T, G, C, A]
_ID_TO_CHAR = np.frombuffer(b"<>^?_!~ACGTN****", dtype=np.uint8)  # one printable byte per id, for decode


def _lookup_table(policy: str) -> np.ndarray:
    lut = np.full(256, _INVALID, dtype=np.uint8)
    if policy == "reference":
        # the reference: case-sensitive, every other character silently becomes [UNK]
        lut[:] = UNK
        for base in "ACGTN":
            lut[ord(base)] = VOCAB[base]
        return lut
    for base in "ACGTN":
        lut[ord(base)] = lut[ord(base.lower())] = VOCAB[base]
    lut[ord("U")] = lut[ord("u")] = T  # RNA input
    if policy == "iupac_to_n":
        for code in IUPAC_AMBIGUITY:
            lut[ord(code)] = lut[ord(code.lower())] = N
    return lut


@dataclass
class BatchEncoding:
    """Right-padded ids with a mask: real tokens of a sequence never depend on what else is in the batch."""

    input_ids: torch.Tensor  # (B, L) int64, [PAD] after each sequence's end
    attention_mask: torch.Tensor  # (B, L) bool
    lengths: torch.Tensor  # (B,) int64

    def to(self, device: str | torch.device) -> BatchEncoding:
        return BatchEncoding(self.input_ids.to(device), self.attention_mask.to(device), self.lengths.to(device))


class InvalidCharacterError(ValueError):
    """A character the tokenizer does not accept; ``index`` (the sequence), 1-based ``position`` and ``char`` let a
    reader that knows where the sequence came from name the file and line."""

    def __init__(self, message: str, index: int, position: int, char: str):
        super().__init__(message)
        self.index, self.position, self.char = index, position, char


class CharacterTokenizer:
    """DNA text -> token ids.

    Args:
        framing: "none" (default; how pretraining inputs looked), "sep" (seq + [SEP], as the training code and the
            -hf tokenizer), or "cls_sep" ([CLS] + seq + [SEP], as the standalone reference and Helical).
        policy: "iupac_to_n" (default) uppercases, maps IUPAC ambiguity codes (R Y K M S W B D H V) to N and U to T,
            and rejects anything else; "strict" accepts only A/C/G/T/N/U in either case; "reference" reproduces
            the reference tokenizer exactly (case-sensitive, everything but A/C/G/T/N becomes [UNK]).
        n_to_pad: map N to [PAD], as the released weights probably saw N during pretraining.
    """

    vocab = VOCAB
    pad_token_id = PAD

    def __init__(self, framing: str = "none", policy: str = "iupac_to_n", n_to_pad: bool = False):
        if framing not in FRAMINGS:
            raise ValueError(f"framing={framing!r}: choose one of {FRAMINGS}")
        if policy not in POLICIES:
            raise ValueError(f"policy={policy!r}: choose one of {POLICIES}")
        self.framing = framing
        self.policy = policy
        self.n_to_pad = n_to_pad
        self._lut = _lookup_table(policy)
        if n_to_pad:
            self._lut[self._lut == N] = PAD

    def __repr__(self) -> str:
        return f"CharacterTokenizer(framing={self.framing!r}, policy={self.policy!r}, n_to_pad={self.n_to_pad})"

    @property
    def prefix(self) -> list[int]:
        return [CLS] if self.framing == "cls_sep" else []

    @property
    def suffix(self) -> list[int]:
        return [] if self.framing == "none" else [SEP]

    def encode_bases(self, seq: str, index: int = 0, name: str | None = None) -> np.ndarray:
        """Base ids of one sequence, unframed, as uint8 (a genome fits in memory).

        Outer whitespace is ignored (except under the "reference" policy). A bad character raises a ValueError naming
        the sequence index (and name), the 1-based position and the character."""
        if not isinstance(seq, str):
            if seq is None or (isinstance(seq, float) and seq != seq):  # a missing cell of a table
                raise ValueError(f"{sequence_label(index, name)} is missing ({seq})")
            raise TypeError(f"{sequence_label(index, name)}: expected str, got {type(seq).__name__}")
        if self.policy == "reference":
            stripped, offset = seq, 0
        else:
            stripped = seq.strip()
            offset = len(seq) - len(seq.lstrip())
        try:
            raw = stripped.encode("ascii")
        except UnicodeEncodeError as e:
            self._bad_char(stripped, e.start, offset, index, name)
        ids = self._lut[np.frombuffer(raw, dtype=np.uint8)]
        if ids.size and ids.max() == _INVALID:  # invalid is the largest value: one cheap pass when all is well
            self._bad_char(stripped, int(np.argmax(ids == _INVALID)), offset, index, name)
        return ids

    def _bad_char(self, seq: str, pos: int, offset: int, index: int, name: str | None) -> None:
        label = sequence_label(index, name)
        position = pos + offset + 1
        allowed = "A C G T N U"
        if self.policy == "iupac_to_n":
            allowed += f" and IUPAC codes {' '.join(IUPAC_AMBIGUITY)}"
        raise InvalidCharacterError(
            f"{label}, position {position}: invalid character {seq[pos]!r}; allowed are {allowed} (either case)",
            index,
            position,
            seq[pos],
        )

    def frame(self, base_ids: np.ndarray) -> np.ndarray:
        if self.framing == "none":
            return base_ids
        dtype = base_ids.dtype
        return np.concatenate([np.asarray(self.prefix, dtype), base_ids, np.asarray(self.suffix, dtype)])

    def encode(self, seq: str, index: int = 0, name: str | None = None) -> list[int]:
        """Framed ids of one sequence, as a list."""
        return self.frame(self.encode_bases(seq, index, name)).tolist()

    def __call__(self, seqs: str | Sequence[str]) -> BatchEncoding:
        """Tokenize and right-pad a batch."""
        if isinstance(seqs, str):
            seqs = [seqs]
        return pad_batch([self.frame(self.encode_bases(s, i)) for i, s in enumerate(seqs)])

    def decode(self, ids: Sequence[int] | np.ndarray | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """The text of one sequence's ids: bases as A C G T N, and with ``skip_special_tokens=False`` the special
        tokens as one character each (``<>^?_!~`` for [CLS] [SEP] [BOS] [MASK] [PAD] [RESERVED] [UNK], ``*`` for
        the unused ids 12-15). An id outside the embedding's 0-15 is an error."""
        arr = np.asarray(ids.tolist() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64)
        if arr.ndim != 1:  # a batch read as one sequence would run its rows together
            raise ValueError(f"decode takes one sequence's ids; got shape {arr.shape}: batch_decode takes a batch")
        bad = np.flatnonzero((arr < 0) | (arr >= len(_ID_TO_CHAR)))
        if bad.size:
            raise ValueError(f"id {arr[bad[0]]} at position {bad[0]} is not a token id (0 to {len(_ID_TO_CHAR) - 1})")
        if skip_special_tokens:
            arr = arr[arr >= A]
        return _ID_TO_CHAR[arr].tobytes().decode("ascii")

    def batch_decode(self, ids: Sequence | np.ndarray | torch.Tensor, skip_special_tokens: bool = True) -> list[str]:
        """``decode`` of each row of a batch ((batch, length) ids, or a list of id lists)."""
        return [self.decode(row, skip_special_tokens) for row in ids]


def sequence_label(index: int, name: str | None = None) -> str:
    """How errors name an input sequence: its index, and its name unless that is only the index again."""
    return f"sequence {index}" + (f" ({name})" if name and str(name) != str(index) else "")


def reverse_complement_ids(base_ids: np.ndarray) -> np.ndarray:
    """Reverse complement of unframed base ids (N stays N, [PAD] stays [PAD])."""
    return COMPLEMENT_IDS[base_ids[::-1]]


def pad_batch(sequences: Sequence[np.ndarray], pad_id: int = PAD) -> BatchEncoding:
    """Right-pad id arrays into a batch with an attention mask."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    width = int(lengths.max()) if len(sequences) else 0
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.int64)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.from_numpy(np.asarray(s).astype(np.int64))
    mask = torch.arange(width)[None, :] < lengths[:, None]
    return BatchEncoding(ids, mask, lengths)
