"""Pretraining: regions, windows, Markov baseline, exact resume, held-out protection and 2-process DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyenadna import HyenaDNALMHeadModel
from hyenadna.data.genome import Genome
from hyenadna.data.regions import HELD_OUT, Interval, overlap, parse_region, parse_regions, subtract
from hyenadna.training.export import pretrain_command
from hyenadna.training.markov import MarkovModel
from hyenadna.training.optim import build_optimizer, cosine_lr, parameter_groups
from hyenadna.training.portable import pack_checkpoint
from hyenadna.training.pretrain import (
    PretrainConfig,
    evaluate_nll,
    load_run_checkpoint,
    losses,
    pretrain,
    restore_rng,
    training_intervals,
)
from hyenadna.training.windows import WindowSampler, fixed_windows
from tests.conftest import PRETRAIN_SCRIPT, REPO, assert_close, set_cpu_bf16, two_nodes, two_ranks


@pytest.fixture(scope="module")
def fasta(tmp_path_factory) -> Path:
    """A small genome: chromosome '1' with a repeated motif block, so a model can learn something fast."""
    rng = np.random.default_rng(0)
    motif = "".join(rng.choice(list("ACGT"), 37))
    seq = "".join(motif if rng.random() < 0.5 else "".join(rng.choice(list("ACGT"), 37)) for _ in range(3000))
    seq = seq[:50_000] + "N" * 2000 + seq[50_000:]
    path = tmp_path_factory.mktemp("genome") / "toy.fa"
    path.write_text(">chr1 toy\n" + "\n".join(seq[i : i + 70] for i in range(0, len(seq), 70)) + "\n")
    return path


def small_cfg(fasta: Path, out: Path, **kw) -> PretrainConfig:
    base = dict(
        fasta=[str(fasta)],
        out_dir=str(out),
        model={"d_model": 16, "n_layer": 2, "d_inner": 32, "l_max": 66},
        eval_region=["1:100000-113000"],
        seq_len=64,
        batch_size=4,
        max_steps=6,
        eval_every=3,
        eval_windows=4,
        ckpt_every=3,
        log_every=1,
        markov=False,
        threads=1,
        lr=3e-3,
    )
    base.update(kw)
    return PretrainConfig(**base)


def test_regions():
    assert parse_region("chr20:1,000-2,000") == Interval("20", 1000, 2000)
    assert parse_region("chrX") == "X"
    left = subtract([Interval("20", 0, 63_025_520)], [HELD_OUT])
    assert left == [Interval("20", 0, 32_000_000)]
    assert overlap(left, [HELD_OUT]) == 0
    with pytest.raises(ValueError, match="cannot parse region"):
        parse_region("chr1:5")


def test_held_out_is_excluded_by_default_and_overlap_refused(fasta, tmp_path):
    genome = Genome.from_fasta([fasta])
    train, evaluation = training_intervals(small_cfg(fasta, tmp_path), genome)
    assert overlap(train, evaluation) == 0 and sum(map(len, train)) == len(genome.chromosomes["1"]) - 13000
    with pytest.raises(ValueError, match="overlap the held-out evaluation region"):
        training_intervals(small_cfg(fasta, tmp_path, include=["chr1:90000-105000"]), genome)
    train, _ = training_intervals(small_cfg(fasta, tmp_path, include=["chr1:90000-105000"], force_overlap=True), genome)
    assert overlap(train, evaluation) == 5000
    # a genome without GRCh37's chr20: the default held-out region cannot apply, and the error says what to give
    with pytest.raises(ValueError, match=r"not in the genome: the held-out evaluation region defaults to GRCh37's "):
        training_intervals(small_cfg(fasta, tmp_path, eval_region=[str(HELD_OUT)]), genome)
    with pytest.raises(ValueError, match=r"chromosome '9' is not in the genome$"):
        training_intervals(small_cfg(fasta, tmp_path, eval_region=["9:0-100"]), genome)


def test_regions_naming_no_base_of_the_genome(fasta, tmp_path):
    """A region past a chromosome's end (another assembly's held-out region, a typo) is named, not numpy's
    "__len__() should return >= 0"; regions to leave out that miss the genome (a genome-wide blacklist) are dropped."""
    genome = Genome.from_fasta([fasta])  # chromosome '1': 113,000 bases
    with pytest.raises(ValueError, match=r"starts at 200,000, past the end of chromosome '1' \(113,000 bases"):
        training_intervals(small_cfg(fasta, tmp_path, eval_region=["1:200000-300000"]), genome)
    with pytest.raises(ValueError, match=r"'1:150000-160000'.*past the end"):
        training_intervals(small_cfg(fasta, tmp_path, include=["1:150000-160000"]), genome)
    bed = tmp_path / "blacklist.bed"
    bed.write_text("chr2\t0\t500\n1\t200000\t200100\n1\t1000\t2000\n")
    with pytest.raises(ValueError, match=r"blacklist.bed' \(2:0-500\): chromosome '2' is not in the genome"):
        parse_regions([str(bed)], genome.sizes)
    with pytest.raises(ValueError, match=r"blacklist.bed' \(1:200000-200100\): starts at 200,000"):
        parse_regions([str(bed)], {"1": genome.sizes["1"], "2": 1000})
    assert parse_regions([str(bed)], genome.sizes, skip_absent=True) == [Interval("1", 1000, 2000)]
    train, _ = training_intervals(small_cfg(fasta, tmp_path, exclude=[str(bed)]), genome)
    assert sum(map(len, train)) == len(genome.chromosomes["1"]) - 13000 - 1000


def test_stages_are_checked_with_their_format_named(fasta, tmp_path):
    from hyenadna.cli.pretrain import _parse_stages

    assert _parse_stages("500:256:32, 1000:512:16") == [[500, 256, 32], [1000, 512, 16]]
    for text, why in (
        ("10:abc:4", "is not until_step:len:batch"),
        ("5:256", "is not until_step:len:batch"),
        ("5:256:4,3:512:2", "until_step must rise"),
        ("5:1:4", "seq_len >= 2"),
    ):
        with pytest.raises(ValueError, match=f"--stages: .*{why}"):
            _parse_stages(text)
    with pytest.raises(ValueError, match="stage 1 \\[5, 256\\]: expected"):
        small_cfg(fasta, tmp_path, stages=[[5, 256]])


def test_a_config_names_each_value_out_of_range(fasta, tmp_path):
    """The command line checked these; a PretrainConfig built in Python trained with lr=0 or grad_clip=0 (nothing
    learnt) in silence."""
    with pytest.raises(ValueError, match=r"^lr=0 \(needs > 0\), grad_clip=0 \(needs > 0\)$"):
        small_cfg(fasta, tmp_path, lr=0, grad_clip=0)
    with pytest.raises(ValueError, match=r"^batch_size=0 \(needs >= 1\), max_n_fraction=nan \(needs 0 to 1\)$"):
        small_cfg(fasta, tmp_path, batch_size=0, max_n_fraction=float("nan"))


def test_markov_baseline_on_training_intervals_shorter_than_a_window_says_so(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "g.fa"
    path.write_text("".join(f">chr{i}\n{''.join(rng.choice(list('ACGT'), 5000))}\n" for i in (1, 2)))
    cfg = small_cfg(path, tmp_path / "run", eval_region=["chr2"], seq_len=1024, markov=True)
    cfg.model = {**cfg.model, "l_max": 1026}
    with pytest.raises(
        ValueError, match=r"Markov baseline picks its order on windows of 1,025 bases .*\(--no-markov\)"
    ):
        pretrain(cfg)


def test_resume_without_a_run_says_so(tmp_path, capsys):
    from hyenadna.cli import main

    assert main(["pretrain", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no run to resume (no pretrain_config.json), and --fasta is required" in capsys.readouterr().err


def test_window_sampler_is_deterministic_and_respects_n_policy(fasta):
    genome = Genome.from_fasta([fasta])
    iv = [Interval("1", 45_000, 60_000)]
    a = WindowSampler(genome, iv, max_n_fraction=0.0, seed=1).batch(7, 16, 100)
    assert np.array_equal(a, WindowSampler(genome, iv, max_n_fraction=0.0, seed=1).batch(7, 16, 100))
    assert not np.array_equal(a, WindowSampler(genome, iv, max_n_fraction=0.0, seed=1, rank=1).batch(7, 16, 100))
    assert not (a == 11).any()
    padded = WindowSampler(genome, iv, max_n_fraction=1.0, n_to_pad=True, seed=2).batch(0, 64, 100)
    assert (padded == 4).any() and not (padded == 11).any()
    # regions of N alone: a clear error naming the knob (was a RuntimeError, a traceback on the command line)
    with pytest.raises(ValueError, match=r"random windows of 100 bases .* more than max_n_fraction=0 of N: raise it"):
        WindowSampler(genome, [Interval("1", 50_000, 52_000)], max_n_fraction=0.0).batch(0, 2, 100)


def test_markov_probabilities_are_normalised_and_learn_structure():
    x = np.tile(np.array([7, 8, 9, 10, 10, 9], dtype=np.uint8), 500)
    model = MarkovModel(3, alpha=0.01).fit([x])
    windows = x[None, :60]
    assert model.nll(windows) < 0.1  # deterministic sequence after enough context
    total = sum(np.exp(model.log_probs(np.array([[7, 8, 9, b]]))[0, -1]) for b in (7, 8, 9, 10))
    assert total == pytest.approx(1.0)


def test_markov_counts_equal_a_naive_count():
    """The one-pass k-mer codes count exactly what counting each (j+1)-mer of A/C/G/T by hand counts."""
    rng = np.random.default_rng(3)
    x = rng.choice(np.array([7, 8, 9, 10, 11], dtype=np.uint8), size=400, p=[0.24, 0.24, 0.24, 0.24, 0.04])
    model = MarkovModel(4).fit([x])
    for j in range(5):
        naive = np.zeros(4 ** (j + 1), dtype=np.int64)
        for i in range(len(x) - j):
            kmer = x[i : i + j + 1].astype(int) - 7
            if (kmer < 4).all():
                naive[int("".join(map(str, kmer)), 4)] += 1
        assert np.array_equal(model.counts[j].ravel(), naive), j


def test_markov_counts_from_one_reading_of_the_dna_equal_counting_each_piece(monkeypatch):
    """The baseline reads the DNA once: the reverse strand's counts come from the forward strand's (checked against
    counting the reverse complement itself), and a tail's counts (k-mers ending at or after the cut) added to the
    head's are the whole sequence's, for cuts inside the first k-mer, at the ends and past them."""
    from hyenadna.tokenizer import reverse_complement_ids
    from hyenadna.training import markov
    from hyenadna.training.markov import add_reverse_complement, count_kmers

    rng = np.random.default_rng(4)
    seqs = [
        rng.choice(np.array([7, 8, 9, 10, 11], dtype=np.uint8), size=n, p=[0.3, 0.2, 0.2, 0.25, 0.05])
        for n in (3, 40, 700)
    ]
    forward = count_kmers(seqs, 5)
    reverse = count_kmers([reverse_complement_ids(x) for x in seqs], 5)
    for j, (both, f, r) in enumerate(zip(add_reverse_complement(forward), forward, reverse, strict=True)):
        assert both.shape == (4**j, 4) and np.array_equal(both, f + r), j
        assert np.array_equal(MarkovModel(5).fit(seqs, both_strands=True).counts[j], f + r), j
    for cut in (0, 1, 3, 5, 6, 39, 40, 41, 699, 700):
        heads = count_kmers([x[:cut] for x in seqs], 5)
        tails = count_kmers(seqs, 5, ends_from=[cut] * len(seqs))
        assert all(np.array_equal(h + t, w) for h, t, w in zip(heads, tails, forward, strict=True)), cut
    # counted a segment of k-mer ends at a time (memory that does not grow with a chromosome): the same counts
    for segment in (1, 7, 64):
        monkeypatch.setattr(markov, "SEGMENT_BASES", segment)
        assert all(np.array_equal(a, b) for a, b in zip(count_kmers(seqs, 5), forward, strict=True)), segment
        tails = count_kmers(seqs, 5, ends_from=[41] * len(seqs))
        heads = count_kmers([x[:41] for x in seqs], 5)
        assert all(np.array_equal(h + t, w) for h, t, w in zip(heads, tails, forward, strict=True)), segment


def test_markov_report_is_cached_by_its_inputs(fasta, tmp_path, monkeypatch):
    from hyenadna.training import pretrain as pretrain_module
    from hyenadna.training.windows import fixed_windows

    genome = Genome.from_fasta([fasta])
    train = [Interval("1", 0, 100_000)]
    windows = fixed_windows(genome, [Interval("1", 100_000, 113_000)], 4, 65)
    lines: list[str] = []
    first = pretrain_module.markov_baseline(genome, train, windows, log=lines.append)
    assert "fitting" in lines[0] and len(list((tmp_path / "cache" / "markov").glob("*.json"))) == 1

    def refuse(*a, **k):
        raise AssertionError("refitted although the same inputs were cached")

    monkeypatch.setattr(pretrain_module, "select_markov", refuse)
    again = pretrain_module.markov_baseline(genome, train, windows, log=lines.append)
    assert again["held_out"] == first["held_out"] and "cached" in lines[-1]
    with pytest.raises(AssertionError, match="refitted"):  # other training DNA: another key
        pretrain_module.markov_baseline(genome, [Interval("1", 0, 90_000)], windows, log=lines.append)
    with pytest.raises(AssertionError, match="refitted"):
        pretrain_module.markov_baseline(genome, train, windows, log=lines.append, cache=False)


def test_warm_start_copies_same_shaped_weights_into_a_longer_context(tmp_path):
    from hyenadna import HyenaConfig, HyenaDNALMHeadModel
    from hyenadna.training.pretrain import warm_start

    short = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=66))
    short.save_pretrained(tmp_path / "short")
    long = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=1026))
    message = warm_start(long, str(tmp_path / "short"))
    assert "copied" in message
    for (name, p), q in zip(long.named_parameters(), short.parameters(), strict=True):
        assert torch.equal(p, q), name
    z = dict(long.named_buffers())["backbone.layers.0.mixer.filter_fn.pos_emb.z"]
    assert z.shape[1] == 1026  # the position grid is the new model's own
    other = HyenaDNALMHeadModel(HyenaConfig(d_model=8, n_layer=1, d_inner=16, l_max=66))
    with pytest.raises(ValueError, match="another architecture"):
        warm_start(other, str(tmp_path / "short"))


def test_warm_start_adds_geometric_filter_bands_and_starts_as_the_source(tmp_path):
    """A model given geometric filter bands its source lacks copies the source's first filter layer into the
    features both have and starts the new bands' weights at zero: the same logits as the source, exactly."""
    from hyenadna import HyenaConfig, HyenaDNALMHeadModel
    from hyenadna.training.pretrain import warm_start

    shape = dict(d_model=16, n_layer=2, d_inner=32)
    source = HyenaDNALMHeadModel(HyenaConfig(**shape, l_max=66)).eval()
    source.save_pretrained(tmp_path / "source")
    grown = HyenaDNALMHeadModel(HyenaConfig(**shape, l_max=66, filter_geometric_bands=3)).eval()
    assert "2 filter input layers grown by 6 zero columns" in warm_start(grown, str(tmp_path / "source"))
    for layer, old in zip(grown.backbone.layers, source.backbone.layers, strict=True):
        w, w0 = layer.mixer.filter_fn.implicit_filter[0].weight, old.mixer.filter_fn.implicit_filter[0].weight
        assert w.shape == (64, 5 + 6) and torch.equal(w[:, :5], w0) and not w[:, 5:].any()
    ids = torch.randint(7, 11, (2, 60))
    with torch.no_grad():
        assert torch.equal(grown(ids).logits, source(ids).logits)
    # features the source does not have as the model's first columns: another architecture
    for cfg in (dict(emb_dim=7, filter_geometric_bands=3), dict(filter_geometric_bands=0, emb_dim=11)):
        with pytest.raises(ValueError, match="another architecture"):
            warm_start(HyenaDNALMHeadModel(HyenaConfig(**shape, l_max=66, **cfg)), str(tmp_path / "source"))
    # a source with bands of its own seeds only a model with the same bands
    grown.save_pretrained(tmp_path / "grown")
    again = HyenaDNALMHeadModel(HyenaConfig(**shape, l_max=130, filter_geometric_bands=3))
    assert "grown" not in warm_start(again, str(tmp_path / "grown")).split("copied")[1]
    more = HyenaDNALMHeadModel(HyenaConfig(**shape, l_max=130, filter_geometric_bands=4))
    with pytest.raises(ValueError, match="another architecture"):
        warm_start(more, str(tmp_path / "grown"))


