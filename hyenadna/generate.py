"""Sampling DNA continuations of a prompt from the language model."""

from __future__ import annotations

from collections.abc import Callable

import torch

from hyenadna.models.hyena_dna import HyenaDNALMHeadModel
from hyenadna.tokenizer import A, CharacterTokenizer, N, T


@torch.no_grad()
def generate(
    model: HyenaDNALMHeadModel,
    tokenizer: CharacterTokenizer,
    prompt: str,
    length: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    allow_n: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """``num_samples`` continuations of ``length`` bases. Only nucleotides are sampled (A/C/G/T, and N if
    ``allow_n``); the context is the framing's prefix (e.g. [CLS]) and then the last bases that fit in l_max. The
    filter has no state to carry, so each step reruns the window (with the filter spectrum cached)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if length < 0:
        raise ValueError("length must be >= 0")
    if num_samples < 1:
        raise ValueError("num_samples must be >= 1")
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1")
    device = next(model.parameters()).device
    prompt_ids = torch.from_numpy(tokenizer.encode_bases(prompt, name="the prompt").astype("int64"))
    if len(prompt_ids) == 0:
        raise ValueError("the prompt needs at least one base")
    ids = prompt_ids.repeat(num_samples, 1).to(device)
    prefix = torch.tensor(tokenizer.prefix, dtype=torch.int64, device=device).repeat(num_samples, 1)
    room = model.config.l_max - prefix.shape[1]
    allowed = torch.zeros(model.config.padded_vocab_size, dtype=torch.bool, device=device)
    allowed[A : (N if allow_n else T) + 1] = True
    gen = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    for _ in range(length):
        logits = model(torch.cat([prefix, ids[:, -room:]], dim=1)).logits[:, -1].float() / temperature
        logits = logits.masked_fill(~allowed, float("-inf"))
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, int(allowed.sum())), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
        ids = torch.cat([ids, nxt], dim=1)
        if progress is not None:
            progress(num_samples)
    return [tokenizer.decode(row[len(prompt_ids) :]) for row in ids.cpu()]
