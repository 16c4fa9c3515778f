"""Sequence likelihoods under the language model: the building block of ``score`` and ``vep``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hyenadna.models.hyena_dna import HyenaDNALMHeadModel
from hyenadna.tokenizer import CharacterTokenizer, pad_batch


@dataclass
class SequenceScore:
    log_likelihood: float  # natural log, summed over scored positions
    n_scored: int

    @property
    def nll_per_base(self) -> float:
        return -self.log_likelihood / max(1, self.n_scored)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_per_base)


@torch.no_grad()
def score_ids(
    model: HyenaDNALMHeadModel,
    sequences: list[np.ndarray],
    context: int,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> list[SequenceScore]:
    """Log-likelihood of each token given the tokens before it, in consecutive windows of ``context`` tokens (the
    first token of each window has no context and is not scored)."""
    chunks = []
    for i, ids in enumerate(sequences):
        for start in range(0, len(ids), context):
            chunk = ids[start : start + context]
            if len(chunk) > 1:
                chunks.append((i, chunk))
    ll = np.zeros(len(sequences))
    counts = np.zeros(len(sequences), dtype=np.int64)
    order = sorted(range(len(chunks)), key=lambda j: len(chunks[j][1]))
    was_training = model.training
    model.eval()
    for k in range(0, len(order), batch_size):
        batch = [chunks[j] for j in order[k : k + batch_size]]
        enc = pad_batch([c for _, c in batch]).to(device)
        logp = torch.log_softmax(model(enc.input_ids).logits.float(), dim=-1)
        target = enc.input_ids[:, 1:]
        token_ll = logp[:, :-1].gather(-1, target.unsqueeze(-1)).squeeze(-1)
        mask = enc.attention_mask[:, 1:]
        sums = (token_ll * mask).sum(1).cpu().numpy()
        for row, (i, c) in enumerate(batch):
            ll[i] += sums[row]
            counts[i] += len(c) - 1
    model.train(was_training)
    return [SequenceScore(float(a), int(b)) for a, b in zip(ll, counts, strict=True)]


def score_sequences(
    model: HyenaDNALMHeadModel,
    tokenizer: CharacterTokenizer,
    sequences: list[str],
    context: int | None = None,
    batch_size: int = 8,
) -> list[SequenceScore]:
    device = next(model.parameters()).device
    ids = [tokenizer.frame(tokenizer.encode_bases(s, i)) for i, s in enumerate(sequences)]
    return score_ids(model, ids, context or model.config.l_max, batch_size, device)
