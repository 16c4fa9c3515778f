"""Likelihoods under the language model, through the one data path: the building block of ``score`` and ``vep``.

A framed position t >= 1 is scored as log P(token_t | the tokens before it in its window). Windows come from
``hyenadna.data.pipeline``; scoring always gives each window after the first at least one token of left context, so
every position but the first is scored, including each window's first output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hyenadna.data.pipeline import Chunk, ContextPolicy, Pooler, iter_batches, plan_chunks
from hyenadna.models.hyena_dna import HyenaDNALMHeadModel
from hyenadna.tokenizer import PAD, UNK, CharacterTokenizer, N


@dataclass
class SequenceScore:
    log_likelihood: float  # natural log, summed over scored positions
    n_scored: int
    n_skipped: int = 0  # targets not scored because they are N (or [PAD] / [UNK]): the model cannot predict a gap

    @property
    def nll_per_base(self) -> float:
        """NaN where no base was scored (one base, or all N): no evidence is not a perfect fit (perplexity 1)."""
        return -self.log_likelihood / self.n_scored if self.n_scored else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_per_base)


def scoring_policy(context: int, mode: str = "window", overlap: int = 0) -> ContextPolicy:
    """The context policy for scoring: at least one token of overlap, so no window's first output goes unscored."""
    return ContextPolicy(context, mode, max(overlap, 1) if context > 1 else 0)


@torch.no_grad()
def log_probs_and_embeddings(
    model: HyenaDNALMHeadModel,
    chunks: Sequence[Chunk],
    n: int,
    strands: int = 1,
    batch_size: int = 8,
    pooling: str | None = None,
    skip_tokens: tuple[int, ...] = (),
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[list[np.ndarray]], torch.Tensor | None]:
    """Per (sequence, strand), the log-probability of each framed token given its left context (NaN at position 0,
    which nothing predicts, and at targets in ``skip_tokens``), and, with ``pooling``, the pooled last hidden states
    from the same forward passes. ``on_batch(bases)``: after each batch, the input bases it covered (forward strand)."""
    device = next(model.parameters()).device
    out: list[list[np.ndarray | None]] = [[None] * strands for _ in range(n)]
    for c in chunks:
        if out[c.seq][c.strand] is None:
            out[c.seq][c.strand] = np.full(c.n_framed, np.nan)
    pooler = Pooler(n, strands, model.config.d_model, pooling, device) if pooling else None
    was_training = model.training
    model.eval()
    for batch, enc in iter_batches(chunks, batch_size, device):
        result = model(enc.input_ids)
        logp = torch.log_softmax(result.logits.float(), dim=-1)
        token_ll = logp[:, :-1].gather(-1, enc.input_ids[:, 1:, None]).squeeze(-1).cpu().numpy()
        for r, c in enumerate(batch):
            lo = max(c.first_out, 1)  # row j is predicted by the logits of row j - 1
            values = token_ll[r, lo - 1 : len(c.ids) - 1]
            if skip_tokens:
                values = np.where(np.isin(c.ids[lo:], skip_tokens), np.nan, values)
            out[c.seq][c.strand][c.start + lo : c.start + len(c.ids)] = values
        if pooler is not None:
            pooler.add(result.hidden_states, batch)
        if on_batch is not None:
            on_batch(sum(c.bases_out() for c in batch if c.strand == 0))
    model.train(was_training)
    return out, (pooler.result() if pooler is not None else None)


def score_bases(
    model: HyenaDNALMHeadModel,
    bases: Sequence[np.ndarray],
    tokenizer: CharacterTokenizer,
    policy: ContextPolicy,
    batch_size: int = 8,
    names: Sequence[str] | None = None,
    start_index: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> list[SequenceScore]:
    """Summed log-likelihood of each sequence's framed tokens (all but the first), forward strand. Targets that are
    N (or [PAD] / [UNK]) are left out of the sum and the count, and counted in ``n_skipped``: an N says nothing is
    known there, and its probability is not a property of the DNA."""
    chunks = plan_chunks(bases, tokenizer, policy, 1, names, start_index)
    lps, _ = log_probs_and_embeddings(
        model, chunks, len(bases), 1, batch_size, skip_tokens=(N, PAD, UNK), on_batch=on_batch
    )
    scored = [int(np.isfinite(lp[0]).sum()) for lp in lps]
    return [SequenceScore(float(np.nansum(lp[0])), k, len(lp[0]) - 1 - k) for lp, k in zip(lps, scored, strict=True)]
