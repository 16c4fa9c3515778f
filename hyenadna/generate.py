"""Sampling DNA continuations of a prompt from the language model."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

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
    cache: bool = True,
    top_p: float | None = None,
) -> list[str]:
    """``num_samples`` continuations of ``length`` bases. Only nucleotides are sampled (A/C/G/T, and N if
    ``allow_n``). The context is the framing's prefix (e.g. [CLS]) and then the bases since the window's start
    (``context_starts``): every base the window holds while it fits in l_max, then the window moves on and keeps
    the last three quarters of it. ``top_k`` keeps the k likeliest bases, ``top_p`` the fewest likeliest whose
    probabilities sum to at least p (nucleus sampling), after the temperature.

    With ``cache`` (default) each base costs one token's pass through the model from an ``InferenceCache``
    (``ops/hyena.py: hyena_decode``), where rerunning the window costs O(t D^2) at t tokens of context
    (``benchmarks/generate_speed.py``); without it each base reruns the window, the plain path the cached one is
    tested against."""
    if not temperature > 0 or temperature == float("inf"):  # NaN fails every comparison
        raise ValueError(f"temperature={temperature}: must be > 0 and finite")
    for name, value, least in (("length", length, 0), ("num_samples", num_samples, 1), ("top_k", top_k, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise TypeError(f"{name}={value!r}: must be a whole number")
        if value is not None and value < least:
            raise ValueError(f"{name} must be >= {least}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    device = next(model.parameters()).device
    prompt_ids = torch.from_numpy(tokenizer.encode_bases(prompt, name="the prompt").astype("int64"))
    if len(prompt_ids) == 0:
        raise ValueError("the prompt needs at least one base")
    ids = prompt_ids.repeat(num_samples, 1).to(device)
    prefix = torch.tensor(tokenizer.prefix, dtype=torch.int64, device=device).repeat(num_samples, 1)
    room = model.config.l_max - prefix.shape[1]
    if room < 1:
        raise ValueError(f"the model's context ({model.config.l_max}) leaves no room after the framing's prefix")
    allowed = torch.zeros(model.config.padded_vocab_size, dtype=torch.bool, device=device)
    allowed[A : (N if allow_n else T) + 1] = True
    gen = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    state, start = None, None
    for new_start in context_starts(len(prompt_ids), length, room):
        if cache and new_start == start:  # the window holds the last base: it alone goes through the cache
            logits = model(ids[:, -1:], cache=state).logits[:, -1]
        else:  # the whole window, into a new cache when there is one
            state = model.allocate_inference_cache(num_samples) if cache else None
            logits = model(torch.cat([prefix, ids[:, new_start:]], dim=1), cache=state).logits[:, -1]
        start = new_start
        logits = logits.float().masked_fill(~allowed, float("-inf")) / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, int(allowed.sum())), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if top_p is not None:
            logits = logits.masked_fill(_outside_nucleus(torch.softmax(logits, -1), top_p), float("-inf"))
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
        ids = torch.cat([ids, nxt], dim=1)
        if progress is not None:
            progress(num_samples)
    return [tokenizer.decode(row[len(prompt_ids) :]) for row in ids.cpu()]


def _outside_nucleus(probs: Tensor, top_p: float) -> Tensor:
    """True for the bases outside the fewest likeliest whose probabilities sum to at least ``top_p``."""
    ranked, order = probs.sort(dim=-1, descending=True)
    outside = ranked.cumsum(-1) - ranked >= top_p  # the mass before a base already reaches top_p
    return outside.scatter(-1, order, outside)


def context_starts(prompt_length: int, length: int, room: int) -> Iterator[int]:
    """For each base to generate, the index of the first base its window holds, of room bases at most. The window
    grows to ``room`` bases, then starts again on the last three quarters of them: moving it a base at a time would
    change every cached state, so each base would cost a whole window again."""
    keep = max(1, room - room // 4)
    start = max(0, prompt_length - room)
    for n in range(prompt_length, prompt_length + length):
        if n - start > room:
            start = n - keep
        yield start
