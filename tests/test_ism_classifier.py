"""In-silico mutagenesis of a fine-tuned model's prediction: each effect is the change of the model's own output on
the mutated sequence, and a classifier trained on GC content gets a map that points at GC."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel
from hyenadna.cli import main
from hyenadna.ism import BASES, IsmResult, plot_ism
from tests.conftest import FIXTURES, write_fasta
from tests.test_finetune import gc_task


def log_odds(outputs: np.ndarray, target: int) -> np.ndarray:
    """log p(target) - log(1 - p(target)) from logits, the plain way."""
    z = outputs.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return np.log(p[:, target]) - np.log1p(-p[:, target])


def mutate(seq: str, i: int, base: str) -> str:
    return seq[:i] + base + seq[i + 1 :]


@pytest.mark.parametrize("rc_average", [False, True], ids=["forward", "both strands"])
def test_each_effect_is_the_change_of_the_prediction_on_the_mutated_sequence(gc_classifier, rc_average):
    seq = gc_task(1, seed=7, length=60)[0][0]
    seq = seq[:20] + "N" + seq[21:]
    result = gc_classifier.mutagenesis(seq, target=1, rc_average=rc_average)
    assert result.effect.shape == (60, 4) and result.measure == "delta_log_odds" and result.target == "class 1"
    base = log_odds(gc_classifier.get_outputs([seq], rc_average), 1)[0]
    for i in (0, 5, 33, 59):
        for b, alt in enumerate(BASES):
            if alt == seq[i]:
                assert np.isnan(result.effect[i, b])
                continue
            one = log_odds(gc_classifier.get_outputs([mutate(seq, i, alt)], rc_average), 1)[0]
            assert result.effect[i, b] == pytest.approx(one - base, abs=2e-5)
    assert np.isnan(result.effect[20]).all()  # N is left as it is
    assert np.isfinite(result.effect).sum() == 59 * 3


def test_a_gc_classifier_map_points_at_gc(gc_classifier):
    """For the GC-rich class, changing A or T to G or C raises the log-odds and the reverse lowers it; the other
    class's map is its exact negative (two classes: log-odds of one is minus the other's)."""
    seq = gc_task(2, seed=3)[0][1]  # a GC-rich sequence, 100 bases
    gc = gc_classifier.mutagenesis(seq, target=1)
    at_to_gc = [gc.effect[i, b] for i, r in enumerate(seq) for b, a in enumerate(BASES) if r in "AT" and a in "GC"]
    gc_to_at = [gc.effect[i, b] for i, r in enumerate(seq) for b, a in enumerate(BASES) if r in "GC" and a in "AT"]
    assert np.mean(at_to_gc) > 0 > np.mean(gc_to_at)
    assert np.mean(np.array(at_to_gc) > 0) > 0.75 and np.mean(np.array(gc_to_at) < 0) > 0.75
    other = gc_classifier.mutagenesis(seq, target=0)
    assert np.allclose(other.effect, -gc.effect, equal_nan=True, atol=1e-9)
    predicted = int(gc_classifier.predict([seq])[0][0])
    by_default = gc_classifier.mutagenesis(seq)  # explains the class it predicts
    assert np.array_equal(by_default.effect, (other, gc)[predicted].effect, equal_nan=True)
    assert gc.importance[[i for i, r in enumerate(seq) if r in "GC"]].mean() > 0  # G and C support the class


def test_regression_effects_and_refusals():
    ft = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny", progress=False), "regression", 2)
    seq = "ACGTTGCAAC" * 3
    result = ft.mutagenesis(seq, target=1)
    before = ft.get_outputs([seq])[0, 1]
    after = ft.get_outputs([mutate(seq, 4, "G")])[0, 1]
    assert result.measure == "delta_value" and result.target == "output 1"
    assert result.effect[4, BASES.index("G")] == pytest.approx(after - before, abs=1e-5)
    with pytest.raises(ValueError, match="target 2: the model has outputs 0 to 1"):
        ft.mutagenesis(seq, target=2)
    room = ft.context_length - len(ft.tokenizer.prefix) - len(ft.tokenizer.suffix)  # the framing shares the context
    assert ft.mutagenesis("A" * room, method="gradient").effect.shape == (room, 4)
    with pytest.raises(ValueError, match="bases past that would be cut off"):
        ft.mutagenesis("A" * (room + 1), method="gradient")
    with pytest.raises(ValueError, match="method='taylor'"):
        ft.mutagenesis(seq, method="taylor")
    with pytest.raises(AttributeError, match=r"read \.effect"):
        _ = result.llr


def test_cli_ism_of_a_fine_tuned_model(gc_classifier, tmp_path, capsys):
    folder = gc_classifier.save(tmp_path / "gc_model")
    seq = gc_task(2, seed=3)[0][1][:40]
    fasta = tmp_path / "s.fa"
    write_fasta(fasta, "rec", seq)
    common = ["ism", "--classifier", str(folder), "--genome", str(fasta), "--record", "rec"]
    assert main([*common, "--target", "1", "-o", str(tmp_path / "m.tsv"), "--plot", str(tmp_path / "m.png")]) == 0
    lines = (tmp_path / "m.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["chrom", "pos", "ref", "alt", "delta_log_odds"] and len(lines) == 1 + 40 * 3
    chrom, pos, ref, alt, value = lines[1].split("\t")
    expected = gc_classifier.mutagenesis(seq, target=1).effect[0, BASES.index(alt)]
    assert (chrom, pos, ref) == ("rec", "1", seq[0]) and float(value) == pytest.approx(expected, abs=1e-4)
    assert (tmp_path / "m.png").stat().st_size > 0
    assert main([*common, "--target", "1", "-o", str(tmp_path / "m.npz")]) == 0
    back = IsmResult.load(tmp_path / "m.npz")
    assert back.measure == "delta_log_odds" and back.target == "class 1" and back.effect.shape == (40, 4)
    plot_ism(back, tmp_path / "again.png")
    assert main([*common, "--model", str(FIXTURES / "tiny")]) == 1
    assert "--model: with --classifier the model is the fine-tuned folder's own" in capsys.readouterr().err
    assert main([*common, "--deletions"]) == 1
    assert "--deletions and --window are the language model's" in capsys.readouterr().err
    assert (
        main(["ism", "--genome", str(fasta), "--record", "rec", "--target", "1", "--model", str(FIXTURES / "tiny")])
        == 1
    )
    assert "--target, --method and --strand are for a fine-tuned model's prediction" in capsys.readouterr().err
    assert main([*common, "--target", "1", "--method", "gradient", "-o", str(tmp_path / "g.tsv")]) == 0
    first_order = (tmp_path / "g.tsv").read_text().splitlines()
    assert first_order[0].endswith("\tdelta_log_odds_first_order") and len(first_order) == len(lines)


def test_an_ism_file_written_before_measures_existed_still_loads(tmp_path):
    """Files from before this change hold the language model's LLRs under "llr" and no measure."""
    path = tmp_path / "old.npz"
    llr = np.full((2, 4), np.nan)
    llr[0, 1:] = [0.5, -0.25, 1.0]
    np.savez(
        path,
        chrom=np.array("chr1"),
        positions=np.array([10, 11]),
        reference=np.array(list("AN")),
        llr=llr,
        deletion=np.full(2, np.nan),
        window=np.array(128),
        both_strands=np.array(False),
    )
    back = IsmResult.load(path)
    assert back.measure == "llr" and np.array_equal(back.llr, llr, equal_nan=True)
    assert back.rows()[0] == {"chrom": "chr1", "pos": 11, "ref": "A", "alt": "C", "llr": 0.5}


