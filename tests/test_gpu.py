"""CUDA against the CPU reference path. Every test here is marked ``gpu`` and skips where there is no CUDA device;
``benchmarks/gpu_check.py`` runs them first on a GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyenadna import HyenaDNALMHeadModel, load_model
from hyenadna.ops.execution import ExecutionOptions
from tests.conftest import CASES, FIXTURES, MODELS, PRETRAIN_SCRIPT, REPO, assert_close, load_io

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

SOURCES = ["tiny", "tiny/lightning_weights.ckpt", "tiny_ckpt_layer", "tiny_hf", "deep_long", "wide"]


def _ids(batch: int, length: int, seed: int = 3) -> torch.Tensor:
    return torch.randint(7, 12, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("source", SOURCES)
def test_cuda_parity_on_every_fixture(source):
    name = source.split("/")[0].removesuffix("_ckpt_layer").removesuffix("_hf")
    model = load_model(FIXTURES / source, device="cuda")
    io = load_io(name)
    with torch.no_grad():
        for case in CASES:
            out = model(io[f"{case}.input_ids"].cuda())
            assert_close(out.hidden_states.cpu(), io[f"{case}.hidden_states"], atol=1e-4, rtol=1e-4)
            if f"{case}.logits" in io:
                assert_close(out.logits.cpu(), io[f"{case}.logits"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_cuda_paths_match_the_cpu_reference(name):
    model = load_model(FIXTURES / name)
    ids = _ids(4, 300)
    with torch.no_grad():
        reference = model.use_reference_path(True).backbone(ids)
        model.use_reference_path(False).to("cuda")
        batched = model.backbone(ids.cuda()).cpu()
        low_memory = model.backbone(ids.cuda(), low_memory=True).cpu()
        residual, h = None, model.backbone.embeddings(ids.cuda())
        for layer in model.backbone.layers:  # the per-sequence path, forced through each operator
            h, residual = layer(h, residual, "per_sequence", ExecutionOptions())
        per_sequence = model.backbone.ln_f(h.float() + residual).cpu()
    for out in (batched, low_memory, per_sequence):
        assert_close(out, reference, atol=1e-4, rtol=1e-4)


def test_cuda_filter_cache_sees_edits_through_data():
    """The spectrum cache's check (one read of the GPU per operator) still sees a ``.data`` edit."""
    model = load_model(FIXTURES / "tiny", device="cuda")
    ids = _ids(2, 300).cuda()
    with torch.no_grad():
        before = model.backbone(ids)
        assert torch.equal(model.backbone(ids), before)  # from the cache
        for block in model.backbone.layers:
            block.mixer.filter_fn.modulation.deltas.data.mul_(1.5)
        edited = model.backbone(ids)
        expected = model.use_reference_path(True).backbone(ids)
    assert (edited - before).abs().max().item() > 1e-3
    assert_close(edited.cpu(), expected.cpu(), atol=1e-4, rtol=1e-4)


def test_cuda_decoding_reproduces_the_reference_fixtures():
    """Generation's inference cache on a GPU: each fixture's long case, its first half at once and the rest a token
    at a time, gives the reference implementation's hidden states; and generation samples the same bases with the
    cache as without it."""
    from hyenadna.generate import generate
    from hyenadna.tokenizer import CharacterTokenizer

    for name in MODELS:
        model = load_model(FIXTURES / name, device="cuda")
        ids = load_io(name)["long.input_ids"].cuda()
        cache = model.allocate_inference_cache(1)
        half = ids.shape[1] // 2
        with torch.no_grad():
            outs = [model.backbone(ids[:, :half], cache=cache)]
            outs += [model.backbone(ids[:, t : t + 1], cache=cache) for t in range(half, ids.shape[1])]
        assert_close(torch.cat(outs, dim=1).cpu(), load_io(name)["long.hidden_states"], atol=1e-4, rtol=1e-4)
    model = load_model(FIXTURES / "tiny", device="cuda")
    args = (model, CharacterTokenizer(), "ACGTTGCA", 300)
    assert generate(*args, num_samples=2, cache=True) == generate(*args, num_samples=2, cache=False)


def test_cuda_training_step_matches_the_cpu_reference():
    grads = {}
    for device, reference in (("cpu", True), ("cuda", False)):
        model = load_model(FIXTURES / "deep_long", device=device).use_reference_path(reference).train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        ids = _ids(3, 200).to(device)
        loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
        loss.backward()
        grads[device] = (loss.item(), {n: p.grad.cpu() for n, p in model.named_parameters()})
    assert grads["cuda"][0] == pytest.approx(grads["cpu"][0], abs=1e-5)
    for n, g in grads["cpu"][1].items():
        assert_close(grads["cuda"][1][n], g, atol=1e-4, rtol=1e-3)


