"""The one data path from base ids to model batches and back to per-base outputs.

Every consumer (embeddings, scoring, variant effects, fine-tuning, generation) goes through it:

1. **Framing** (``CharacterTokenizer.frame``): the specials of the chosen framing around the bases.
2. **Fitting to the context** (``ContextPolicy``): a sequence longer than the context is cut into windows
   (``window``, with an optional ``overlap`` of left context that is not output again), cut at the end (``truncate``:
   bases are dropped before framing, so the framing and both strands keep the same bases), or refused (``error``).
3. **Batching**: windows are sorted by length into right-padded batches, so padding is small and, the model being
   causal, never changes a real token's output.

Each window (``Chunk``) carries the map from its rows back to the input bases, in forward-strand coordinates, so
outputs of the reverse-complement strand land on the same bases as the forward ones, under every framing and mode.
Pooling happens once, in torch, on the model's device (``Pooler``), and covers each framed token exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hyenadna.pooling import POOLINGS, masked_pool
from hyenadna.tokenizer import BatchEncoding, CharacterTokenizer, pad_batch, reverse_complement_ids, sequence_label
from hyenadna.utils.memory import available_bytes, trim_if_grown

CONTEXT_MODES = ("window", "truncate", "error")


@dataclass(frozen=True)
class ContextPolicy:
    """How sequences meet a context of ``length`` tokens. ``overlap``: tokens of left context each window after the
    first re-reads from the one before (not output again); 0 starts each window cold."""

    length: int
    mode: str = "window"
    overlap: int = 0

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"context length {self.length}: must be >= 1")
        if self.mode not in CONTEXT_MODES:
            raise ValueError(f"long_sequences={self.mode!r}: choose one of {CONTEXT_MODES}")
        if not 0 <= self.overlap < self.length:
            raise ValueError(f"overlap={self.overlap}: must be >= 0 and less than the context ({self.length})")


@dataclass
class Chunk:
    """One window of one strand of one sequence, as fed to the model."""

    seq: int  # index of the input sequence
    strand: int  # 0: forward, 1: reverse complement
    ids: np.ndarray  # framed tokens of this window
    start: int  # framed position of ids[0]
    first_out: int  # rows before this are left context, output by an earlier window
    n_framed: int  # framed length of the whole strand
    n_bases: int  # bases of the (fitted) sequence
    prefix: int  # special tokens before the bases

    @property
    def is_last(self) -> bool:
        return self.start + len(self.ids) == self.n_framed

    def out_positions(self) -> np.ndarray:
        """Framed positions of the rows this window outputs."""
        return np.arange(self.start + self.first_out, self.start + len(self.ids))

    def bases_out(self) -> int:
        """How many input bases this window outputs (not its left context, not framing tokens)."""
        return int((self.base_index() >= 0).sum())

    def base_index(self) -> np.ndarray:
        """For each output row, the forward-strand index of its base, or -1 for a special token."""
        b = self.out_positions() - self.prefix
        b = np.where((b >= 0) & (b < self.n_bases), b, -1)
        if self.strand == 1:
            b = np.where(b >= 0, self.n_bases - 1 - b, -1)
        return b


def fit_bases(
    bases: np.ndarray, tokenizer: CharacterTokenizer, policy: ContextPolicy, index: int = 0, name: str | None = None
) -> np.ndarray:
    """The bases that will be framed: all of them (``window``, or when they fit), the first ones (``truncate``), or an
    error naming the sequence (``error``)."""
    specials = len(tokenizer.prefix) + len(tokenizer.suffix)
    if len(bases) + specials <= policy.length or policy.mode == "window":
        return bases
    label = sequence_label(index, name)
    if policy.mode == "truncate":
        if policy.length <= specials:
            raise ValueError(f"{label}: a context of {policy.length} leaves no room for bases beside the framing")
        return bases[: policy.length - specials]
    raise ValueError(
        f"{label} has {len(bases) + specials} tokens, more than the context of {policy.length}; use "
        "long_sequences 'window' (CLI: --long-sequences window) or 'truncate'"
    )


def window_spans(n: int, policy: ContextPolicy) -> list[tuple[int, int, int]]:
    """(start, end, first_out) windows over ``n`` framed tokens. Every position is output by exactly one window; each
    window after the first re-reads ``overlap`` tokens of left context, and the last one ends at ``n`` with as much
    context as fits."""
    size = policy.length
    if n <= size:
        return [(0, n, 0)]
    spans, done = [(0, size, 0)], size
    while done < n:
        end = min(n, done + size - policy.overlap)
        start = max(0, end - size)
        spans.append((start, end, done - start))
        done = end
    return spans


def plan_chunks(
    bases: Sequence[np.ndarray],
    tokenizer: CharacterTokenizer,
    policy: ContextPolicy,
    strands: int = 1,
    names: Sequence[str] | None = None,
    start_index: int = 0,
) -> list[Chunk]:
    """Every window of every strand of every sequence, in input order."""
    if strands not in (1, 2):
        raise ValueError(f"strands={strands}: 1 (forward) or 2 (forward and reverse complement)")
    prefix = len(tokenizer.prefix)
    chunks = []
    for i, b in enumerate(bases):
        fitted = fit_bases(b, tokenizer, policy, start_index + i, names[i] if names is not None else None)
        for s in range(strands):
            framed = tokenizer.frame(fitted if s == 0 else reverse_complement_ids(fitted))
            for start, end, first_out in window_spans(len(framed), policy):
                chunks.append(Chunk(i, s, framed[start:end], start, first_out, len(framed), len(fitted), prefix))
    return chunks


def iter_batches(
    chunks: Sequence[Chunk], batch_size: int, device: torch.device | str = "cpu"
) -> Iterator[tuple[list[Chunk], BatchEncoding]]:
    """Length-bucketed, right-padded batches: sorting by length keeps padding (and wasted FFT work) small."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    order = sorted(range(len(chunks)), key=lambda j: len(chunks[j].ids))
    for k in range(0, len(order), batch_size):
        trim_if_grown()  # each length leaves its own holes in the heap (utils/memory.py)
        batch = [chunks[j] for j in order[k : k + batch_size]]
        yield batch, pad_batch([c.ids for c in batch]).to(device)