def test_schedule_and_parameter_groups():
    assert cosine_lr(0, 100, 1e-3, 10) == pytest.approx(1e-6)
    assert cosine_lr(10, 100, 1e-3, 10) == pytest.approx(1e-3)
    assert cosine_lr(100, 100, 1e-3, 10) == pytest.approx(1e-4)
    from hyenadna import HyenaConfig, HyenaDNALMHeadModel

    model = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=1, d_inner=32, l_max=16))
    decay, no_decay = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(".filter_fn." not in names[id(p)] for p in decay["params"])
    assert any("implicit_filter.0.weight" in names[id(p)] for p in no_decay["params"])
    assert any("in_proj.weight" in names[id(p)] for p in decay["params"])


def test_the_optimizer_is_fused_adamw_and_steps_as_torchs_default():
    from hyenadna import HyenaConfig, HyenaDNALMHeadModel

    torch.manual_seed(0)
    models = [HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=1, d_inner=32, l_max=16)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = build_optimizer(models[0], lr=1e-2, weight_decay=0.1)
    default = torch.optim.AdamW(parameter_groups(models[1], 0.1), lr=1e-2)
    assert fused.defaults["fused"] and not default.defaults["fused"]
    ids = torch.randint(7, 11, (2, 13))
    for step in range(3):
        for model, opt in zip(models, (fused, default), strict=True):
            torch.manual_seed(step)  # the same embedding dropout for both
            opt.zero_grad()
            model(ids[:, :-1], labels=ids[:, 1:]).loss.backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_resume_matches_uninterrupted_run(fasta, tmp_path):
    straight = pretrain(small_cfg(fasta, tmp_path / "a", max_steps=6))
    first = pretrain(small_cfg(fasta, tmp_path / "b", max_steps=6, max_minutes=0.0))  # stops after step 1
    assert not first["finished"] and first["step"] == 1
    # the same state packed into repository-sized safetensors shards, on a "fresh machine" without checkpoint.pt
    fresh = tmp_path / "fresh"
    shutil.copytree(tmp_path / "b", fresh)
    state = torch.load(fresh / "checkpoint.pt", weights_only=True)
    files = pack_checkpoint(state, fresh / "checkpoint", max_shard_bytes=20_000)
    assert len(files) > 3 and all(f.stat().st_size < 40_000 for f in files)
    (fresh / "checkpoint.pt").unlink()
    unpacked = load_run_checkpoint(fresh)
    assert (
        unpacked["step"] == state["step"]
        and unpacked["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    )
    for a, b in ((unpacked["model"], state["model"]), (unpacked["rng"], state["rng"])):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for pid, per_param in state["optimizer"]["state"].items():
        assert all(torch.equal(unpacked["optimizer"]["state"][pid][k], v) for k, v in per_param.items())
    second = pretrain(small_cfg(fasta, tmp_path / "b", max_steps=6), resume=True)
    assert second["finished"]
    assert losses(tmp_path / "a" / "metrics.jsonl") == losses(tmp_path / "b" / "metrics.jsonl")
    assert straight["param_checksum"] == second["param_checksum"]
    from_packed = pretrain(small_cfg(fasta, fresh, max_steps=6), resume=True)
    assert losses(fresh / "metrics.jsonl") == losses(tmp_path / "a" / "metrics.jsonl")
    assert from_packed["param_checksum"] == straight["param_checksum"]
    pack_checkpoint(state, fresh / "checkpoint")  # packed again in one shard: the old shards go
    assert sorted(p.name for p in (fresh / "checkpoint").iterdir()) == ["shard-00001.safetensors", "state.json"]
    assert (tmp_path / "b" / "loss_curve.png").stat().st_size > 1000
    assert (tmp_path / "b" / "model" / "model.safetensors").exists()
    # a finished run copied with its packed checkpoint and without model/: resuming writes the model from it
    shutil.rmtree(fresh / "model")
    final = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    pack_checkpoint(final, fresh / "checkpoint")
    pretrain(small_cfg(fasta, fresh, max_steps=6), resume=True)
    from hyenadna.models.hyena_dna import load_model

    exported = load_model(fresh / "model").state_dict()
    assert all(torch.equal(exported[k], v) for k, v in final["model"].items())
    with pytest.raises(FileExistsError):
        pretrain(small_cfg(fasta, tmp_path / "a"))


def test_gradient_checkpointing_trains_the_same_run_and_may_change_on_resume(fasta, tmp_path):
    """--gradient-checkpointing trades time for memory and nothing else: the same losses and final weights to the
    bit, also when a run resumed with it started without; the CLI records it, and the card's command repeats it."""
    straight = pretrain(small_cfg(fasta, tmp_path / "a"))
    recomputed = pretrain(small_cfg(fasta, tmp_path / "b", gradient_checkpointing=True))
    assert losses(tmp_path / "a" / "metrics.jsonl") == losses(tmp_path / "b" / "metrics.jsonl")
    assert straight["param_checksum"] == recomputed["param_checksum"]
    assert not pretrain(small_cfg(fasta, tmp_path / "c", max_minutes=0.0))["finished"]
    resumed = pretrain(small_cfg(fasta, tmp_path / "c", gradient_checkpointing=True), resume=True)
    assert losses(tmp_path / "c" / "metrics.jsonl") == losses(tmp_path / "a" / "metrics.jsonl")
    assert resumed["param_checksum"] == straight["param_checksum"]

    saved = _one_step_from_the_cli(fasta, tmp_path / "cli", "--gradient-checkpointing")
    assert saved["gradient_checkpointing"] is True
    assert "--gradient-checkpointing" in pretrain_command(saved)


def _one_step_from_the_cli(fasta: Path, out: Path, flag: str) -> dict:
    """``hyenadna pretrain`` for one step of a tiny model with ``flag``; its pretrain_config.json."""
    from hyenadna.cli import main

    args = ["pretrain", "--fasta", str(fasta), "--d-model", "16", "--seq-len", "64", "--batch-size", "2"]
    args += ["--max-steps", "1", "--no-markov", "--threads", "1", "--eval-region", "1:100000-113000"]
    assert main([*args, "--eval-windows", "2", flag, "--out", str(out)]) == 0
    return json.loads((out / "pretrain_config.json").read_text())


def test_sequence_chunked_training_follows_the_plain_run(fasta, tmp_path):
    """--sequence-chunked changes the memory, not the run: the same losses and weights to float rounding (its chunks
    sum in another order), recorded in pretrain_config.json and repeated by the card's command."""
    pretrain(small_cfg(fasta, tmp_path / "a"))
    chunked_cfg = small_cfg(fasta, tmp_path / "b", sequence_chunked=True)
    assert dataclasses.asdict(chunked_cfg)["sequence_chunked"]
    pretrain(chunked_cfg)
    plain, chunked = losses(tmp_path / "a" / "metrics.jsonl"), losses(tmp_path / "b" / "metrics.jsonl")
    assert len(plain) == len(chunked) == 6 and plain != chunked  # the chunked path ran
    assert_close(torch.tensor(chunked), torch.tensor(plain), rtol=1e-5)
    # not the weights element by element: Adam's first steps move a weight by about lr whatever its gradient's size,
    # so a gradient near zero that rounds to the other sign moves it the other way (test_block_chunked.py holds
    # the gradients themselves)
    evals = [
        [r["nll"] for r in map(json.loads, (tmp_path / x / "metrics.jsonl").open()) if r["kind"] == "eval"]
        for x in "ab"
    ]
    assert len(evals[0]) == 2
    assert_close(torch.tensor(evals[1]), torch.tensor(evals[0]), rtol=1e-5)

    saved = _one_step_from_the_cli(fasta, tmp_path / "cli", "--sequence-chunked")
    assert saved["sequence_chunked"] is True
    assert "--sequence-chunked" in pretrain_command(saved)


@pytest.mark.parametrize("chunked", [False, True])
def test_compiled_training_follows_the_plain_run(fasta, tmp_path, monkeypatch, chunked):
    """--compile (torch.compile of the model) changes the speed, not the run: the same losses to float rounding,
    alone and with --sequence-chunked (whose memory it keeps: README "Training memory")."""
    pretrain(small_cfg(fasta, tmp_path / "a"))
    compiled_models = []
    compile_ = torch.compile

    def spy(model, *args, **kwargs):
        if isinstance(model, torch.nn.Module):
            compiled_models.append(model)
        return compile_(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", spy)
    pretrain(small_cfg(fasta, tmp_path / "b", compile=True, sequence_chunked=chunked))
    assert len(compiled_models) == 1 and compiled_models[0].backbone.execution.sequence_chunked == chunked
    plain, compiled = losses(tmp_path / "a" / "metrics.jsonl"), losses(tmp_path / "b" / "metrics.jsonl")
    assert len(plain) == len(compiled) == 6
    assert_close(torch.tensor(compiled), torch.tensor(plain), rtol=1e-5)


def test_a_step_that_would_not_fit_is_pointed_out_before_it_starts(fasta, tmp_path, monkeypatch, capsys):
    """On the CPU the kernel kills a process that runs out of memory without a word, after the setup's minutes: the
    run says first when its largest step would not fit in the memory available, and which switches lower it, and by
    default hands freed memory back between steps where keeping it would not fit (medium-160k at 160k tokens with
    recomputation: killed at 21.8 GB keeping it, 7.8 GB not). The estimate is the measured bytes per token and
    channel (README "Training memory")."""
    import hyenadna.training.step_memory as step_memory_module
    from hyenadna.models.config import HyenaConfig
    from hyenadna.training.pretrain import memory_plan
    from hyenadna.training.step_memory import step_memory_bytes

    medium = HyenaConfig(d_model=256, n_layer=8, d_inner=1024, l_max=160002)
    gb = 1e9
    assert 30 * gb < step_memory_bytes(medium, 160_000, False) < 40 * gb  # medium-160k at 160k tokens
    assert 7 * gb < step_memory_bytes(medium, 160_000, True) < 10 * gb  # measured 7.4-7.8 GB (README)
    assert 5.5 * gb < step_memory_bytes(medium, 160_000, True, "bf16") < 8.5 * gb  # measured 5.9 GB in bf16
    cpu = torch.device("cpu")
    cfg = PretrainConfig(fasta=[], out_dir="", seq_len=1024, batch_size=8, stages=[[100, 160_000, 1]], max_steps=200)
    assert cfg.largest_batch_tokens() == 160_000
    monkeypatch.setattr(step_memory_module, "available_bytes", lambda device: 20 * gb)
    keep, (line,) = memory_plan(cfg, medium, cpu)
    assert not keep and line.startswith("warning: a training step of 160,000 tokens needs about 36.0 GB")
    assert "--gradient-checkpointing (about 8.8 GB)" in line and "handed back" in line
    assert "--sequence-chunked (about 4.4 GB)" in line
    large = HyenaConfig(d_model=256, n_layer=8, d_inner=1024, l_max=1_000_002)
    assert 18.6 * gb <= step_memory_bytes(large, 1_000_000, False, sequence_chunked=True) < 21 * gb  # measured 18.6
    _, (line,) = memory_plan(dataclasses.replace(cfg, bf16=True), medium, cpu)  # a bf16 run's own estimate
    assert "needs about 28.8 GB" in line and "--gradient-checkpointing (about 7.9 GB)" in line
    checkpointed = dataclasses.replace(cfg, gradient_checkpointing=True)
    keep, (line,) = memory_plan(checkpointed, medium, cpu)  # fits, but not with the kept memory
    assert not keep and line.startswith("note:") and "--keep-freed-memory keeps it" in line
    keep, (line,) = memory_plan(dataclasses.replace(checkpointed, keep_freed_memory=True), medium, cpu)
    assert keep and "if the run is killed, --no-keep-freed-memory" in line  # as the run that was killed
    assert memory_plan(dataclasses.replace(checkpointed, keep_freed_memory=False), medium, cpu) == (False, [])
    _, (line,) = memory_plan(dataclasses.replace(checkpointed, keep_freed_memory=False), medium, cpu, 2)
    assert "(2 processes)" in line
    assert memory_plan(PretrainConfig(fasta=[], out_dir=""), medium, cpu) == (True, [])  # 1k windows: fits
    keep, (line,) = memory_plan(cfg, medium, torch.device("meta"))  # another device: its own memory, as a GPU's
    assert not keep and "freed memory" not in line  # keeping freed memory is the CPU's matter
    monkeypatch.setattr(step_memory_module, "available_bytes", lambda device: None)
    assert memory_plan(cfg, medium, cpu) == (True, [])

    monkeypatch.setattr(step_memory_module, "available_bytes", lambda device: 10_000)
    assert pretrain(small_cfg(fasta, tmp_path / "tight", max_steps=1, eval_every=1))["finished"]  # a warning only
    assert "warning: a training step of 256 tokens needs about" in capsys.readouterr().err


def test_available_memory_is_read_on_linux():
    from hyenadna.utils.memory import available_bytes

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/meminfo")
    assert 0 < available_bytes("cpu") < 2**50
    assert available_bytes("mps") is None


def test_markov_baseline_is_reported_in_the_same_run(fasta, tmp_path):
    pretrain(small_cfg(fasta, tmp_path, markov=True, max_steps=3))
    report = json.loads((tmp_path / "markov.json").read_text())
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert evals and evals[-1]["markov_nll"] == report["held_out"]["nll"]
    assert {"order", "alpha", "both_strands"} <= set(report["selected"])


@pytest.mark.parametrize(
    ("recompute", "accum"),
    [(False, 1), (True, 1), (False, 2), ("chunked", 1)],
    ids=["plain", "gradient_checkpointing", "grad_accum", "sequence_chunked"],
)
def test_two_process_ddp_keeps_ranks_identical_and_learns(fasta, tmp_path, recompute, accum):
    """DistributedDataParallel's gradient hooks fire as the backward reaches each parameter, also when each block
    is recomputed inside it (non-reentrant checkpointing, which DDP supports) or is one node over token chunks
    (sequence-chunked training); with gradient accumulation the ranks average once a step, in the last micro-batch's
    backward (``no_sync`` before it), and stay identical."""
    cfg = small_cfg(fasta, tmp_path / "ddp", max_steps=30, eval_every=30, ckpt_every=30, lr=1e-2, grad_accum=accum)
    cfg.eval_windows = 40  # 3 batches: rank 0 scores two, rank 1 one
    cfg.gradient_checkpointing = recompute is True
    cfg.sequence_chunked = recompute == "chunked"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.__dict__))
    script = tmp_path / "run.py"
    script.write_text(PRETRAIN_SCRIPT)
    two_ranks(script, [str(tmp_path / "cfg.json"), "new"])
    r0, r1 = (json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["param_checksum"] == r1["param_checksum"]
    assert r0["tokens_seen"] == 30 * 4 * 64 * 2 * accum
    steps = losses(tmp_path / "ddp" / "metrics.jsonl")
    assert np.mean([v for _, v in steps[-5:]]) < np.mean([v for _, v in steps[:5]]) - 0.1
    # the ranks evaluated together what one process gets from the exported model
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    genome = Genome.from_fasta(cfg.fasta)
    windows = fixed_windows(genome, training_intervals(cfg, genome)[1], cfg.eval_windows, cfg.seq_len + 1)
    model = HyenaDNALMHeadModel.from_pretrained(tmp_path / "ddp" / "model")
    assert [r["nll"] for r in rows if r["kind"] == "eval"] == [evaluate_nll(model, windows)]


RANK_RNG_SCRIPT = """
import json, os, sys
import torch, torch.distributed as dist
from hyenadna.training.pretrain import restore_rng
from hyenadna.utils.device import gather_rng_states
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
torch.rand(rank + 1)  # each rank's generator where its own draws left it, as each GPU's after its own dropout
ranks = gather_rng_states()
expected = torch.rand(4)
out = {}
for case, state in {
    "per_rank": {"rng": ranks[0], "rng_ranks": ranks},
    "rank0_only": {"rng": ranks[0]},  # a checkpoint written before the per-rank states
    "other_world": {"rng": ranks[0], "rng_ranks": ranks[:1]},
}.items():
    warning = restore_rng(state, rank, world)
    out[case] = {"same": torch.equal(torch.rand(4), expected), "warning": warning}
json.dump(out, open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w"))
dist.barrier()
dist.destroy_process_group()  # else gloo's threads may die with the interpreter: "terminate called", SIGABRT
"""


def test_each_rank_resumes_its_own_generators(tmp_path):
    """Data-parallel checkpoints keep every rank's RNG state: on GPUs each rank advances its own device's generator
    (dropout), which rank 0's process never draws from, so restoring rank 0's state everywhere (as before) gives
    rank 1 other draws. Emulated on 2 CPU ranks whose generators were left apart."""
    script = tmp_path / "rng.py"
    script.write_text(RANK_RNG_SCRIPT)
    two_ranks(script, [str(tmp_path)], timeout=300)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["per_rank"] == r1["per_rank"] == {"same": True, "warning": None}
    # rank 0's state alone: right for rank 0, not for rank 1, and said so
    assert r0["rank0_only"]["same"] and not r1["rank0_only"]["same"]
    assert "no RNG state per rank" in r1["rank0_only"]["warning"]
    assert "RNG states of 1 ranks and this run has 2" in r0["other_world"]["warning"]
    assert restore_rng({"rng": {"cpu": torch.get_rng_state()}}, 0, 1) is None  # one process: nothing to say


SHARED_EVAL_SCRIPT = """
import json, os, sys
import numpy as np, torch, torch.distributed as dist
from hyenadna import HyenaConfig, HyenaDNALMHeadModel
from hyenadna.training.pretrain import evaluate_nll
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
model = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=66))
windows = np.random.default_rng(0).integers(7, 11, size=(10, 65))  # batches of 4, 4 and 2
calls = []
model.register_forward_hook(lambda *args: calls.append(1))
shared = evaluate_nll(model, windows, batch_size=4, rank=rank, world=world)
n_shared = len(calls)
alone = evaluate_nll(model, windows, batch_size=4)
out = {"shared": shared, "alone": alone, "batches": n_shared}
json.dump(out, open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w"))
dist.barrier()
dist.destroy_process_group()
"""


def test_ranks_share_the_evaluation_and_get_one_processs_nll(tmp_path):
    """Data-parallel pretraining evaluated the held-out windows on rank 0 alone while the other GPUs waited; now
    every rank scores its share of the batches, and the NLL is the one a single process computes, to the bit."""
    script = tmp_path / "eval.py"
    script.write_text(SHARED_EVAL_SCRIPT)
    two_ranks(script, [str(tmp_path)], timeout=300)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["batches"], r1["batches"]) == (2, 1)
    assert r0["shared"] == r1["shared"] == r0["alone"] == r1["alone"]


SLOW_RANK0_SCRIPT = """
import json, os, sys, time
from datetime import timedelta
import torch.distributed as dist
from hyenadna.training import pretrain as p
dist.init_process_group("gloo", timeout=timedelta(seconds=3))  # as NCCL's 10 minutes against a genome's baseline
def slow_baseline(*args, **kwargs):
    time.sleep(8)
    return {"held_out": {"nll": 1.3}}
p.markov_baseline = slow_baseline
r = p.pretrain(p.PretrainConfig(**json.load(open(sys.argv[1]))))
open(os.path.join(sys.argv[2], f"rank{r['rank']}.json"), "w").write(json.dumps(r))
"""


def test_other_ranks_outwait_rank0s_markov_baseline(fasta, tmp_path):
    """Rank 0 alone fits the Markov baseline (280 s on our training DNA) while the others wait: on a group of their own
    with a long timeout, not in DistributedDataParallel's first collective, which the backend's timeout (here 3 s;
    NCCL's default is 10 minutes) would end."""
    cfg = small_cfg(fasta, tmp_path / "run", markov=True, max_steps=2, eval_every=2, ckpt_every=2)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.__dict__))
    script = tmp_path / "slow.py"
    script.write_text(SLOW_RANK0_SCRIPT)
    two_ranks(script, [str(tmp_path / "cfg.json"), str(tmp_path)], timeout=300)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["markov_nll"] == 1.3 and r0["finished"] and r0["param_checksum"] == r1["param_checksum"]


