"""NLL by position, with the whole window and with the context cut short (training/context.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyenadna import HyenaConfig, HyenaDNALMHeadModel
from hyenadna.training.context import band_means, plot_position_curves, position_nll, repeat_lookup, target_nll
from hyenadna.training.pretrain import evaluate_nll


@pytest.fixture
def model():
    torch.manual_seed(0)
    return HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=66)).eval()


def test_whole_window_curve_averages_to_the_held_out_nll(model):
    windows = np.random.default_rng(0).integers(7, 11, (3, 41))
    curve = position_nll(model, windows, batch_size=2)
    assert curve.shape == (40,)
    assert curve.mean() == pytest.approx(evaluate_nll(model, windows, batch_size=2), rel=1e-5)


def test_cut_context_scores_each_target_once_with_at_most_that_context(model):
    windows = np.random.default_rng(1).integers(7, 11, (2, 38))
    c, half = 8, 4
    curve = position_nll(model, windows, batch_size=2, context=c)
    # brute force: target p (1-based) is read from the piece starting at s(p), with p - s(p) tokens of context
    expected = np.zeros(37)
    with torch.no_grad():
        for p in range(1, 38):
            s = 0 if p <= c else half * ((p - 1) // half - 1)
            assert p <= c or half < p - s <= c
            w = torch.from_numpy(windows)
            logits = model(w[:, s:p]).logits[:, -1].float()
            expected[p - 1] = torch.nn.functional.cross_entropy(logits, w[:, p], reduction="mean").item()
    np.testing.assert_allclose(curve, expected, rtol=1e-5, atol=1e-6)
    # the first C targets are the same as with the whole window; later ones differ (less context)
    whole = position_nll(model, windows, batch_size=2)
    np.testing.assert_allclose(curve[:c], whole[:c], rtol=1e-5, atol=1e-6)
    assert not np.allclose(curve[c:], whole[c:])
    with pytest.raises(ValueError, match="even"):
        position_nll(model, windows, context=7)


def test_target_nll_keeps_each_windows_own_row(model):
    windows = np.random.default_rng(2).integers(7, 11, (3, 30))
    for context in (None, 8):
        rows = target_nll(model, windows, batch_size=2, context=context)
        assert rows.shape == (3, 29)
        for i in range(3):
            np.testing.assert_allclose(rows[i], target_nll(model, windows[i : i + 1], context=context)[0], rtol=1e-5)
        np.testing.assert_allclose(rows.mean(0), position_nll(model, windows, context=context), rtol=1e-6)


def test_repeat_lookup_finds_the_last_earlier_occurrence_and_what_followed_it():
    from hyenadna.tokenizer import CharacterTokenizer

    w = CharacterTokenizer().encode_bases("ACGTTACGAACGC").astype(np.int64)
    distance, copied = repeat_lookup(w, 3)
    # "ACG" ends at 2, 7 and 11: the target after index 7 copies w[3] (T) from 5 back; after 11, w[8] (A) from 4
    assert distance[7] == 5 and copied[7] == w[3]
    assert distance[11] == 4 and copied[11] == w[8]
    assert (distance[[0, 1, 2, 3, 4, 5, 6, 8, 9, 10]] == 0).all() and (copied[distance == 0] == -1).all()


def test_cut_context_start_is_where_each_targets_piece_begins(model):
    from hyenadna.training.context import cut_context_start

    windows = np.random.default_rng(4).integers(7, 11, (1, 30))
    cut = target_nll(model, windows, context=8)[0]
    starts = cut_context_start(np.arange(1, 30), 8)
    with torch.no_grad():
        for p, s in zip(range(1, 30), starts, strict=True):  # target p read from its piece's start gives its NLL
            w = torch.from_numpy(windows)
            logits = model(w[:, s:p]).logits[:, -1].float()
            expected = torch.nn.functional.cross_entropy(logits, w[:, p]).item()
            assert cut[p - 1] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_repeat_lookup_matches_brute_force_and_skips_n():
    rng = np.random.default_rng(3)
    w = rng.integers(7, 11, 400)
    w[[50, 51, 200]] = 11  # N
    for k in (2, 4):
        distance, copied = repeat_lookup(w, k)
        for j in range(len(w) - 1):
            kmer = w[j - k + 1 : j + 1] if j >= k - 1 else None
            earlier = (
                []
                if kmer is None or (kmer == 11).any()
                else [i for i in range(k - 1, j) if (w[i - k + 1 : i + 1] == kmer).all()]
            )
            assert distance[j] == (j - earlier[-1] if earlier else 0)
            assert copied[j] == (w[earlier[-1] + 1] if earlier else -1)


def test_bands_and_plot(tmp_path):
    curve = np.concatenate([np.full(1023, 2.0), np.full(3072, 1.5), np.full(300, 1.0)])
    assert band_means(curve) == {"0-1k": 2.0, "1k-4k": 1.5, "4k-16k": 1.0}
    assert band_means(curve[:4196]) == {"0-1k": 2.0, "1k-4k": 1.5}  # 100 targets at 4k+: too few to report
    plot_position_curves({"a": curve, "b": curve + 0.1}, str(tmp_path / "c.png"), "t")
    assert (tmp_path / "c.png").stat().st_size > 5000


def test_filter_reach_shares_the_energy_of_each_layers_filter_by_lag(model, tmp_path):
    from hyenadna.training.context import filter_reach, plot_filter_reach

    reach = filter_reach(model, edges=(4, 16))
    assert len(reach) == model.config.n_layer
    for layer, block in zip(reach, model.backbone.layers, strict=True):
        h = block.mixer.filter_fn.filter(layer["l_max"]).detach()
        assert list(layer["energy_share"]) == ["0-4", "4-16", f"16-{layer['l_max']}"]
        assert sum(layer["energy_share"].values()) == pytest.approx(1.0)
        energy = (h**2).sum(0)
        assert layer["energy_share"]["0-4"] == pytest.approx(float(energy[:4].sum() / energy.sum()), rel=1e-5)
        assert layer["rms"].shape == (layer["l_max"],)
        assert layer["rms"][5] == pytest.approx(float(h[:, 5].pow(2).mean().sqrt()), rel=1e-5)
    plot_filter_reach({"m": reach}, str(tmp_path / "reach.png"), "t")
    assert (tmp_path / "reach.png").stat().st_size > 5000


def test_context_length_sweep_scores_the_same_targets_at_every_cut(model, monkeypatch):
    """benchmarks/context_length.py: each cut's per-window mean is over targets ``first``.. only, batching the pieces
    across windows changes nothing, and the whole window is the uncut score."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "context_length.py"
    spec = importlib.util.spec_from_file_location("context_length", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "TOKENS_PER_CALL", 40)  # several windows per call at the short cut, one at the long
    windows = np.random.default_rng(3).integers(7, 11, (4, 41))
    out = mod.sweep(model, windows, first=20, cuts=[4, 16, None])
    assert list(out) == ["4", "16", "whole"]
    for key, c in (("4", 4), ("16", 16), ("whole", None)):
        one_by_one = target_nll(model, windows, batch_size=1, context=c)[:, 19:].mean(1)
        assert out[key].shape == (4,)
        np.testing.assert_allclose(out[key], one_by_one, rtol=1e-5)
    assert mod.l_max(model) == 66
    assert not np.allclose(out["4"], out["whole"])  # the cut does cut


