"""In-silico mutagenesis and likelihood tracks: the same LLR as vep and as a hand computation, bedGraph coordinates
against the genome, and memory that does not grow with the region."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch

from hyenadna import CharacterTokenizer, load_model
from hyenadna.cli import main
from hyenadna.data.regions import Interval
from hyenadna.ism import BASES, in_silico_mutagenesis, plot_ism
from hyenadna.tracks import likelihood_track, write_bedgraph
from hyenadna.vep import score_variants
from tests.conftest import FIXTURES, seq_log_probs, write_fasta

rng = np.random.default_rng(5)
CHROM = "".join(rng.choice(list("ACGT"), 2000))
CHROM = CHROM[:700] + "NNNNN" + CHROM[705:]


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    path = tmp_path_factory.mktemp("g") / "g.fa"
    write_fasta(path, "chr7", CHROM)
    return path


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURES / "tiny")


def window_llr(model, ref: str, alt: str) -> float:
    return float(seq_log_probs(model, alt).sum() - seq_log_probs(model, ref).sum())


def test_ism_and_vep_give_the_hand_computed_llr_for_an_snv_and_a_deletion(genome, model, tmp_path):
    tok = CharacterTokenizer()
    window = 200
    pos0 = 1000  # 0-based
    result = in_silico_mutagenesis(model, tok, genome, Interval("7", pos0, pos0 + 3), window=window, deletions=True)
    ref = CHROM[pos0]
    alt = next(b for b in BASES if b != ref)
    left = window // 2
    ref_win = CHROM[pos0 - left : pos0 - left + window]
    alt_win = ref_win[:left] + alt + ref_win[left + 1 :]
    snv = window_llr(model, ref_win, alt_win)
    # the deletion of CHROM[pos0], VCF style with the base before as anchor: the alt window's right flank reaches on
    del_ref = CHROM[pos0 - 1 - left : pos0 - 1 - left + window]
    del_alt = (CHROM[pos0 - 1 - left : pos0] + CHROM[pos0 + 1 :])[:window]
    deletion = window_llr(model, del_ref, del_alt)
    assert result.llr[0, BASES.index(alt)] == pytest.approx(snv, abs=2e-3)
    assert result.deletion[0] == pytest.approx(deletion, abs=2e-3)
    assert np.isnan(result.llr[0, BASES.index(ref)]) and np.isfinite(result.llr[0]).sum() == 3
    vcf = tmp_path / "v.vcf"
    vcf.write_text(
        "#CHROM\tPOS\tID\tREF\tALT\n"
        f"chr7\t{pos0 + 1}\tsnv\t{ref}\t{alt}\n"
        f"chr7\t{pos0}\tdel\t{CHROM[pos0 - 1 : pos0 + 1]}\t{CHROM[pos0 - 1]}\n"
    )
    rows = list(score_variants(model, tok, vcf, genome, window=window, batch_size=4))
    assert rows[0]["llr"] == pytest.approx(result.llr[0, BASES.index(alt)], abs=1e-4)
    assert rows[1]["llr"] == pytest.approx(result.deletion[0], abs=1e-4)
    table = result.rows()
    assert len(table) == 3 * 3 + 3 and table[0]["pos"] == pos0 + 1  # VCF-style 1-based positions
    plot_ism(result, tmp_path / "ism.png")
    assert (tmp_path / "ism.png").stat().st_size > 5000


def test_ism_skips_n_and_refuses_a_region_off_the_record(genome, model):
    result = in_silico_mutagenesis(model, CharacterTokenizer(), genome, Interval("7", 698, 708), window=64)
    assert np.isnan(result.llr[2:7]).all() and np.isfinite(result.llr[0]).sum() == 3
    with pytest.raises(ValueError, match="outside"):
        in_silico_mutagenesis(model, CharacterTokenizer(), genome, Interval("7", 1990, 2010))


def test_bedgraph_coordinates_and_values_match_the_genome(genome, model, tmp_path):
    tok = CharacterTokenizer()
    overlap = 300
    blocks = likelihood_track(model, tok, genome, Interval("7", 600, 1400), overlap=overlap, block=256)
    lines = write_bedgraph(tmp_path / "t.bedgraph", "chr7", blocks)
    rows = [line.split("\t") for line in (tmp_path / "t.bedgraph").read_text().splitlines()]
    assert lines == len(rows) == 800 - 5  # one line per base, the five N left out
    starts = np.array([int(r[1]) for r in rows])
    assert all(int(r[2]) == int(r[1]) + 1 for r in rows) and (np.diff(starts) > 0).all()
    assert not set(range(700, 705)) & set(starts.tolist()) and starts[0] == 600 and starts[-1] == 1399
    values = {int(r[1]): float(r[3]) for r in rows}
    for p in (600, 650, 1000, 1399):  # log P(genome[p] | the bases before it), by hand on the same left context:
        lo = 600 + (p - 600) // 256 * 256 - overlap  # its block's start less the overlap (each block fits one window)
        by_hand = seq_log_probs(model, CHROM[lo : p + 1])[-1]
        assert values[p] == pytest.approx(by_hand, abs=2e-3), p
    # .gz is gzip, the same bytes each time (it was plain text under the name); a bigWig's name is refused
    for name in ("a.bedgraph.gz", "b.bedgraph.gz"):
        write_bedgraph(tmp_path / name, "chr7", likelihood_track(model, tok, genome, Interval("7", 600, 700)))
    assert (tmp_path / "a.bedgraph.gz").read_bytes() == (tmp_path / "b.bedgraph.gz").read_bytes()
    text = gzip.decompress((tmp_path / "a.bedgraph.gz").read_bytes()).decode()
    assert text.splitlines()[0].startswith("chr7\t600\t601\t") and len(text.splitlines()) == 100
    with pytest.raises(ValueError, match=r"t\.bw: the track is written as bedGraph .* with bedGraphToBigWig"):
        write_bedgraph(tmp_path / "t.bw", "chr7", iter([]))
    assert not (tmp_path / "t.bw").exists()


def test_both_strands_track_averages_the_reverse_strand(genome, model):
    tok = CharacterTokenizer()
    ((_, fwd),) = likelihood_track(model, tok, genome, Interval("7", 1000, 1100), overlap=200)
    ((_, both),) = likelihood_track(model, tok, genome, Interval("7", 1000, 1100), overlap=200, both_strands=True)
    p = 1050  # the block reads 800-1300; on the reverse strand, p's context is every base after it
    rc = CHROM[p:1300].translate(str.maketrans("ACGT", "TGCA"))[::-1]
    reverse = seq_log_probs(model, rc)[-1]
    assert both[p - 1000] == pytest.approx((fwd[p - 1000] + reverse) / 2, abs=2e-3)


def test_track_memory_does_not_grow_with_the_region(tmp_path):
    import tracemalloc

    from hyenadna import HyenaConfig, HyenaDNALMHeadModel

    torch.manual_seed(0)
    small = HyenaDNALMHeadModel(HyenaConfig(d_model=8, n_layer=1, d_inner=16, l_max=66)).eval()
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), 200_000))
    path = tmp_path / "long.fa"
    path.write_text(">1\n" + seq + "\n")
    peaks = []
    for length in (20_000, 200_000):
        tracemalloc.start()
        blocks = likelihood_track(small, CharacterTokenizer(), path, Interval("1", 0, length), block=4096)
        write_bedgraph(tmp_path / f"{length}.bedgraph", "1", blocks)
        peaks.append(tracemalloc.get_traced_memory()[1] - len(seq) * 2)  # the chromosome itself is read once
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + 2**20, peaks  # ten times the region, not ten times the memory


def test_cli_ism_and_track(genome, tmp_path, capsys):
    tiny = str(FIXTURES / "tiny")
    out = tmp_path / "ism.npz"
    argv = ["ism", "--genome", str(genome), "--region", "chr7:1000-1010", "--window", "128", "--model", tiny]
    assert main([*argv, "-o", str(out), "--plot", str(tmp_path / "ism.png")]) == 0
    data = np.load(out)
    assert data["llr"].shape == (10, 4) and data["positions"][0] == 1000 and (tmp_path / "ism.png").exists()
    # the API gives the command's map, its rows naming the chromosome as the region does
    from hyenadna import HyenaDNA, HyenaDNAConfig

    api = HyenaDNA(HyenaDNAConfig(model_path=tiny)).mutagenesis(genome, "chr7:1000-1010", window=128)
    assert np.array_equal(api.llr, data["llr"], equal_nan=True) and api.rows()[0]["chrom"] == "chr7"
    # rows in the format the name says, as score and vep write them (.csv and .json were refused)
    assert main([*argv, "-o", str(tmp_path / "ism.csv")]) == 0
    table = pd.read_csv(tmp_path / "ism.csv")
    assert list(table.columns) == ["chrom", "pos", "ref", "alt", "llr"] and len(table) == 30
    assert main([*argv, "-o", str(tmp_path / "ism.json")]) == 0
    assert json.loads((tmp_path / "ism.json").read_text())[0]["chrom"] == "chr7"
    assert main([*argv, "-o", str(tmp_path / "ism.parquet")]) == 1
    assert ".json or .jsonl, or .npz for the matrix" in capsys.readouterr().err  # ism writes NPZ too
    assert main(["evaluate", "--fasta", str(genome), "--model", tiny, "-o", str(tmp_path / "report.csv")]) == 1
    assert "report.csv: the report is one JSON document: name it .json" in capsys.readouterr().err
    with pytest.raises(ValueError, match="give start and end"):
        HyenaDNA(HyenaDNAConfig(model_path=tiny)).mutagenesis(genome, "chr7")
    assert main(["ism", "--genome", str(genome), "--model", tiny, "-o", str(tmp_path / "x.tsv")]) == 1
    assert "--region" in capsys.readouterr().err
    bed = tmp_path / "t.bedgraph"
    track = ["score", "--track", str(bed), "--genome", str(genome), "--region", "chr7:100-300", "--model", tiny]
    assert main(track) == 0
    assert bed.read_text().splitlines()[0].startswith("chr7\t100\t101\t")
    assert main(["score", "--track", str(bed), "--genome", str(genome), "--model", tiny]) == 1


def test_cli_ism_of_bed_regions_under_the_language_model(genome, model, tmp_path, capsys):
    """--bed maps each region as --region would, one NPZ per region; the language model scores changes on the
    genome's strand whatever the BED strand, and the TF-MoDISco export keeps that orientation."""
    bed = tmp_path / "r.bed"
    bed.write_text("chr7\t1000\t1012\ta\t0\t+\nchr7\t1500\t1512\tb\t0\t-\n")
    argv = ["ism", "--genome", str(genome), "--bed", str(bed), "--window", "128", "--model", str(FIXTURES / "tiny")]
    assert main([*argv, "-o", str(tmp_path / "maps"), "--modisco"]) == 0
    for name, start in (("a", 1000), ("b", 1500)):
        got = np.load(tmp_path / "maps" / f"{name}.npz")["llr"]
        expected = in_silico_mutagenesis(
            model, CharacterTokenizer(), genome, Interval("chr7", start, start + 12), window=128
        )
        assert np.allclose(got, expected.llr, atol=1e-5, equal_nan=True)
    with np.load(tmp_path / "maps" / "modisco" / "ohe.npz") as z:
        assert "".join("ACGT"[i] for i in z["arr_0"][1].argmax(0)) == CHROM[1500:1512]  # + strand, as scored
    assert main([*argv, "--target", "1", "-o", str(tmp_path / "t")]) == 1
    assert "--target, --method and --strand are for a fine-tuned model's prediction" in capsys.readouterr().err