def test_two_nodes_pretrain_and_resume_exactly_with_dropout_on(fasta, tmp_path):
    """A data-parallel run across two nodes (one rank each, on the CPU) stopped after its first step and resumed
    ends where the same run without a stop ends, with dropout on; its checkpoint holds both ranks' generators, and
    the packed form keeps them."""
    from hyenadna.training.portable import unpack_checkpoint

    model = {"d_model": 16, "n_layer": 2, "d_inner": 32, "l_max": 66, "embed_dropout": 0.1, "resid_dropout": 0.1}
    script = tmp_path / "run.py"
    script.write_text(PRETRAIN_SCRIPT)
    runs = {}
    for name, kw, mode in (
        ("straight", {}, "new"),
        ("stopped", {"max_minutes": 0.0}, "new"),
        ("stopped", {}, "resume"),
    ):
        cfg = small_cfg(fasta, tmp_path / name, model=model, **kw)
        (tmp_path / f"{name}-{mode}.json").write_text(json.dumps(cfg.__dict__))
        done = two_nodes([str(script), str(tmp_path / f"{name}-{mode}.json"), mode])
        assert all(rc == 0 for rc, _ in done), "\n".join(err[-3000:] for _, err in done)
        runs[name, mode] = [json.loads((tmp_path / name / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert runs[name, mode][0]["param_checksum"] == runs[name, mode][1]["param_checksum"]
    assert runs["stopped", "new"][0]["step"] == 1 and not runs["stopped", "new"][0]["finished"]
    assert runs["stopped", "resume"][0]["param_checksum"] == runs["straight", "new"][0]["param_checksum"]
    assert losses(tmp_path / "stopped" / "metrics.jsonl") == losses(tmp_path / "straight" / "metrics.jsonl")
    state = load_run_checkpoint(tmp_path / "stopped")
    assert len(state["rng_ranks"]) == 2
    pack_checkpoint(state, tmp_path / "packed")
    unpacked = unpack_checkpoint(tmp_path / "packed")
    for a, b in zip(unpacked["rng_ranks"], state["rng_ranks"], strict=True):
        assert torch.equal(a["cpu"], b["cpu"])


def test_two_nodes_resuming_from_node_local_folders_fail_clearly(fasta, tmp_path):
    """--out on each node's own disk (a relative path from two working folders): only rank 0's node holds the
    checkpoint, so on resume the other rank would start afresh, its optimiser state and step count apart from rank
    0's (before this check the two ended with different weights and exited 0). Every rank stops with an error that
    says why."""
    nodes = (tmp_path / "node0", tmp_path / "node1")
    for node in nodes:
        node.mkdir()
    cfg = small_cfg(fasta, Path("run"), max_minutes=0.0)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.__dict__))
    script = tmp_path / "run.py"
    script.write_text(PRETRAIN_SCRIPT)
    done = two_nodes([str(script), str(tmp_path / "cfg.json"), "new"], cwds=nodes, timeout=300)
    assert all(rc == 0 for rc, _ in done), "\n".join(err[-3000:] for _, err in done)
    assert sum((node / "run" / "checkpoint.pt").exists() for node in nodes) == 1  # rank 0's node only
    done = two_nodes([str(script), str(tmp_path / "cfg.json"), "resume"], cwds=nodes, timeout=300)
    assert all(rc != 0 for rc, _ in done)
    for _, err in done:
        assert "the ranks see different checkpoints" in err and "file system every rank sees" in err, err[-2000:]
        assert "step by rank: " in err


def test_default_precision_is_recorded_and_kept_on_resume(fasta, tmp_path, monkeypatch, capsys):
    """A run left to the default (bf16 unset) records the precision it chose in its checkpoint, and resumes in it on
    a machine that would choose otherwise."""
    set_cpu_bf16(monkeypatch, amx=True)
    first = pretrain(small_cfg(fasta, tmp_path, max_steps=4, max_minutes=0.0))  # stops after step 1
    assert first["step"] == 1
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert json.loads(state["config"])["bf16"] is True
    assert "world size 1; bf16" in capsys.readouterr().err
    set_cpu_bf16(monkeypatch, amx=False)
    assert pretrain(small_cfg(fasta, tmp_path, max_steps=4), resume=True)["finished"]
    assert "world size 1; bf16" in capsys.readouterr().err
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert json.loads(state["config"])["bf16"] is True


def test_cli_records_the_precision_it_resolved(fasta, tmp_path, monkeypatch):
    """The CLI writes the machine's default precision into pretrain_config.json, so the card's command says what ran."""
    from hyenadna.cli import main

    args = ["pretrain", "--fasta", str(fasta), "--d-model", "16", "--seq-len", "64", "--batch-size", "2"]
    args += ["--max-steps", "1", "--no-markov", "--threads", "1", "--eval-region", "1:100000-113000"]
    args += ["--eval-windows", "2"]
    for amx, flag, want in ((True, [], True), (False, [], False), (True, ["--no-bf16"], False)):
        set_cpu_bf16(monkeypatch, amx=amx)
        out = tmp_path / f"run-{amx}-{len(flag)}"
        assert main([*args, "--out", str(out), *flag]) == 0
        assert json.loads((out / "pretrain_config.json").read_text())["bf16"] is want


def test_cli_geometric_filter_bands_warm_start_and_resume(fasta, tmp_path, capsys):
    """pretrain --filter-geometric-bands: the run's model has them (config.json, shapes), a warm start from a model
    without them says it grew the filter inputs, and --resume rebuilds the same model from pretrain_config.json."""
    from hyenadna import HyenaConfig, HyenaDNALMHeadModel, load_model
    from hyenadna.cli import main

    HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=64, l_max=66)).save_pretrained(tmp_path / "src")
    args = ["pretrain", "--fasta", str(fasta), "--d-model", "16", "--seq-len", "64", "--batch-size", "2"]
    args += ["--no-markov", "--threads", "1", "--eval-region", "1:100000-113000", "--eval-windows", "2", "--no-bf16"]
    args += ["--filter-geometric-bands", "3", "--init-from", str(tmp_path / "src"), "--out", str(tmp_path / "run")]
    assert main([*args, "--max-steps", "1"]) == 0
    assert "2 filter input layers grown by 6 zero columns" in capsys.readouterr().err
    model = load_model(tmp_path / "run" / "model")
    assert model.config.filter_geometric_bands == 3
    assert model.backbone.layers[0].mixer.filter_fn.implicit_filter[0].weight.shape == (64, 11)
    # a checkpoint written while the bands' features were stored (rebuilt from the config since) resumes
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    assert not [k for k in state["model"] if k.endswith("pos_emb.z")]
    state["model"].update({k: b for k, b in model.named_buffers() if k.endswith("pos_emb.z")})
    torch.save(state, ckpt)
    assert main(["pretrain", "--out", str(tmp_path / "run"), "--resume", "--max-steps", "2"]) == 0
    assert load_model(tmp_path / "run" / "model").config.filter_geometric_bands == 3