def test_evaluate_cli_sweeps_several_cut_contexts_and_refuses_bad_ones(tmp_path, capsys):
    """`hyenadna evaluate --by-position --cut-context A B ...`: one band report per cut beside the whole window, each
    the mean of position_nll on the same windows; an odd cut is a usage error, one longer than l_max a clear error
    before any work."""
    import json

    from hyenadna.cli import main
    from hyenadna.data.genome import Genome
    from hyenadna.sdk import HyenaDNAConfig, build_model
    from hyenadna.training.pretrain import PretrainConfig, training_intervals
    from hyenadna.training.windows import fixed_windows
    from tests.conftest import write_fasta

    rng = np.random.default_rng(4)
    fasta = write_fasta(tmp_path / "toy.fa", "chr1 toy", "".join(rng.choice(list("ACGT"), 20_000)))
    region = ["1:10000-20000"]
    args = ["evaluate", "--fasta", str(fasta), "--eval-region", *region, "--windows", "2", "--seq-len", "128"]
    args += ["--no-markov", "--threads", "1", "--by-position", "--quiet"]
    out = tmp_path / "eval.json"
    assert main([*args, "--cut-context", "32", "8", "-o", str(out), "--plot", str(tmp_path / "p.png")]) == 0
    report = json.loads(out.read_text())["by_position"]
    assert {"full", "context_8", "context_32"} <= set(report) and (tmp_path / "p.png").stat().st_size > 0

    model = build_model(HyenaDNAConfig())[0]  # the bundled model, as the command used
    genome = Genome.from_fasta([str(fasta)])
    _, evaluation = training_intervals(PretrainConfig(fasta=[str(fasta)], out_dir="", eval_region=region), genome)
    windows = fixed_windows(genome, evaluation, 2, 129)
    for key, context in (("full", None), ("context_8", 8), ("context_32", 32)):
        assert report[key]["mean"] == pytest.approx(position_nll(model, windows, context=context).mean(), rel=1e-5)
    assert report["context_8"]["mean"] != pytest.approx(report["context_32"]["mean"], rel=1e-6)
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--cut-context", "64", "7"])
    assert exit_info.value.code == 2 and "7 is odd" in capsys.readouterr().err
    assert main([*args, "--seq-len", "2048", "--cut-context", "2048"]) == 1
    assert "--cut-context 2048 is longer than the model reads (l_max 1026)" in capsys.readouterr().err


