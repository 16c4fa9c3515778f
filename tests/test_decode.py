"""Decoding from an inference cache (a token at a time, as generation does) against the whole-sequence forward and the
reference fixtures, and generation with and without the cache."""

from __future__ import annotations

import re

import pytest
import torch

from hyenadna import load_model
from hyenadna.generate import context_starts, generate
from hyenadna.hub import BUNDLED_DIR, BUNDLED_MODEL
from hyenadna.models.config import HyenaConfig
from hyenadna.models.hyena_dna import HyenaDNALMHeadModel
from hyenadna.tokenizer import CharacterTokenizer
from tests.conftest import CASES, FIXTURES, MODELS, assert_close, load_io


def decode(model: HyenaDNALMHeadModel, ids: torch.Tensor, prompt: int, **kw) -> torch.Tensor:
    """The hidden states of ``ids`` from a cache: the first ``prompt`` tokens at once, then one at a time."""
    cache = model.allocate_inference_cache(ids.shape[0], **kw)
    with torch.no_grad():
        outs = [model.backbone(ids[:, :prompt], cache=cache)]
        outs += [model.backbone(ids[:, t : t + 1], cache=cache) for t in range(prompt, ids.shape[1])]
    assert cache.length == ids.shape[1]
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("name", MODELS)
def test_decoding_reproduces_the_reference_fixtures(name):
    """Every fixture case, its first half (at least one token) as the prompt and the rest a token at a time, in
    blocks of 100 tokens (the long cases cross 6-21 of them): the reference implementation's hidden states to float32
    precision."""
    model = load_model(FIXTURES / name)
    io = load_io(name)
    for case in CASES:
        ids = io[f"{case}.input_ids"]
        decoded = decode(model, ids, max(1, ids.shape[1] // 2), block=100)
        assert_close(decoded, io[f"{case}.hidden_states"], atol=1e-5, rtol=1e-5)


def small_model(seed: int = 0, **kw) -> HyenaDNALMHeadModel:
    """A random model whose biases are not zero (the reference init zeroes them), so each term is exercised."""
    torch.manual_seed(seed)
    model = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=64, **kw)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("block", [1, 5, 64])
@pytest.mark.parametrize("prompt", [1, 2, 3, 17, 63, 64])
def test_decoding_equals_the_reference_path_for_any_prompt_length(prompt, block):
    """Prompts shorter than the short conv's taps (1, 2), longer, and the whole context; three sequences at once;
    decoding blocks of one token, of a few and of the whole context."""
    model = small_model()
    ids = torch.randint(7, 11, (3, 64))
    with torch.no_grad():
        reference = model.use_reference_path(True).backbone(ids)
    assert_close(decode(model.use_reference_path(False), ids, prompt, block=block), reference)


def test_decoding_gives_every_layer_asked_for():
    model = small_model(short_filter_order=4)
    ids = torch.randint(7, 11, (2, 40))
    with torch.no_grad():
        full = model.backbone(ids, layers=[2, 0, -1])
        cache = model.allocate_inference_cache(2)
        head = model.backbone(ids[:, :10], layers=[2, 0, -1], cache=cache)
        steps = [model.backbone(ids[:, t : t + 1], layers=[2, 0, -1], cache=cache) for t in range(10, 40)]
        logits = model(ids[:, :1], cache=model.allocate_inference_cache(2)).logits
    for k in range(3):
        assert_close(torch.cat([head[k]] + [s[k] for s in steps], dim=1), full[k])
    assert_close(logits, model(ids[:, :1]).logits)


def test_decoding_several_tokens_after_the_prompt():
    model = small_model()
    ids = torch.randint(7, 11, (1, 50))
    cache = model.allocate_inference_cache(1)
    with torch.no_grad():
        parts = [model.backbone(ids[:, :20], cache=cache), model.backbone(ids[:, 20:50], cache=cache)]
        assert_close(torch.cat(parts, dim=1), model.backbone(ids))


def test_the_bundled_model_decodes_its_whole_context():
    model = load_model(BUNDLED_DIR / BUNDLED_MODEL)
    ids = torch.randint(7, 11, (2, model.config.l_max), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model.backbone(ids)
    assert_close(decode(model, ids, 300), full, atol=1e-5, rtol=1e-5)


def test_the_cache_says_what_is_wrong():
    model = small_model()
    cache = model.allocate_inference_cache(2, capacity=10)
    with torch.no_grad():
        model(torch.randint(7, 11, (2, 8)), cache=cache)
        with pytest.raises(ValueError, match="holds 10 tokens and has 8: 3 more do not fit"):
            model(torch.randint(7, 11, (2, 3)), cache=cache)
        with pytest.raises(ValueError, match="holds 2 sequences, and 3 were given"):
            model(torch.randint(7, 11, (3, 1)), cache=cache)
        model.train()
        with pytest.raises(ValueError, match="eval mode"):
            model(torch.randint(7, 11, (2, 1)), cache=cache)
    with pytest.raises(ValueError, match="1 to l_max = 64"):
        model.allocate_inference_cache(1, capacity=65)
    with pytest.raises(ValueError, match="at least one token"):
        model.allocate_inference_cache(1, block=0)


@pytest.mark.parametrize("prompt_length, room", [(5, 64), (1, 8), (100, 64), (3, 1), (64, 64)])
def test_windows_fit_and_keep_three_quarters_when_they_move(prompt_length, room):
    length = 300
    starts = list(context_starts(prompt_length, length, room))
    assert len(starts) == length
    keep = max(1, room - room // 4)
    for i, start in enumerate(starts):
        held = prompt_length + i - start  # bases the window holds when predicting base prompt_length + i
        assert 1 <= held <= room
        if i and start != starts[i - 1]:
            assert held == keep
    assert starts[0] == max(0, prompt_length - room)
    assert starts == sorted(starts)


@pytest.mark.parametrize("framing", ["none", "cls_sep"])
def test_generation_with_the_cache_equals_rerunning_each_window(framing):
    """200 bases from a 64-token model move the window several times; the cached and the plain path sample the same
    bases from the same seed."""
    model = small_model()
    tokenizer = CharacterTokenizer(framing=framing)
    args = (model, tokenizer, "ACGTTGCA", 200)
    cached = generate(*args, num_samples=2, seed=5, cache=True)
    plain = generate(*args, num_samples=2, seed=5, cache=False)
    assert cached == plain
    assert all(len(s) == 200 for s in cached)
    assert cached[0] != cached[1]


def test_generation_from_a_prompt_longer_than_the_context():
    model = small_model()
    tokenizer = CharacterTokenizer()
    prompt = "ACGTTGCAAC" * 20
    assert generate(model, tokenizer, prompt, 90, seed=1) == generate(model, tokenizer, prompt, 90, seed=1, cache=False)


def test_bad_sampling_arguments_are_named_before_sampling():
    """temperature=nan reached torch.multinomial (a tensor "contains either inf, nan"), length=2.5 a range()."""
    model, tokenizer = small_model(), CharacterTokenizer()
    for kw, error, message in (
        ({"temperature": float("nan")}, ValueError, "temperature=nan: must be > 0 and finite"),
        ({"temperature": float("inf")}, ValueError, "temperature=inf: must be > 0 and finite"),
        ({"length": 2.5}, TypeError, "length=2.5: must be a whole number"),
        ({"top_k": 0}, ValueError, "top_k must be >= 1"),
        ({"num_samples": 0}, ValueError, "num_samples must be >= 1"),
    ):
        with pytest.raises(error, match=re.escape(message)):
            generate(model, tokenizer, "ACGT", **{"length": 5, **kw})


def test_the_sdk_generates_with_the_configured_precision(monkeypatch):
    """``HyenaDNA.generate`` (which the CLI calls) runs under the configured autocast; before, ``hyenadna generate
    --precision bf16`` ran in fp32."""
    import hyenadna.generate as generation
    from hyenadna import HyenaDNA, HyenaDNAConfig

    seen = []
    plain = generation.generate

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return plain(*args, **kwargs)

    monkeypatch.setattr(generation, "generate", spy)
    for precision in ("fp32", "bf16"):
        samples = HyenaDNA(HyenaDNAConfig(precision=precision, progress=False)).generate("ACGTTGCA", 20, 2, seed=1)
        assert [len(s) for s in samples] == [20, 20] and set("".join(samples)) <= set("ACGT")
    assert seen == [False, torch.bfloat16]


def test_decoding_in_bf16_weights_and_with_autograd_on():
    """Weights loaded in bf16 decode close to their own whole-sequence forward; with autograd on, decoding runs
    without it (the history is written in place)."""
    model = small_model().to(torch.bfloat16)
    ids = torch.randint(7, 11, (2, 40))
    with torch.no_grad():
        full = model.backbone(ids).float()
    cache = model.allocate_inference_cache(2)
    outs = [model.backbone(ids[:, :5], cache=cache)] + [
        model.backbone(ids[:, t : t + 1], cache=cache) for t in range(5, 40)
    ]
    decoded = torch.cat(outs, dim=1)
    assert not decoded.requires_grad
    assert_close(decoded.float(), full, atol=0.05, rtol=0.02)


def test_nucleus_sampling_keeps_the_likeliest_bases_up_to_p():
    """A nucleus below the likeliest base's probability is greedy decoding (top_k=1); p = 1 changes nothing."""
    from hyenadna.generate import _outside_nucleus

    probs = torch.tensor([[0.1, 0.5, 0.15, 0.25], [0.3, 0.2, 0.4, 0.1]])
    assert _outside_nucleus(probs, 0.5).tolist() == [[True, False, True, True], [False, True, False, True]]
    assert _outside_nucleus(probs, 0.75).tolist() == [[True, False, True, False], [False, False, False, True]]
    assert not _outside_nucleus(probs, 1.0).any()
    model, tokenizer = small_model(), CharacterTokenizer()
    args = (model, tokenizer, "ACGTTGCA", 60)
    assert generate(*args, num_samples=2, seed=2, top_p=1e-6) == generate(*args, num_samples=2, seed=2, top_k=1)
    assert generate(*args, num_samples=2, seed=2, top_p=1.0) == generate(*args, num_samples=2, seed=2)
    with pytest.raises(ValueError, match="top_p"):
        generate(*args, top_p=0.0)