def test_resume_can_switch_precision_and_records_it(fasta, tmp_path, monkeypatch, capsys):
    """--resume --bf16 switches an fp32 run to bf16 from its checkpoint on (it was silently ignored), and
    pretrain_config.json, the checkpoint and the card's steps row say so; --resume alone keeps what it last ran."""
    from hyenadna.cli import main
    from hyenadna.training.export import _changes

    set_cpu_bf16(monkeypatch, amx=False)
    args = ["pretrain", "--fasta", str(fasta), "--d-model", "16", "--seq-len", "64", "--batch-size", "2"]
    args += ["--no-markov", "--threads", "1", "--eval-region", "1:100000-113000", "--eval-windows", "2"]
    args += ["--ckpt-every", "1", "--out", str(tmp_path)]
    assert main([*args, "--max-steps", "2"]) == 0
    assert "without native bf16" not in capsys.readouterr().err  # fp32 by default on such a CPU
    assert main(["pretrain", "--out", str(tmp_path), "--resume", "--max-steps", "3", "--bf16"]) == 0
    err = capsys.readouterr().err
    assert "precision changed at step 2: bf16" in err
    # emulated bf16 is many times slower (0.06x on Zen 1): said once, with the way back to fp32
    assert err.count("warning: bf16 on a CPU without native bf16") == 1 and "--no-bf16 runs it in fp32" in err
    cfg = json.loads((tmp_path / "pretrain_config.json").read_text())
    assert cfg["bf16"] is True and cfg["precision_changes"] == [{"at_step": 2, "bf16": True, "was": False}]
    assert json.loads(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["config"])["bf16"] is True
    assert "; from step 2 in bf16 (before: fp32)" in _changes(cfg)
    assert main(["pretrain", "--out", str(tmp_path), "--resume", "--max-steps", "4"]) == 0
    err = capsys.readouterr().err
    assert "world size 1; bf16" in err and "warning: bf16 on a CPU without native bf16" in err
    assert len(json.loads((tmp_path / "pretrain_config.json").read_text())["precision_changes"]) == 1