def _cuda_step(shape, tokens: int, recompute: bool = False, chunked: bool = False) -> tuple[float, dict, int]:
    """One training step of a fresh seeded model of ``shape`` on ``tokens`` tokens: loss, gradients (on the CPU) and
    the CUDA peak memory."""
    torch.manual_seed(0)
    model = HyenaDNALMHeadModel(shape).cuda().train()
    model.gradient_checkpointing(recompute).sequence_chunked(chunked)
    ids = _ids(1, tokens + 1).cuda()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(1)
    loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
    loss.backward()
    torch.cuda.synchronize()
    grads = {n: p.grad.cpu() for n, p in model.named_parameters()}
    return loss.item(), grads, torch.cuda.max_memory_allocated()


def test_cuda_gradient_checkpointing_same_gradients_in_less_memory():
    """On a GPU, as on the CPU (test_execution.py): recomputing each block in the backward gives the gradients of
    the plain step, dropout masks included (checkpoint restores the CUDA generator too), and the step's peak memory
    falls: small-32k's shape, 4 blocks, at 32k tokens (on the CPU, one fp32 step: 3.6 -> 1.5 GB above the process's
    base; at 16k tokens only 1.9 -> 1.25 GB, as the filters and transforms of the context weigh more there)."""
    from hyenadna import PUBLISHED_CONFIGS

    shape = PUBLISHED_CONFIGS["hyenadna-small-32k-seqlen"]
    (loss, grads, peak), (loss_ck, grads_ck, peak_ck) = (_cuda_step(shape, 32768, r) for r in (False, True))
    assert loss_ck == pytest.approx(loss, abs=1e-6)
    for n, g in grads.items():  # CUDA's backward kernels may sum in another order from call to call
        assert_close(grads_ck[n], g, atol=1e-5, rtol=1e-4)
    assert peak_ck < 0.6 * peak, (peak_ck, peak)
    # the estimate pretraining and fine-tuning warn by (measured on the CPU) holds on the GPU too: never below the
    # step's peak, so that a step that will not fit is warned of, and not so far above it that one that fits is
    from hyenadna.training.step_memory import step_memory_bytes

    for recompute, measured in ((False, peak), (True, peak_ck)):
        estimate = step_memory_bytes(shape, 32768, recompute)
        print(f"step memory, recompute={recompute}: estimate {estimate / 1e9:.2f} GB, CUDA peak {measured / 1e9:.2f}")
        assert measured <= estimate < 3 * measured, (recompute, estimate, measured)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_low_precision_loading_and_autocast(dtype):
    reference = load_model(FIXTURES / "deep_long").use_reference_path(True)
    ids = _ids(2, 300)
    with torch.no_grad():
        expected = reference.backbone(ids)
        model = load_model(FIXTURES / "deep_long", device="cuda", dtype=dtype)
        outs = [model.backbone(ids.cuda()), model.backbone(ids.cuda(), low_memory=True)]
        fp32 = load_model(FIXTURES / "deep_long", device="cuda")
        with torch.autocast("cuda", dtype=dtype):
            outs.append(fp32.backbone(ids.cuda()))
    scale = expected.abs().max().item()
    for out in outs:
        assert torch.isfinite(out.float()).all()
        assert (out.float().cpu() - expected).abs().max().item() < (0.08 if dtype == torch.bfloat16 else 0.01) * scale


def test_cuda_sequence_chunked_training_same_gradients_in_less_memory():
    """Sequence-chunked training on a GPU (64k-token chunks there): the plain step's loss and gradients to float
    rounding, at small-32k's shape on 128k tokens in well under gradient checkpointing's peak, and the step-memory
    estimate for it above the CUDA peak."""
    from hyenadna import PUBLISHED_CONFIGS
    from hyenadna.training.step_memory import step_memory_bytes

    shape = PUBLISHED_CONFIGS["hyenadna-small-32k-seqlen"]
    loss, grads, peak = _cuda_step(shape, 131072, recompute=True)
    loss_ch, grads_ch, peak_ch = _cuda_step(shape, 131072, chunked=True)
    assert loss_ch == pytest.approx(loss, abs=1e-5)
    for n, g in grads.items():
        assert_close(grads_ch[n], g, atol=1e-5, rtol=1e-4)
    print(f"step memory at 128k tokens: checkpointed {peak / 1e9:.2f} GB, chunked {peak_ch / 1e9:.2f} GB")
    assert peak_ch < 0.7 * peak, (peak_ch, peak)
    # the estimate is fitted on the CPU, where heap fragments add to each chunk's memory: above the GPU's peak
    estimate = step_memory_bytes(shape, 131072, True, sequence_chunked=True, chunk=65536)
    print(f"chunked step estimate {estimate / 1e9:.2f} GB")
    assert peak_ch <= estimate, (estimate, peak_ch)