@pytest.mark.parametrize("rc_average", [False, True], ids=["forward", "both strands"])
def test_the_first_order_map_is_the_derivative_along_each_base_change(gc_classifier, rc_average):
    """method="gradient": effect[i, b] is the derivative of the score as position i's embedding moves toward base
    b's (and, on both strands, position n-1-i of the reverse complement toward the complement): checked against a
    central finite difference through the network itself."""
    ft = gc_classifier
    seq = gc_task(1, seed=11, length=50)[0][0]
    result = ft.mutagenesis(seq, target=1, rc_average=rc_average, method="gradient")
    assert result.measure == "delta_log_odds_first_order" and np.isfinite(result.effect).sum() == 50 * 3
    table = ft.network.backbone.embeddings.word_embeddings.weight.detach()
    ids = [int(x) for x in ft.tokenizer.encode_bases("ACGT")]
    offset = len(ft.tokenizer.prefix)
    strands = [False, True] if rc_average else [False]
    tokens = torch.as_tensor(
        np.stack([ft._framed(ft.process_data([seq]).ids[0], rc) for rc in strands]).astype(np.int64)
    )

    def score(i: int, b: int, step: float) -> float:
        def shift(module, args, out):
            out = out.clone()
            out[0, offset + i] += step * (table[ids[b]] - table[ids[BASES.index(seq[i])]])
            if rc_average:  # the same change seen on the other strand
                comp = 3 - b
                out[1, offset + len(seq) - 1 - i] += step * (table[ids[comp]] - table[ids[3 - BASES.index(seq[i])]])
            return out

        hook = ft.network.backbone.embeddings.register_forward_hook(shift)
        try:
            with torch.no_grad():
                z = ft.network(tokens, torch.ones_like(tokens, dtype=torch.bool)).double().mean(0)
        finally:
            hook.remove()
        return float(z[1] - z[0])  # two classes: the log-odds of class 1

    for i, b in [(0, 0), (7, 2), (31, 3), (49, 1)]:
        if BASES[b] == seq[i]:
            b = (b + 1) % 4
        step = 1e-2
        numeric = (score(i, b, step) - score(i, b, -step)) / (2 * step)
        assert result.effect[i, b] == pytest.approx(numeric, rel=2e-2, abs=2e-4)