def test_resume_refuses_options_the_run_fixed_and_applies_its_intervals(fasta, tmp_path, capsys):
    """--resume used to ignore --lr, --batch-size, --seq-len, the model's shape, ... in silence: now one given with
    another value than the run's is refused with both named; the same value, or a logging/eval/checkpoint interval,
    is fine, and the intervals apply to the resumed process."""
    from hyenadna.cli import main

    args = ["pretrain", "--fasta", str(fasta), "--d-model", "16", "--seq-len", "64", "--batch-size", "2"]
    args += ["--no-markov", "--threads", "1", "--eval-region", "1:100000-113000", "--eval-windows", "2"]
    args += ["--lr", "3e-3", "--out", str(tmp_path)]
    assert main([*args, "--max-steps", "2"]) == 0
    capsys.readouterr()
    resume = ["pretrain", "--out", str(tmp_path), "--resume", "--max-steps", "4"]
    assert main([*resume, "--lr", "1e-3", "--batch-size", "8", "--d-model", "32", "--no-rc"]) == 1
    err = capsys.readouterr().err
    assert "resumes with the settings it started with, and these differ: --d-model 32 (the run has 16); " in err
    assert "--batch-size 8 (the run has 2); --lr 0.001 (the run has 0.003); --no-rc (the run started without it)" in err
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 2  # nothing ran
    assert main([*args, *resume[1:], "--eval-every", "1"]) == 0  # the run's own values again: accepted
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "eval"][-2:] == [3, 4]  # --eval-every 1 applied
    # the same FASTA file found elsewhere (another machine): read from there, and recorded; another file: refused
    moved = tmp_path.parent / f"{tmp_path.name}-genome" / fasta.name
    moved.parent.mkdir()
    shutil.copy(fasta, moved)
    assert main([*resume[:-1], "5", "--fasta", str(moved)]) == 0
    assert f"reading the genome from {moved} (the run began with {fasta})" in capsys.readouterr().err
    assert json.loads((tmp_path / "pretrain_config.json").read_text())["fasta"] == [str(moved)]
    other = moved.with_name("other.fa")
    shutil.copy(fasta, other)
    assert main([*resume[:-1], "6", "--fasta", str(other)]) == 1
    assert f"--fasta {other} (the run has {moved})" in capsys.readouterr().err