def output_mask(batch: Sequence[Chunk], seqlen: int, device: torch.device | str, context: bool = False) -> Tensor:
    """(B, L) bool: the rows each window outputs (not its left context, not padding); with ``context``, its left
    context too (every real row)."""
    pos = torch.arange(seqlen, device=device)
    first = torch.tensor([0 if context else c.first_out for c in batch], device=device)
    last = torch.tensor([len(c.ids) for c in batch], device=device)
    return (pos >= first[:, None]) & (pos < last[:, None])


class Pooler:
    """Mask-aware pooling over all windows of each (sequence, strand), accumulated on the model's device."""

    def __init__(self, n: int, strands: int, dim: int, how: str, device: torch.device | str):
        if how not in POOLINGS:
            raise ValueError(f"pooling={how!r}: choose None (per token) or one of {POOLINGS}")
        self.n, self.strands, self.how = n, strands, how
        fill = float("-inf") if how == "max" else 0.0
        self.acc = torch.full((n * strands, dim), fill, dtype=torch.float32, device=device)
        self.count = torch.zeros(n * strands, dtype=torch.float32, device=device)

    def add(self, hidden: Tensor, batch: Sequence[Chunk]) -> None:
        hidden = hidden.float()
        slot = torch.tensor([c.seq * self.strands + c.strand for c in batch], device=hidden.device)
        # "last" is the last real row, which masked_pool finds from a mask that starts at row 0
        mask = output_mask(batch, hidden.shape[1], hidden.device, context=self.how == "last")
        pooled = masked_pool(hidden, mask, self.how)
        if self.how == "mean":  # windows weigh by the rows they output
            count = mask.sum(1).float()
            self.acc.index_add_(0, slot, pooled * count[:, None])
            self.count.index_add_(0, slot, count)
        elif self.how == "max":
            self.acc.scatter_reduce_(0, slot[:, None].expand_as(pooled), pooled, "amax")
        else:
            last = torch.tensor([c.is_last for c in batch], device=hidden.device)
            self.acc.index_copy_(0, slot[last], pooled[last])

    def result(self) -> Tensor:
        """(N, D): per sequence, averaged over the strands."""
        out = self.acc / self.count.clamp_min(1)[:, None] if self.how == "mean" else self.acc
        return out.view(self.n, self.strands, out.shape[-1]).mean(1)  # the width named: no sequences give (0, D)