def _pretrain_cfg(tmp_path, out, **kw):
    from hyenadna.training.pretrain import PretrainConfig

    fasta = tmp_path / "toy.fa"
    if not fasta.exists():
        g = torch.Generator().manual_seed(0)
        seq = "".join("ACGT"[int(i)] for i in torch.randint(0, 4, (60_000,), generator=g))
        fasta.write_text(">1\n" + seq + "\n")
    base = dict(
        fasta=[str(fasta)],
        out_dir=str(tmp_path / out),
        model={"d_model": 32, "n_layer": 2, "d_inner": 64, "l_max": 130},
        eval_region=["1:50000-60000"],
        seq_len=128,
        batch_size=4,
        max_steps=6,
        eval_every=6,
        eval_windows=4,
        ckpt_every=3,
        markov=False,
        device="cuda",
        lr=3e-3,
    )
    return PretrainConfig(**{**base, **kw})


def test_cuda_pretraining_resumes_exactly_with_dropout_on(tmp_path):
    from hyenadna.training.pretrain import losses, pretrain

    model = {"d_model": 32, "n_layer": 2, "d_inner": 64, "l_max": 130, "embed_dropout": 0.1, "resid_dropout": 0.1}
    straight = pretrain(_pretrain_cfg(tmp_path, "a", model=model))
    first = pretrain(_pretrain_cfg(tmp_path, "b", model=model, max_minutes=0.0))
    assert not first["finished"]
    second = pretrain(_pretrain_cfg(tmp_path, "b", model=model), resume=True)
    assert losses(tmp_path / "a" / "metrics.jsonl") == losses(tmp_path / "b" / "metrics.jsonl")
    assert straight["param_checksum"] == second["param_checksum"]
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert len(state["rng"]["cuda"]) == torch.cuda.device_count()


def test_cuda_autocast_training_runs(tmp_path):
    from hyenadna.training.pretrain import pretrain

    result = pretrain(_pretrain_cfg(tmp_path, "bf16", bf16=True))
    assert result["finished"]


def _two_gpu_pretrain(tmp_path, cfg, resume: bool = False) -> tuple[dict, dict]:
    """``pretrain(cfg)`` as a 2-rank NCCL job on two GPUs; each rank's result."""
    name = f"{Path(cfg.out_dir).name}-{'resume' if resume else 'new'}"
    (tmp_path / f"{name}.json").write_text(json.dumps(cfg.__dict__))
    script = tmp_path / "run.py"
    script.write_text(PRETRAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    cmd += [str(tmp_path / f"{name}.json"), "resume" if resume else "new"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((Path(cfg.out_dir) / f"rank{r}.json").read_text()) for r in (0, 1))
    return r0, r1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpu_nccl_pretraining_keeps_ranks_identical(tmp_path):
    r0, r1 = _two_gpu_pretrain(tmp_path, _pretrain_cfg(tmp_path, "ddp", max_steps=10, eval_every=10, ckpt_every=10))
    assert r0["param_checksum"] == r1["param_checksum"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpu_pretraining_resumes_exactly_with_dropout_on(tmp_path):
    """Rank 1 draws its dropout masks from cuda:1's generator, which rank 0's process never advances: a stopped and
    resumed 2-GPU run ends where the straight one does only because the checkpoint keeps each rank's generators."""
    from hyenadna.training.pretrain import load_run_checkpoint, losses

    model = {"d_model": 32, "n_layer": 2, "d_inner": 64, "l_max": 130, "embed_dropout": 0.1, "resid_dropout": 0.1}
    straight = _two_gpu_pretrain(tmp_path, _pretrain_cfg(tmp_path, "a", model=model))
    first = _two_gpu_pretrain(tmp_path, _pretrain_cfg(tmp_path, "b", model=model, max_minutes=0.0))
    assert not first[0]["finished"]
    second = _two_gpu_pretrain(tmp_path, _pretrain_cfg(tmp_path, "b", model=model), resume=True)
    assert losses(tmp_path / "a" / "metrics.jsonl") == losses(tmp_path / "b" / "metrics.jsonl")
    assert straight[0]["param_checksum"] == second[0]["param_checksum"] == second[1]["param_checksum"]
    assert len(load_run_checkpoint(tmp_path / "b")["rng_ranks"]) == 2


def test_benchmark_workers_run_on_the_gpus_and_say_which(tmp_path):
    """Two benchmark workers with --device cuda: each run on a GPU of its own where there are two, recorded in the
    run's environment, with the same result as one process on one GPU."""
    import pandas as pd

    from hyenadna.benchmark.runner import BenchmarkConfig, run_benchmark, worker_devices

    task = tmp_path / "tasks" / "gc"
    task.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        y = rng.integers(0, 2, n)
        seqs = ["".join(rng.choice(list("GC" if c else "AT"), 64)) for c in y]
        pd.DataFrame({"sequence": seqs, "label": y}).to_csv(task / f"{split}.csv.gz", index=False)
    (task / "task.json").write_text(json.dumps({"name": "gc", "metric": "mcc", "label_names": ["at", "gc"]}))
    cfg = BenchmarkConfig(
        tasks_dir=str(tmp_path / "tasks"), out_dir=str(tmp_path / "one"), seeds=[0, 1], modes=["scratch"],
        epochs=1, scratch_lrs=[1e-3], model_path=str(FIXTURES / "tiny"), device="cuda",
    )  # fmt: skip
    run_benchmark(cfg, log=lambda m: None)
    run_benchmark(BenchmarkConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "two")}), log=print, workers=2)
    devices = set(worker_devices("cuda", 2))
    for seed in (0, 1):
        one, two = (
            json.loads((tmp_path / d / "runs/gc/scratch" / f"seed{seed}.json").read_text()) for d in ("one", "two")
        )
        assert two["environment"]["device"].split(" ")[0] in devices
        assert one["selected"] == two["selected"] and one["test"] == two["test"]