def test_sequence_length_stages_and_bf16(fasta, tmp_path):
    cfg = small_cfg(fasta, tmp_path, stages=[[2, 16, 8], [4, 32, 4]], max_steps=5, bf16=True, eval_every=5)
    assert cfg.stage(0) == (16, 8) and cfg.stage(3) == (32, 4) and cfg.stage(4) == (64, 4)
    result = pretrain(cfg)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["seq_len"] for r in train] == [16, 16, 32, 32, 64]
    assert result["tokens_seen"] == 16 * 8 * 2 + 32 * 4 * 2 + 64 * 4
    assert all(np.isfinite(r["loss"]) for r in train)


def test_training_windows_far_shorter_than_the_filters_reach_are_pointed_out(fasta, tmp_path, capsys):
    """A schedule whose windows never reach half of l_max leaves the far filter taps untrained (and a warm-started
    model loses skill there: docs/pretraining/16k-d256-l3-geo16), so the run says so; a last stage of long windows,
    or windows as long as the grid, do not trigger it. A stage that never runs does not count."""
    assert small_cfg(fasta, tmp_path, stages=[[2, 16, 8], [4, 32, 4]], max_steps=5).longest_window() == 64
    assert small_cfg(fasta, tmp_path, stages=[[2, 16, 8], [9, 32, 4]], max_steps=5).longest_window() == 32
    assert small_cfg(fasta, tmp_path, stages=[[0, 128, 8]], max_steps=5).longest_window() == 64
    short = small_cfg(fasta, tmp_path / "short", seq_len=16, max_steps=1, eval_every=1)
    short.model = {**short.model, "l_max": 130}
    pretrain(short)
    assert "no training window is longer than 16 tokens, under half of l_max 130" in capsys.readouterr().err
    pretrain(small_cfg(fasta, tmp_path / "long", max_steps=1, eval_every=1))
    staged = small_cfg(fasta, tmp_path / "staged", seq_len=64, stages=[[1, 16, 4]], max_steps=2, eval_every=2)
    staged.model = {**staged.model, "l_max": 130}
    pretrain(staged)
    assert "no training window" not in capsys.readouterr().err