def test_the_first_order_map_leaves_parameter_gradients_alone_and_works_on_a_frozen_backbone():
    ft = HyenaDNAFineTuningModel(
        HyenaDNAConfig(model_path=FIXTURES / "tiny", progress=False), "classification", 2, freeze_backbone=True
    )
    for p in ft.network.backbone.parameters():
        p.requires_grad_(False)
    head = ft.network.head.weight
    head.grad = torch.ones_like(head)  # as in the middle of a caller's own accumulation
    result = ft.mutagenesis("ACGTAGGCTA" * 4, target=1, method="gradient")
    assert np.isfinite(result.effect).sum() == 40 * 3 and np.abs(np.nan_to_num(result.effect)).max() > 0
    assert torch.equal(head.grad, torch.ones_like(head))


def test_the_first_order_map_of_a_gc_classifier_also_points_at_gc(gc_classifier):
    seq = gc_task(2, seed=3)[0][1]
    fast = gc_classifier.mutagenesis(seq, target=1, method="gradient").effect
    exact = gc_classifier.mutagenesis(seq, target=1).effect
    at_to_gc = [fast[i, b] for i, r in enumerate(seq) for b, a in enumerate(BASES) if r in "AT" and a in "GC"]
    assert np.mean(at_to_gc) > 0
    known = np.isfinite(exact)
    assert np.array_equal(known, np.isfinite(fast))
    print(f"first order against exact, GC classifier: r = {np.corrcoef(fast[known], exact[known])[0, 1]:.3f}")


@pytest.mark.parametrize("method", ["exact", "gradient"])
def test_a_minus_strand_map_is_the_reverse_complements_map_put_back_on_the_given_strand(
    gc_classifier, method, tmp_path
):
    """strand="-": the model reads the reverse complement (a minus-strand gene), and the map comes back in the given
    sequence's positions and alleles: changing base i to b there is changing base n-1-i to b's complement in what the
    model read."""
    seq = gc_task(1, seed=5, length=40)[0][0]
    rc = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
    from hyenadna.ism import classifier_mutagenesis

    minus = classifier_mutagenesis(gc_classifier, seq, target=1, method=method, strand="-", chrom="r", start=100)
    assert np.array_equal(
        gc_classifier.mutagenesis(seq, 1, method=method, strand="-").effect, minus.effect, equal_nan=True
    )
    read = gc_classifier.mutagenesis(rc, target=1, method=method)
    assert minus.reference == seq and minus.positions[0] == 100 and minus.target == "class 1, read on the - strand"
    for i, b in [(0, 1), (13, 3), (39, 0)]:
        j, comp = 39 - i, 3 - b
        assert np.isnan(minus.effect[i, b]) == np.isnan(read.effect[j, comp])
        if not np.isnan(minus.effect[i, b]):
            assert minus.effect[i, b] == pytest.approx(read.effect[j, comp], abs=1e-9)
    fasta = tmp_path / "s.fa"
    write_fasta(fasta, "r", "A" * 100 + seq + "A" * 10)
    argv = ["ism", "--classifier", str(gc_classifier.save(tmp_path / "m")), "--genome", str(fasta)]
    argv += [
        "--region",
        "r:100-140",
        "--strand",
        "-",
        "--target",
        "1",
        "--method",
        method,
        "-o",
        str(tmp_path / "x.npz"),
    ]
    assert main(argv) == 0
    back = IsmResult.load(tmp_path / "x.npz")
    assert back.reference == seq and np.allclose(back.effect, minus.effect, atol=1e-5, equal_nan=True)


