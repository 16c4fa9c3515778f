"""Weights loaded in bf16/fp16 and autocast precisions: every execution path runs, the FFT convolution and the
residual stream stay fp32, and results stay near the fp32 reference."""

from __future__ import annotations

import pytest
import torch

from hyenadna import HyenaConfig, HyenaDNA, HyenaDNAConfig, HyenaDNALMHeadModel
from hyenadna.ops.execution import ExecutionOptions
from hyenadna.utils.precision import autocast, grad_scaler, parse_dtype
from tests.conftest import assert_close

CONFIG = HyenaConfig(d_model=32, n_layer=2, d_inner=64, l_max=130)
TOLERANCE = {torch.bfloat16: 0.08, torch.float16: 0.01}


@pytest.fixture(scope="module")
def fp32_model() -> HyenaDNALMHeadModel:
    torch.manual_seed(0)
    return HyenaDNALMHeadModel(CONFIG).eval()


def _copy(model: HyenaDNALMHeadModel, dtype: torch.dtype) -> HyenaDNALMHeadModel:
    other = HyenaDNALMHeadModel(CONFIG)
    other.load_state_dict(model.state_dict())
    return other.to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_weights_run_every_inference_path(fp32_model, dtype):
    x = torch.randint(7, 11, (3, 120))
    model = _copy(fp32_model, dtype)
    with torch.no_grad():
        expected = fp32_model.backbone(x)
        outs = {
            "default": model.backbone(x),
            "low_memory": model.backbone(x, low_memory=True),
            "batched": _batched(model, x),
        }
        model.backbone.execution = ExecutionOptions(per_sequence_min_length=0)  # 120 tokens would run batched
        outs["per_sequence"] = model.backbone(x)
        model.use_reference_path(True)
        outs["reference"] = model.backbone(x)
        model.use_reference_path(False)
    for path, out in outs.items():
        assert torch.isfinite(out.float()).all(), path
        err = (out.float() - expected).abs().max().item()
        assert err < TOLERANCE[dtype] * expected.abs().max().item(), (path, err)


def _batched(model: HyenaDNALMHeadModel, x: torch.Tensor) -> torch.Tensor:
    """The batched (GPU) path, forced on the CPU through each operator."""
    backbone = model.backbone
    residual, h = None, backbone.embeddings(x)
    for layer in backbone.layers:
        h, residual = layer(h, residual, "batched", ExecutionOptions())
    residual = h.float() + residual
    return backbone.ln_f(residual.to(backbone.ln_f.weight.dtype))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_weights_train(fp32_model, dtype):
    model = _copy(fp32_model, dtype).train()
    x = torch.randint(7, 11, (2, 65))
    loss = model(x[:, :-1], labels=x[:, 1:]).loss
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad.float()).all() for p in model.parameters())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_precisions_keep_the_residual_stream_fp32(fp32_model, precision):
    x = torch.randint(7, 11, (2, 100))
    with torch.no_grad():
        expected = fp32_model.backbone(x)
        with autocast("cpu", precision):
            out = fp32_model.backbone(x)
    assert out.dtype == torch.float32  # the last LayerNorm reads the fp32 residual stream
    assert_close(out, expected, atol=0.1, rtol=0.1)


def test_sdk_dtype_and_precision(tmp_path):
    model = HyenaDNA(HyenaDNAConfig(dtype="bfloat16", pooling="mean"))
    assert {p.dtype for p in model.model.parameters()} == {torch.bfloat16}
    emb = model.get_embeddings(model.process_data("ACGT" * 100))
    reference = HyenaDNA(HyenaDNAConfig(pooling="mean")).get_embeddings("ACGT" * 100)
    assert emb.dtype == reference.dtype and abs(emb - reference).max() < 0.1 * abs(reference).max()
    fp16 = HyenaDNA(HyenaDNAConfig(precision="fp16", pooling="mean")).get_embeddings("ACGT" * 100)
    assert abs(fp16 - reference).max() < 0.02 * abs(reference).max()
    with pytest.raises(ValueError, match="precision='int8'"):
        HyenaDNAConfig(precision="int8")
    with pytest.raises(ValueError, match="dtype='half'"):
        HyenaDNAConfig(dtype="half")
    # autocast to one half type over weights in the other failed inside torch ("Unexpected floating ScalarType")
    for precision, dtype, other in (("fp16", "bfloat16", "bf16"), ("bf16", "float16", "fp16")):
        with pytest.raises(ValueError, match=f"cannot run {dtype} weights; choose precision='{other}', or float32"):
            HyenaDNAConfig(precision=precision, dtype=dtype)
    HyenaDNAConfig(precision="bf16", dtype="bfloat16")
    HyenaDNAConfig(precision="fp16", dtype="float32")


def test_dtype_names_and_grad_scaler():
    assert parse_dtype("bfloat16") is torch.bfloat16 and parse_dtype("fp16") is torch.float16
    assert parse_dtype(torch.float32) is torch.float32
    with pytest.raises(ValueError):
        parse_dtype(torch.int8)
    assert not grad_scaler("cpu", "fp16").is_enabled()  # loss scaling is for fp16 on a GPU only
    assert not grad_scaler("cpu", "bf16").is_enabled()