def test_export_writes_model_card(fasta, tmp_path):
    from hyenadna import HyenaDNA, HyenaDNAConfig
    from hyenadna.training.export import export_run

    cfg = small_cfg(fasta, tmp_path / "run", markov=True, max_steps=3)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "pretrain_config.json").write_text(json.dumps(cfg.__dict__))
    pretrain(cfg)
    dest = export_run(tmp_path / "run", tmp_path / "model", "toy-model")
    card = (dest / "README.md").read_text()
    assert "# toy-model" in card and "Markov baseline" in card and "| steps | 3 of 3 |" in card
    assert "| training regions | 1:0-100000 (0-based" in card  # the real intervals, held-out region removed
    assert json.loads((tmp_path / "run" / "regions.json").read_text())["evaluation"] == ["1:100000-113000"]
    assert (dest / "loss_curve.png").stat().st_size > 1000
    # nothing borrowed from the bundled model's card: the run's own shape, data, chromosomes and command
    assert "shipped inside the package" not in card and "chrX" not in card and "two chromosomes" not in card
    assert "d_model 16, 2 layers, d_inner 32, l_max 66 |" in card and "1 chromosome (1)" in card
    assert f"hyenadna pretrain --fasta {fasta}" in card and "--d-model 16" in card and "--seq-len 64" in card
    assert 'HyenaDNAConfig(model_name="toy-model")' in card and "HyenaDNA()  #" not in card
    bundled = (export_run(tmp_path / "run", tmp_path / "b", "toy-model", bundled=True) / "README.md").read_text()
    assert "shipped inside the package (" in bundled and "default model" not in bundled  # bundled, not the default
    assert 'HyenaDNAConfig(model_name="toy-model")' in bundled
    from hyenadna.hub import BUNDLED_MODEL

    default = (export_run(tmp_path / "run", tmp_path / "c", BUNDLED_MODEL, bundled=True) / "README.md").read_text()
    assert "shipped inside the package as its default model" in default and "HyenaDNA()  #" in default
    emb = HyenaDNA(HyenaDNAConfig(model_path=dest, pooling="mean")).get_embeddings("ACGTACGT")
    assert emb.shape == (1, 16)
    # an evaluation's card sections bring their plots from beside the evaluation's JSON
    nll = {"nll": 1.5, "bits_per_base": 2.1, "perplexity": 4.5}
    evaluation = {"model_nll": nll, "card_sections": ["## Bands\n\n![NLL by position](position_nll.png)"]}
    with pytest.raises(ValueError, match=r"position_nll\.png"):
        export_run(tmp_path / "run", tmp_path / "d", "toy-model", evaluation)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "position_nll.png").write_bytes(b"plot")
    dest = export_run(tmp_path / "run", tmp_path / "d", "toy-model", evaluation, evaluation_dir=tmp_path / "eval")
    assert (dest / "position_nll.png").read_bytes() == b"plot" and "![NLL by position]" in (
        dest / "README.md"
    ).read_text()
    # what is not a run, or not yet one, and an --evaluation that is not evaluate's report, are named as such
    from hyenadna.cli import main

    with pytest.raises(ValueError, match=r"model is not a pretraining run: pretrain_config.json is missing"):
        export_run(tmp_path / "model", tmp_path / "e", "toy-model")  # a model folder given as the run
    young = tmp_path / "young"
    young.mkdir()
    for f in ("pretrain_config.json", "metrics.jsonl"):
        shutil.copy(tmp_path / "run" / f, young / f)
    with pytest.raises(ValueError, match=r"young has no model/ yet: a run writes it with its first checkpoint"):
        export_run(young, tmp_path / "e", "toy-model")
    (tmp_path / "not.json").write_text(">a\nACGT\n")
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "e"), "--evaluation", str(tmp_path / "not.json")]) == 1
    assert not (tmp_path / "e").exists()


def test_export_of_a_warm_started_run_counts_its_parent_runs(fasta, tmp_path, capsys):
    """A model's card tells its whole training: the tokens and CPU hours of the runs it was warm-started from
    (--parent, oldest first) are counted with its own; without them the card counts this run only."""
    from hyenadna.cli import main
    from hyenadna.training.export import _cpu_hours, _lineage, export_run, read_run

    parent = small_cfg(fasta, tmp_path / "parent", max_steps=3)
    child = small_cfg(fasta, tmp_path / "child", max_steps=6, init_from=str(tmp_path / "parent" / "model"))
    for cfg in (parent, child):
        Path(cfg.out_dir).mkdir()
        (Path(cfg.out_dir) / "pretrain_config.json").write_text(json.dumps(cfg.__dict__))  # as the CLI writes it
        pretrain(cfg)
    p, c = read_run(tmp_path / "parent"), read_run(tmp_path / "child")
    assert (p["tokens"], c["tokens"], p["steps"]) == (3 * 4 * 64, 6 * 4 * 64, 3)
    train = [r for r in c["rows"] if r["kind"] == "train"]
    assert c["cpu_hours"] == pytest.approx(train[-1]["wall_time"] / 3600)  # one thread: thread-hours = wall hours
    alone = (export_run(tmp_path / "child", tmp_path / "m1", "toy") / "README.md").read_text()
    assert "it saw 1,536 tokens" in alone and "| tokens seen | 1,536 |" in alone
    assert main(["export", str(tmp_path / "child"), str(tmp_path / "m2"), "--parent", str(tmp_path / "parent")]) == 0
    card = (tmp_path / "m2" / "README.md").read_text()
    assert "it saw 2,304 tokens" in card and "hours on CPU (with the runs it was warm-started from)" in card
    assert "| tokens seen | 2,304 in all: 768 in parent (3 steps), then 1,536 in this run (warm-started) |" in card
    assert "| compute | ~0.0 CPU hours in all (parent 0.0, this run 0.0; thread-hours" in card  # seconds, here
    # a row's wall time counts once per thread it ran on, and each run's hours add up
    rows = [{"wall_time": 1800.0, "threads": 2}, {"wall_time": 5400.0, "threads": 1}]
    assert _cpu_hours({"device": "cpu"}, rows) == pytest.approx(2.0)
    runs = [
        {"name": "a", "tokens": 10, "steps": 1, "cpu_hours": 3.5},
        {"name": "b", "tokens": 5, "steps": 2, "cpu_hours": 1.2},
    ]
    total, tokens, compute = _lineage({"tokens": 7, "cpu_hours": 4.7}, runs)
    assert (
        total == 22
        and tokens == "22 in all: 10 in a (1 steps), then 5 in b (2 steps), then 7 in this run (warm-started)"
    )
    assert compute.startswith("~9.4 CPU hours in all (a 3.5, b 1.2, this run 4.7;")
    with pytest.raises(ValueError, match=r"not a pretraining run: pretrain_config\.json is missing"):
        export_run(tmp_path / "child", tmp_path / "m3", "toy", parents=[tmp_path / "parent" / "model"])