def test_a_chromosome_not_in_the_genome_names_its_records(genome, tmp_path, capsys):
    """A gzip genome is read for the needed chromosomes only, and the error listed none ("it has )"); it now lists
    the file's records (the first 20 of a genome of contigs). --region without --track was "give an INPUT file"."""
    import gzip

    from hyenadna.data.readers import GenomeFasta

    gz = tmp_path / "g.fa.gz"
    gz.write_bytes(gzip.compress(genome.read_bytes()))
    tiny = str(FIXTURES / "tiny")
    track = ["score", "--track", str(tmp_path / "t.bg"), "--region", "chr9:1-5", "--model", tiny]
    for path in (genome, gz):
        assert main([*track, "--genome", str(path)]) == 1
        assert f"'9' is not in {path} (its records: chr7)" in capsys.readouterr().err
        ism = ["ism", "--genome", str(path), "--region", "chr9:1-5", "--model", tiny, "-o", str(tmp_path / "i.npz")]
        assert main(ism) == 1
        assert "'9' is not a record of" in (err := capsys.readouterr().err) and "(its records: chr7)" in err
    many = tmp_path / "contigs.fa"
    many.write_text("".join(f">ctg{i}\nACGT\n" for i in range(25)))
    assert GenomeFasta(many).record_names().endswith("ctg19, ... (25 in all)")
    assert main(["score", "--genome", str(genome), "--region", "chr7:1-5", "--model", tiny]) == 1
    assert "--region goes with --track OUT.bedgraph" in capsys.readouterr().err
