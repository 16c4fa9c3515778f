"""The bundled pretrained model: the default of the SDK and the CLI, loaded offline, with its model card."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hyenadna import HyenaDNA, HyenaDNAConfig, HyenaDNAFineTuningModel
from hyenadna.cli import main
from hyenadna.data.genome import Genome
from hyenadna.data.regions import HELD_OUT
from hyenadna.hub import BUNDLED_DIR, BUNDLED_MODEL, bundled_models
from hyenadna.models.checkpoint import weight_files
from hyenadna.training.pretrain import evaluate_nll
from hyenadna.training.windows import fixed_windows
from tests.conftest import REPO, SHARED

FOLDER = BUNDLED_DIR / BUNDLED_MODEL


def test_bundled_files_fit_a_repository():
    """Every file of every bundled model under the 10 MB a repository file may take (larger weights in shards), and
    at most 16 MiB of weights per model."""
    assert BUNDLED_MODEL in bundled_models()
    for name in bundled_models():
        folder = BUNDLED_DIR / name
        assert all(f.stat().st_size <= 10 * 1024 * 1024 for f in folder.iterdir()), name
        assert sum(f.stat().st_size for f in weight_files(folder)) <= 16 * 1024 * 1024, name
        assert (folder / "README.md").is_file(), name


def test_bundled_files_and_model_card():
    assert (FOLDER / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    card = (FOLDER / "README.md").read_text()
    for needle in ("Markov baseline", "tokens seen", "wall time", "20:32000000-63025520", "Licence"):
        assert needle in card


def test_default_model_is_the_bundled_one():
    model = HyenaDNA()
    assert BUNDLED_MODEL in model.source and "RANDOM" not in model.source
    assert model.context_length == 1026 and model.embedding_dim == 256
    emb = model.get_embeddings(model.process_data("ACTG" * 1024))
    assert emb.shape == (1, 4096, 256)


def test_bundled_model_is_pretrained_on_held_out_dna():
    genome = Genome.from_fasta([SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"])
    windows = fixed_windows(genome, [HELD_OUT], 8, 1025)
    nll = evaluate_nll(HyenaDNA().model, windows)
    assert nll < 1.35  # a random model scores about 2.5 nats/base; the card reports the full evaluation


def test_fine_tuning_model_card_example_uses_the_bundled_model():
    ft = HyenaDNAFineTuningModel(HyenaDNAConfig(device="cpu", batch_size=10), "classification", 2)
    assert BUNDLED_MODEL in ft.source
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 50)) for _ in range(20)]
    ft.train(ft.process_data(seqs), [i % 2 for i in range(20)], epochs=1)
    assert ft.predict(seqs)[1].shape == (20, 2)


def test_cli_defaults_to_the_bundled_model(tmp_path, capsys):
    out = tmp_path / "e.npz"
    assert main(["embed", str(REPO / "hyenadna" / "examples" / "example.fa"), "-o", str(out)]) == 0
    assert np.load(out)["embeddings"].shape == (5, 256)
    assert BUNDLED_MODEL in capsys.readouterr().err
    assert main(["info"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] == 1_641_088


LONG = "hyenadna-tiny-16k-d256-grch37"
LONG_MODELS = [n for n in bundled_models() if json.loads((BUNDLED_DIR / n / "config.json").read_text())["l_max"] > 1026]


def test_the_long_context_models_are_bundled():
    assert LONG in LONG_MODELS and len(LONG_MODELS) == 2, LONG_MODELS


@pytest.mark.parametrize("name", LONG_MODELS)
def test_long_context_model_loads_by_name_offline_with_its_card(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = BUNDLED_DIR / name
    assert sum(f.stat().st_size for f in weight_files(folder)) <= 16 * 1024 * 1024
    card = (folder / "README.md").read_text()
    for needle in ("Does it use its long context?", "4k-16k", "tokens per CPU hour", "loss curve", "Licence"):
        assert needle in card
    for image in ("loss_curve.png", "position_nll.png"):
        assert f"({image})" in card and (folder / image).stat().st_size > 5000
    model = HyenaDNA(HyenaDNAConfig(model_name=name))
    assert name in model.source and model.context_length == 16386 and model.embedding_dim == 256
    genome = Genome.from_fasta([SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"])
    assert evaluate_nll(model.model, fixed_windows(genome, [HELD_OUT], 4, 1025)) < 1.35
    whole = evaluate_nll(model.model, fixed_windows(genome, [HELD_OUT], 1, 16385))  # one window, whole context
    assert whole < 1.35