def test_modisco_arrays_are_the_maps_centred_per_position_on_the_strand_read():
    """TF-MoDISco's inputs: one-hot (N, 4, L) and hypothetical contributions, each base's effect (0 for the
    reference) less the position's mean over the four bases, so the reference's is the position's importance."""
    from hyenadna.ism import modisco_arrays

    effect = np.array([[np.nan, -1.0, -2.0, 0.5], [0.2, np.nan, 0.4, -0.2], [np.nan] * 4])
    result = IsmResult("c", np.arange(3), "ACN", effect, np.full(3, np.nan), 3, False, "delta_log_odds", "class 1")
    ohe, hyp = modisco_arrays([result, result], ["+", "-"])
    assert ohe.shape == hyp.shape == (2, 4, 3) and ohe.dtype == np.float32
    assert ohe[0].T.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    full = np.nan_to_num(effect[:2])
    assert np.allclose(hyp[0, :, :2].T, full - full.mean(1, keepdims=True)) and not hyp[0, :, 2].any()
    assert np.allclose([hyp[0, 0, 0], hyp[0, 1, 1]], result.importance[:2] * 0.75)  # the mean includes the ref's 0
    # the minus strand: positions reversed and each base its complement (the model read "NGT")
    assert np.array_equal(ohe[1], ohe[0][::-1, ::-1]) and np.allclose(hyp[1], hyp[0][::-1, ::-1])
    shorter = IsmResult("c", np.arange(2), "AC", effect[:2], np.full(2, np.nan), 2, False, "delta_log_odds")
    with pytest.raises(ValueError, match="TF-MoDISco needs maps of one length; these have 2, 3 bases"):
        modisco_arrays([result, shorter])


def test_cli_ism_of_bed_regions_resumes_and_exports_modisco_inputs(gc_classifier, tmp_path, capsys):
    rng = np.random.default_rng(9)
    chrom = "".join(rng.choice(list("ACGT"), 200))
    fasta = write_fasta(tmp_path / "g.fa", "chrM", chrom)
    bed = tmp_path / "r.bed"
    bed.write_text("chrM\t10\t40\tfirst\t0\t+\nchrM\t50\t80\tsecond\t0\t-\nchrM\t100\t130\t..First\t0\t.\n")
    folder = gc_classifier.save(tmp_path / "m")
    out = tmp_path / "maps"
    argv = ["ism", "--classifier", str(folder), "--genome", str(fasta), "--bed", str(bed), "--target", "1"]
    assert main([*argv, "-o", str(out), "--modisco", "--plots"]) == 0
    assert "modisco motifs -s" in capsys.readouterr().err
    # no hidden file from a leading dot, and no two names that only differ in case (one file on macOS)
    files = ["first.npz", "second.npz", "First.line3.npz"]
    assert all((out / f).with_suffix(".png").stat().st_size > 0 for f in files)
    index = (out / "regions.tsv").read_text().splitlines()
    assert [line.split("\t")[-1] for line in index[1:]] == files
    maps = [IsmResult.load(out / f) for f in files]
    for result, (start, strand) in zip(maps, [(10, "+"), (50, "-"), (100, "+")], strict=True):
        again = gc_classifier.mutagenesis(chrom[start : start + 30], target=1, strand=strand)
        assert result.positions[0] == start and np.allclose(result.effect, again.effect, atol=1e-5, equal_nan=True)
    from hyenadna.ism import modisco_arrays

    ohe, hyp = modisco_arrays(maps, ["+", "-", "."])
    with np.load(out / "modisco" / "ohe.npz") as z1, np.load(out / "modisco" / "attr.npz") as z2:
        assert z1["arr_0"].shape == (3, 4, 30) and np.array_equal(z1["arr_0"], ohe) and np.allclose(z2["arr_0"], hyp)
    stamp = (out / "second.npz").stat().st_mtime_ns
    (out / "First.line3.npz").unlink()  # as if killed before the last region
    assert main([*argv, "-o", str(out)]) == 0  # resumes: the maps there are read back, the missing one made
    assert (out / "First.line3.npz").exists()
    assert IsmResult.load(out / "second.npz").effect.tobytes() == maps[1].effect.tobytes()
    assert (out / "second.npz").stat().st_mtime_ns == stamp  # read back, not made again
    assert main([*argv[:-1], "0", "-o", str(out)]) == 1
    assert "holds maps made with other settings" in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "x.npz")]) == 1
    assert "with --bed, -o names a folder" in capsys.readouterr().err
    bed.write_text("chrM\t150\t260\tlate\t0\t+\n")
    assert main([*argv, "-o", str(tmp_path / "y")]) == 1
    assert "r.bed:1: interval chrM:150-260 lies outside the chromosome (length 200)" in capsys.readouterr().err
    common = ["ism", "--genome", str(fasta), "--region", "chrM:0-10", "--model", str(FIXTURES / "tiny")]
    assert main([*common, "--modisco"]) == 1
    assert "--modisco and --plots are for the maps of many regions: give them with --bed" in capsys.readouterr().err