def test_random_init_does_not_touch_the_users_cuda_rng():
    from hyenadna import HyenaDNA, HyenaDNAConfig

    torch.cuda.manual_seed_all(1234)
    before = torch.cuda.get_rng_state()
    HyenaDNA(HyenaDNAConfig(pretrained=False, device="cuda", seed=7))
    assert torch.equal(torch.cuda.get_rng_state(), before)
    assert isinstance(HyenaDNALMHeadModel, type)


@pytest.mark.parametrize("method", ["exact", "gradient"])
def test_cuda_classifier_mutagenesis_matches_the_cpu(method, tmp_path):
    """ISM of a fine-tuned model's prediction on a GPU: the same map as on the CPU, both strands, exact and first
    order (the gradient one reads the embedding's gradient on the device)."""
    from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel

    ft = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny", progress=False), "classification", 3)
    folder = ft.save(tmp_path / "clf")
    seq = "".join(np.random.default_rng(4).choice(list("ACGT"), 64))
    maps = {
        device: HyenaDNAFineTuningModel.load(folder, device=device).mutagenesis(seq, 2, True, method).effect
        for device in ("cpu", "cuda")
    }
    assert np.allclose(maps["cuda"], maps["cpu"], atol=1e-4, equal_nan=True)
    assert np.isfinite(maps["cuda"]).sum() == 64 * 3


def test_cuda_classifier_variant_effects_match_the_cpu(tmp_path):
    """vep with a fine-tuned model on a GPU: the same rows as on the CPU, centred windows and strand-aware regions."""
    from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel
    from tests.conftest import write_fasta

    ft = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny", progress=False), "classification", 3)
    folder = ft.save(tmp_path / "clf")
    chrom = "".join(np.random.default_rng(6).choice(list("ACGT"), 600))
    genome = write_fasta(tmp_path / "g.fa", "chrG", chrom)
    lines = ["#CHROM\tPOS\tID\tREF\tALT"]
    lines += [f"chrG\t{p}\t.\t{chrom[p - 1]}\t{'A' if chrom[p - 1] != 'A' else 'C'}" for p in (20, 250, 300, 590)]
    lines.append(f"chrG\t260\t.\t{chrom[259:263]}\t{chrom[259]}")
    (tmp_path / "v.vcf").write_text("\n".join(lines) + "\n")
    (tmp_path / "r.bed").write_text("chrG\t200\t320\tplus\t0\t+\nchrG\t240\t400\tminus\t0\t-\n")
    for kw in ({"window": 128, "rc_average": True}, {"regions": tmp_path / "r.bed"}):
        tables = {
            device: HyenaDNAFineTuningModel.load(folder, device=device).variant_effects(
                tmp_path / "v.vcf", genome, target=2, **kw
            )
            for device in ("cpu", "cuda")
        }
        assert list(tables["cuda"]["status"]) == list(tables["cpu"]["status"]) and len(tables["cpu"]) > 0
        ok = tables["cpu"]["status"] == "ok"  # with regions, alleles in none are listed unscored
        assert ok.sum() >= 4
        assert np.allclose(tables["cuda"]["delta_log_odds"][ok], tables["cpu"]["delta_log_odds"][ok], atol=1e-4)


def test_cuda_filter_reach_equals_the_cpus():
    from hyenadna.training.context import filter_reach

    model = load_model(FIXTURES / "tiny")
    cpu = filter_reach(model, edges=(4, 16))
    cuda = filter_reach(model.to("cuda"), edges=(4, 16))
    for a, b in zip(cpu, cuda, strict=True):
        assert a["energy_share"] == pytest.approx(b["energy_share"], rel=1e-5)
        np.testing.assert_allclose(a["rms"], b["rms"], rtol=1e-5)
