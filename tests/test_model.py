from __future__ import annotations

import math

import pytest
import torch

from hyenadna import PUBLISHED_CONFIGS, HyenaConfig, HyenaDNALMHeadModel, load_model
from tests.conftest import FIXTURES

GUIDE_PARAMS = {
    "hyenadna-tiny-1k-seqlen": 436_096,
    "hyenadna-tiny-1k-seqlen-d256": 1_641_088,
    "hyenadna-tiny-16k-seqlen-d128": 436_096,
    "hyenadna-small-32k-seqlen": 3_277_568,
    "hyenadna-medium-160k-seqlen": 6_550_528,
}


@pytest.mark.parametrize("name", sorted(GUIDE_PARAMS))
def test_published_shapes_have_published_parameter_counts(name):
    assert HyenaDNALMHeadModel(PUBLISHED_CONFIGS[name]).num_parameters() == GUIDE_PARAMS[name]


def small_model(**kw) -> HyenaDNALMHeadModel:
    torch.manual_seed(0)
    return HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=64, **kw))


def test_dropout_only_in_training():
    model = small_model()
    ids = torch.randint(7, 11, (2, 30))
    model.train()
    a, b = model(ids).logits, model(ids).logits
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(ids).logits, model(ids).logits)


def test_causal():
    model = small_model().eval()
    ids = torch.randint(7, 11, (1, 50))
    changed = ids.clone()
    changed[0, 30:] = 11
    with torch.no_grad():
        a, b = model.backbone(ids), model.backbone(changed)
    assert torch.allclose(a[:, :30], b[:, :30], atol=1e-5)
    assert not torch.allclose(a[:, 30:], b[:, 30:], atol=1e-3)


def test_longer_than_l_max_runs_and_stays_causal():
    model = small_model().eval()
    ids = torch.randint(7, 11, (1, 150))  # l_max is 64
    with torch.no_grad():
        long = model.backbone(ids)
        prefix = model.backbone(ids[:, :64])
    assert long.shape == (1, 150, 16) and torch.isfinite(long).all()
    assert torch.allclose(long[:, :64], prefix, atol=1e-5)


def test_reference_init():
    model = small_model()
    n_layer = model.config.n_layer
    for name, p in model.named_parameters():
        if name.endswith(("out_proj.weight", "fc2.weight")) and "implicit" not in name:
            assert p.std().item() == pytest.approx(0.02 / math.sqrt(2 * n_layer), rel=0.5)
        elif name.endswith("in_proj.bias"):
            assert torch.count_nonzero(p) == 0
        elif name.endswith("implicit_filter.1.freq"):
            assert torch.all(p == 10.0)


def test_loss_is_next_token_cross_entropy():
    model = load_model(FIXTURES / "tiny")
    ids = torch.randint(7, 11, (2, 20))
    out = model(ids[:, :-1], labels=ids[:, 1:])
    want = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 16), ids[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, want)
    # labels not shifted to match (torch's batch-size error from inside cross_entropy, after the forward pass)
    with pytest.raises(ValueError, match=r"labels must have the shape of input_ids \(2, 19\) .* got \(2, 18\)"):
        model(ids[:, :-1], labels=ids[:, 2:])


def test_from_pretrained_takes_auto_and_dtype_names():
    """device="auto" and dtype="bfloat16" (as HyenaDNAConfig spells them) crashed inside torch."""
    model = HyenaDNALMHeadModel.from_pretrained(FIXTURES / "tiny", device="auto", dtype="bfloat16")
    param = next(model.parameters())
    assert param.dtype == torch.bfloat16 and param.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="dtype='int8': choose 'float32', 'bfloat16' or 'float16'"):
        HyenaDNALMHeadModel.from_pretrained(FIXTURES / "tiny", dtype="int8")


def test_modulation_shift_is_a_config_field():
    base = load_model(FIXTURES / "tiny")
    shifted = load_model(FIXTURES / "tiny", modulation_shift=0.0)
    ids = torch.randint(7, 11, (1, 100))
    with torch.no_grad():
        assert (base.backbone(ids) - shifted.backbone(ids)).abs().max() > 0.05


def test_config_rejects_unsupported_order():
    with pytest.raises(ValueError, match="hyena_order"):
        HyenaConfig(hyena_order=3)


@pytest.mark.parametrize("block_tokens", [1, 100, 10_000])
@pytest.mark.parametrize("per_sequence_min_length", [0, 1_000])  # 40 tokens: per sequence, or batched
def test_micro_batched_inference_matches_one_batch(block_tokens, per_sequence_min_length, monkeypatch):
    """On the CPU both inference paths for short sequences run the stack in micro-batches of about block_tokens."""
    from hyenadna.ops.execution import ExecutionOptions

    model = small_model().eval()
    ids = torch.randint(7, 11, (7, 40))
    with torch.no_grad():
        whole = model.backbone(ids)  # the default block holds all 280 tokens
        model.backbone.execution = ExecutionOptions(
            block_tokens=block_tokens, per_sequence_min_length=per_sequence_min_length
        )  # 1, 2 or 7 rows per micro-batch
        calls, stack = [], model.backbone._forward_stack
        monkeypatch.setattr(
            model.backbone, "_forward_stack", lambda x, keep, path: calls.append((len(x), path)) or stack(x, keep, path)
        )
        blocked = model.backbone(ids)
        monkeypatch.undo()
        reference = model.use_reference_path().backbone(ids)
    rows = max(1, block_tokens // 40)
    path = "per_sequence" if per_sequence_min_length <= 40 else "batched"
    assert calls == [(min(rows, 7 - s), path) for s in range(0, 7, rows)]
    torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(blocked, reference, rtol=1e-5, atol=1e-5)


def test_input_ids_the_embedding_cannot_read_are_named():
    """torch said "not enough values to unpack", "Expected tensor for argument #1 'indices'" and "index out of range
    in self" (CUDA: a device-side assert); the model now names what is wrong with the ids."""
    model = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=1, d_inner=32, l_max=34)).eval()
    rows = model.backbone.embeddings.word_embeddings.num_embeddings
    cases = [
        (torch.tensor([7, 8, 9]), ValueError, r"must be \(batch, length\), got shape \(3,\)"),
        (torch.tensor([[7.0, 8.0]]), TypeError, "must hold integer token ids"),
        (torch.tensor([[7, rows]]), ValueError, f"hold {rows}, outside this model's token ids 0 to {rows - 1}"),
        (torch.tensor([[-1, 7]]), ValueError, "hold -1, outside"),
        ([[7, 8]], TypeError, "must be a tensor of token ids"),
    ]
    for ids, error, message in cases:
        with pytest.raises(error, match=message):
            model(ids)
    assert model(torch.tensor([[7, rows - 1]], dtype=torch.int32)).logits.shape == (1, 2, rows)
    assert model(torch.zeros(1, 0, dtype=torch.long)).logits.shape == (1, 0, rows)