def per_base_memory_error(
    lengths: Sequence[int], dim: int, outputs: int, ragged: bool, names: Sequence[str] | None, force: bool = False
) -> MemoryError | None:
    """The error for per-base outputs (``outputs`` arrays of ``dim`` float32 values a base) that do not fit in the
    memory available, raised before any work: a process that starts them anyway is killed part-way by the OOM
    killer, or numpy fails deep inside. None where they fit (or where the available memory is unknown), unless
    ``force`` (the allocation itself failed)."""
    if not len(lengths):
        return None
    longest = int(np.argmax(lengths))
    per_base = 4 * dim * outputs
    ragged_need = per_base * int(sum(lengths))
    need = ragged_need if ragged else per_base * len(lengths) * int(lengths[longest])
    have = available_bytes("cpu")
    if not force and (have is None or need <= have):
        return None
    name = f"'{names[longest]}'" if names is not None else f"sequence {longest}"
    layers = f" ({outputs} layers)" if outputs > 1 else ""
    available = f"{have / 1e9:.1f} GB is available" if have is not None else "the system refused them"
    fixes = ["pool them (pooling='mean')", "fill arrays on disk (allocate=, with numpy's open_memmap)"]
    if len(lengths) == 1:
        what = f"{name} ({int(lengths[0]):,} bases){layers} take {need / 1e9:.1f} GB"
        fixes.append("embed it in shorter pieces")
    else:
        total = f"{len(lengths)} sequences ({int(sum(lengths)):,} bases){layers}"
        where = f"the longest, {name}, has {int(lengths[longest]):,}"
        if ragged:
            what = f"{total} take {need / 1e9:.1f} GB ({where})"
        else:
            what = f"{total} take {need / 1e9:.1f} GB as one array padded to the longest ({where})"
            if have is None or ragged_need <= have:
                fixes.insert(0, f"pass ragged=True for one array a sequence ({ragged_need / 1e9:.1f} GB)")
        fixes.append("embed fewer or shorter sequences at a time")
    return MemoryError(f"per-base embeddings of {what}, and {available}: {', '.join(fixes[:-1])}, or {fixes[-1]}")


class PerBaseCollector:
    """Per-token outputs on the host, one row per input base (specials dropped), strands averaged base by base: one
    (N, L_max, D) array, zero after each sequence's end, or with ``ragged`` a list of one (L_i, D) array a sequence,
    whose memory follows the bases given, not N times the longest."""

    def __init__(
        self,
        lengths: Sequence[int],
        strands: int,
        dim: int,
        dtype=np.float32,
        ragged: bool = False,
        out: np.ndarray | None = None,
    ):
        self.strands = strands
        if out is not None:  # given, zeroed (a memory-mapped file, for outputs larger than the memory)
            self.out = out
        elif ragged:
            self.out: np.ndarray | list[np.ndarray] = [np.zeros((n, dim), dtype=dtype) for n in lengths]
        else:
            self.out = np.zeros((len(lengths), int(max(lengths, default=0)), dim), dtype=dtype)

    def add(self, values: Tensor, batch: Sequence[Chunk]) -> None:
        """values: (B, L, D) or (B, L) model outputs of ``batch``."""
        values = values.float()
        scale = 1.0 / self.strands
        for r, c in enumerate(batch):
            b = c.base_index()
            keep = b >= 0
            rows = values[r, c.first_out : len(c.ids)][torch.from_numpy(keep).to(values.device)]
            self.out[c.seq][b[keep]] += scale * rows.cpu().numpy()