def test_model_over_the_shard_limit_is_written_and_exported_in_shards(fasta, tmp_path, monkeypatch):
    """A run's model/ holds files a git repository can take, as its packed checkpoint does; the export and a bundled
    copy keep them so, and load to the same model."""
    import hyenadna.training.export as export
    import hyenadna.training.pretrain as pretrain_module
    from hyenadna import load_model
    from hyenadna.models.checkpoint import SHARD_INDEX, weight_files

    limit = 20_000  # the toy model's ~60 kB of weights in a few shards
    monkeypatch.setattr(pretrain_module, "MAX_SHARD_BYTES", limit)
    monkeypatch.setattr(export, "MAX_SHARD_BYTES", limit)
    cfg = small_cfg(fasta, tmp_path / "run", max_steps=3)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "pretrain_config.json").write_text(json.dumps(cfg.__dict__))
    pretrain(cfg)
    files = weight_files(tmp_path / "run" / "model")
    assert (
        files[0].name == SHARD_INDEX
        and len(files) > 2
        and not (tmp_path / "run" / "model" / "model.safetensors").exists()
    )
    dest = export.export_run(tmp_path / "run", tmp_path / "b", "toy-model", bundled=True)
    assert [f.name for f in weight_files(dest)] == [f.name for f in files]
    ids = torch.tensor([[7, 8, 9, 10, 7, 8]])
    with torch.no_grad():
        assert torch.equal(load_model(dest)(ids).logits, load_model(tmp_path / "run" / "model")(ids).logits)
    monkeypatch.setattr(export, "MAX_BUNDLED_BYTES", limit)  # the total, not each file, is what a bundle may hold
    with pytest.raises(ValueError, match="a bundled model must be at most"):
        export.export_run(tmp_path / "run", tmp_path / "c", "toy-model", bundled=True)


def test_sigterm_checkpoints_and_resume_finishes(fasta, tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "hyenadna.cli",
        "pretrain",
        "--fasta",
        str(fasta),
        "--out",
        str(out),
        "--d-model",
        "16",
        "--seq-len",
        "64",
        "--batch-size",
        "4",
        "--max-steps",
        "100000",
        "--eval-every",
        "100000",
        "--ckpt-every",
        "100000",
        "--log-every",
        "1",
        "--no-markov",
        "--threads",
        "1",
        "--eval-region",
        "1:100000-113000",
        "--eval-windows",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]  # checkpointed, and still reported as terminated
    assert "stopping at step" in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    stopped = state["step"]
    assert 5 <= stopped < 100000
    from hyenadna.models.hyena_dna import load_model

    exported = load_model(out / "model").state_dict()  # model/ holds the weights the checkpoint holds
    assert all(torch.equal(exported[k], v) for k, v in state["model"].items() if k in exported)
    moved = tmp_path / "elsewhere" / "run"  # a run copied to another path (or machine) continues where it now is
    moved.parent.mkdir()
    out.rename(moved)
    pack = [*cmd[:4], "--out", str(moved), "--pack-checkpoint"]
    packed = subprocess.run(pack, env=env, capture_output=True, text=True)
    assert packed.returncode == 0 and "packed" in packed.stderr, packed.stderr[-2000:]
    assert json.loads((moved / "checkpoint" / "state.json").read_text())["step"] == stopped
    resumed = subprocess.run(
        [*cmd[:4], "--out", str(moved), "--resume", "--max-steps", str(stopped + 3), "--stages", f"{stopped + 2}:32:8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert losses(moved / "metrics.jsonl")[-1][0] == stopped + 3
    # the shortened schedule and the new warm-up stage are recorded with the step they took effect at, and ran
    saved = json.loads((moved / "pretrain_config.json").read_text())
    assert saved["max_steps"] == stopped + 3 and saved["stages"] == [[stopped + 2, 32, 8]]
    assert saved["schedule_changes"] == [
        {
            "at_step": stopped,
            "max_steps": stopped + 3,
            "stages": [[stopped + 2, 32, 8]],
            "was": {"max_steps": 100000, "stages": []},
        }
    ]
    rows = [json.loads(x) for x in (moved / "metrics.jsonl").read_text().splitlines()]
    shapes = {r["step"]: (r["seq_len"], r["batch_size"]) for r in rows if r.get("kind") == "train"}
    assert shapes[stopped + 1] == (32, 8) and shapes[stopped + 3] == (64, 4)
    assert not out.exists()


def test_gradient_accumulation_counts_tokens(fasta, tmp_path):
    result = pretrain(small_cfg(fasta, tmp_path, grad_accum=2, max_steps=2, eval_every=2))
    assert result["tokens_seen"] == 2 * 2 * 4 * 64


def test_model_card_tells_schedule_changes_and_tokens_per_cpu_hour():
    from hyenadna.training.export import _changes, _per_cpu_hour

    cfg = {
        "schedule_changes": [
            {"at_step": 994, "max_steps": 2000, "stages": [[1080, 1024, 16]], "was": {"max_steps": 4000, "stages": []}}
        ],
        "threads": 1,
        "device": "cpu",
    }
    text = _changes(cfg)
    assert "at step 994 the schedule changed from 4,000 to 2,000 steps (stages: 16 x 1024 until step 1,080)" in text
    assert _changes({}) == ""
    ended = {
        "at_step": 1892,
        "max_steps": 1892,
        "stages": [[1080, 1024, 16]],
        "was": {"max_steps": 2000, "stages": [[1080, 1024, 16]]},
    }
    assert _changes({"schedule_changes": [ended]}) == "; ended at step 1,892 of the 2,000 planned"
    rows = [{"tokens_per_s": 3000.0}] * 3  # written before rows carried their threads: the config's count
    assert _per_cpu_hour(cfg, rows) == " on 1 thread: 10.8M tokens per CPU hour"
    assert _per_cpu_hour({**cfg, "threads": 2}, rows).endswith(": 5.4M tokens per CPU hour")
    assert _per_cpu_hour({**cfg, "device": "cuda"}, rows) == ""
    # a run resumed on 2 threads after 1: each row counts its own threads, whatever the config kept last
    mixed = [{"tokens_per_s": 3000.0, "threads": 1}] * 3 + [{"tokens_per_s": 5000.0, "threads": 2}] * 2
    assert _per_cpu_hour({**cfg, "threads": 2}, mixed) == " on 1/2 threads: 10.8M tokens per CPU hour"


def test_an_early_stop_leaves_model_matching_the_checkpoint_and_a_run_can_be_ended_where_it_stands(fasta, tmp_path):
    out = tmp_path / "run"
    stopped = pretrain(small_cfg(fasta, out, max_steps=6, max_minutes=0.0))  # the time budget: stops after step 1
    assert stopped["step"] == 1 and not stopped["finished"]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    from hyenadna.models.hyena_dna import load_model

    exported = load_model(out / "model").state_dict()
    assert all(torch.equal(exported[k], v) for k, v in state["model"].items() if k in exported)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [1]  # evaluated where the budget stopped it
    # ending the run where it stands: --max-steps at the checkpoint's step evaluates and exports once, trains nothing
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["kind"] == "train"))
    ended = pretrain(small_cfg(fasta, out, max_steps=1), resume=True)
    assert ended["finished"] and ended["step"] == 1 and ended["param_checksum"] == stopped["param_checksum"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [1]
    pretrain(small_cfg(fasta, out, max_steps=1), resume=True)  # again: nothing new
    assert len((out / "metrics.jsonl").read_text().splitlines()) == len(rows)


def test_cpu_training_steps_keep_freed_memory_for_the_next_step(fasta, tmp_path, monkeypatch):
    """On the CPU the step loop runs inside reuse_freed_memory (1.19x a bf16 step at 16k tokens, README) unless
    asked not to, and the allocator's defaults are back once the run returns."""
    import contextlib

    import hyenadna.training.pretrain as pretrain_module
    from hyenadna.utils import memory

    calls, active = [], []
    real = memory.reuse_freed_memory

    @contextlib.contextmanager
    def recording(enabled=True):
        calls.append(enabled)
        with real(enabled):
            active.append(memory._depth)
            yield

    monkeypatch.setattr(pretrain_module, "reuse_freed_memory", recording)
    assert pretrain(small_cfg(fasta, tmp_path, max_steps=2, eval_every=2, ckpt_every=2))["finished"]
    assert calls == [True]
    if memory.available():
        assert active == [1]
    assert memory._depth == 0
    # --no-keep-freed-memory: the least memory (with gradient checkpointing at long windows, README)
    quiet = small_cfg(fasta, tmp_path / "b", max_steps=2, eval_every=2, ckpt_every=2, keep_freed_memory=False)
    assert pretrain(quiet)["finished"]
    assert calls == [True, False]
    assert memory._depth == 0