def test_paired_nll_differences_are_window_by_window(model):
    """benchmarks/paired_nll.py: each window's score is its held-out NLL, and the comparison pairs the windows: a model
    against itself differs by exactly 0, and against another the mean and standard error are those of the per-window
    differences, not of the two means."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_nll.py"
    spec = importlib.util.spec_from_file_location("paired_nll", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    windows = np.random.default_rng(5).integers(7, 11, (5, 41))
    a = mod.window_nll(model, windows)
    assert a.shape == (5,)
    for i in range(5):
        assert a[i] == pytest.approx(evaluate_nll(model, windows[i : i + 1], batch_size=1), rel=1e-5)
    same = mod.paired(a, a)
    assert same["a_minus_b"] == 0 and same["se"] == 0 and same["a_lower_in"] == 0
    torch.manual_seed(1)
    other = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=66)).eval()
    b = mod.window_nll(other, windows)
    r = mod.paired(a, b)
    d = a - b
    assert r["a_minus_b"] == pytest.approx(d.mean()) and r["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(5))
    assert r["a_lower_in"] == int((d < 0).sum()) and r["windows"] == 5 and r["se"] > 0


def test_evaluate_names_what_its_regions_lack(tmp_path, capsys):
    """Windows longer than the held-out region, and --include over it, are refused in the command's own terms (not
    the sampler's "no training interval", nor pretrain's --force-overlap, a flag evaluate does not have)."""
    from hyenadna.cli import main
    from tests.conftest import write_fasta

    rng = np.random.default_rng(5)
    fasta = write_fasta(tmp_path / "toy.fa", "chr1 toy", "".join(rng.choice(list("ACGT"), 20_000)))
    args = ["evaluate", "--fasta", str(fasta), "--eval-region", "1:10000-20000", "--windows", "2", "--no-markov"]
    assert main([*args, "--seq-len", "20000"]) == 1
    err = capsys.readouterr().err
    assert (
        "the evaluation windows take 20,001 bases and the longest evaluation interval (1:10000-20000) has 10,000" in err
    )
    assert main([*args, "--include", "1:0-15000"]) == 1
    err = capsys.readouterr().err
    assert "overlap the held-out evaluation region (1:10000-20000) by 5,000 bases; leave it out of --include" in err
    assert "--force-overlap" not in err
    with pytest.raises(SystemExit):  # an empty --eval-region was max()'s "arg is an empty sequence"
        main(["evaluate", "--fasta", str(fasta), "--eval-region"])
    assert "argument --eval-region: expected at least one argument" in capsys.readouterr().err
