"""Variant effects under a fine-tuned model: each allele's row is the change of the model's own output between the
reference window and the same window carrying the allele, as ``vep`` builds them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel
from hyenadna.cli import main
from hyenadna.data.readers import GenomeFasta
from hyenadna.vep import Variant, classifier_variant_blocks, classifier_variant_effects, variant_windows
from tests.conftest import FIXTURES, write_fasta
from tests.test_ism_classifier import log_odds

rng = np.random.default_rng(5)
CHROM = "".join(rng.choice(list("ACGT"), 800))


def snv(pos: int, alt: str | None = None) -> tuple[int, str, str]:
    """A substitution at 1-based ``pos``: (pos, ref, alt), alt the next base after ref unless given."""
    ref = CHROM[pos - 1]
    return pos, ref, alt or "ACGT"[("ACGT".index(ref) + 1) % 4]


RECORDS = [
    (*snv(400), "s1"),
    (400, CHROM[399], "ACGT".replace(CHROM[399], "")[:1] + "," + "ACGT".replace(CHROM[399], "")[1:2], "multi"),
    (*snv(12), "near_start"),
    (*snv(795), "near_end"),
    (300, CHROM[299:303], CHROM[299], "deletion"),
    (500, CHROM[499], CHROM[499] + "GGC", "insertion"),
    (600, "A" if CHROM[599] != "A" else "C", "T", "mismatch"),
]


@pytest.fixture(scope="module")
def genome_and_vcf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v")
    genome = write_fasta(folder / "g.fa", "chrT", CHROM)
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"chrT\t{pos}\t{name}\t{ref}\t{alt}\t.\t.\t." for pos, ref, alt, name in RECORDS]
    vcf = folder / "v.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    return genome, vcf


@pytest.mark.parametrize("rc_average", [False, True], ids=["forward", "both strands"])
def test_each_row_is_the_change_of_the_prediction_between_the_two_windows(gc_classifier, genome_and_vcf, rc_average):
    genome, vcf = genome_and_vcf
    ft = gc_classifier
    assert ft.input_length == 100  # trained on 100-base rows: the default window
    with pytest.warns(UserWarning, match="v.vcf:9: chrT:600 .*REF .* differs from the genome's"):
        table = ft.variant_effects(vcf, genome, rc_average=rc_average)
    assert list(table["id"]) == ["s1", "multi", "multi", "near_start", "near_end", "deletion", "insertion", "mismatch"]
    assert list(table["status"]) == ["ok"] * 7 + ["ref_mismatch"]
    assert table.iloc[-1][["delta_log_odds", "target", "window"]].isna().all()
    fasta = GenomeFasta(genome, {"chrT"})
    for row in table.iloc[:-1].itertuples():
        ref_w, alt_w, offset = variant_windows(
            Variant(0, "chrT", row.pos, row.id, row.ref, [row.alt]), row.alt, fasta, 100
        )
        assert (row.window, row.offset) == (len(ref_w), offset)
        outputs = ft.get_outputs([ref_w, alt_w], rc_average)
        target = int(outputs[0].argmax())  # by default: the class predicted for the reference window
        ref_lo, alt_lo = log_odds(outputs, target)
        assert row.target == target
        assert row.ref_log_odds == pytest.approx(ref_lo, abs=1e-5)
        assert row.delta_log_odds == pytest.approx(alt_lo - ref_lo, abs=1e-5)
        p = np.exp(outputs - outputs.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        assert (row.ref_prob, row.alt_prob) == pytest.approx((p[0, target], p[1, target]), abs=1e-6)
        assert (row.ref_class, row.alt_class) == (int(outputs[0].argmax()), int(outputs[1].argmax()))
    s1 = table.iloc[0]  # a substitution in mid-chromosome: the 100 bases with it at their middle
    start = 400 - 1 - 50
    ref_w = CHROM[start : start + 100]
    assert s1.offset == 50 and ref_w[50] == s1.ref
    by_hand = ft.get_outputs([ref_w, ref_w[:50] + s1.alt + ref_w[51:]], rc_average)
    assert s1.delta_log_odds == pytest.approx(np.diff(log_odds(by_hand, s1.target))[0], abs=1e-5)
    assert (table.iloc[3].offset, table.iloc[3].window, table.iloc[4].window) == (11, 100, 56)  # chromosome ends


def test_a_gc_classifier_scores_gc_gains_up_and_losses_down(gc_classifier, tmp_path):
    """Class 1 is GC-rich: A/T -> G/C alleles raise its log-odds and G/C -> A/T lower them; class 0's deltas are
    their negatives (two classes)."""
    genome = write_fasta(tmp_path / "g.fa", "chrT", CHROM)
    lines = ["#CHROM\tPOS\tID\tREF\tALT"]
    for pos in range(60, 740, 7):
        ref = CHROM[pos - 1]
        alts = "GC" if ref in "AT" else "AT"
        lines.append(f"chrT\t{pos}\t.\t{ref}\t{alts[0]},{alts[1]}")
    (tmp_path / "v.vcf").write_text("\n".join(lines) + "\n")
    up = gc_classifier.variant_effects(tmp_path / "v.vcf", genome, target=1)
    gain = up["ref"].isin(["A", "T"]).to_numpy()
    assert np.mean(up["delta_log_odds"][gain] > 0) > 0.9 and np.mean(up["delta_log_odds"][~gain] < 0) > 0.9
    down = gc_classifier.variant_effects(tmp_path / "v.vcf", genome, target=0)
    assert np.allclose(down["delta_log_odds"], -up["delta_log_odds"], atol=1e-9)
    assert (up["target"] == 1).all() and np.allclose(up["ref_prob"] + down["ref_prob"], 1)


def test_the_window_follows_the_training_rows_and_is_refused_where_it_cannot_serve(gc_classifier, tmp_path):
    genome = write_fasta(tmp_path / "g.fa", "chrT", CHROM)
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchrT\t400\t.\t{CHROM[399]}\tA\n")
    folder = gc_classifier.save(tmp_path / "m")
    assert json.loads((folder / "finetune.json").read_text())["train_lengths"] == {
        "min": 100,
        "median": 100,
        "max": 100,
    }
    loaded = HyenaDNAFineTuningModel.load(folder)
    assert loaded.input_length == 100
    assert loaded.variant_effects(vcf, genome, window=64)["window"].tolist() == [64]
    meta = json.loads((folder / "finetune.json").read_text())
    del meta["train_lengths"]  # a folder saved before the lengths were kept
    (folder / "finetune.json").write_text(json.dumps(meta))
    old = HyenaDNAFineTuningModel.load(folder)
    assert old.input_length is None
    with pytest.raises(ValueError, match="does not record the length of the sequences it was trained on"):
        next(classifier_variant_effects(old, vcf, genome))
    room = old.context_length - len(old.tokenizer.prefix) - len(old.tokenizer.suffix)
    with pytest.raises(ValueError, match=f"window {room + 1:,}: the model reads at most {room:,} bases"):
        next(classifier_variant_effects(old, vcf, genome, window=room + 1))
    with pytest.raises(ValueError, match="target 2: the model has outputs 0 to 1"):
        next(classifier_variant_effects(old, vcf, genome, window=80, target=2))


def test_a_regressor_reports_the_change_of_its_value(tmp_path):
    ft = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny", progress=False), "regression", 2)
    genome = write_fasta(tmp_path / "g.fa", "chrT", CHROM)
    pos, ref, alt = snv(250)
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchrT\t{pos}\t.\t{ref}\t{alt}\n")
    table = ft.variant_effects(vcf, genome, window=40, target=1)
    assert list(table.columns)[6:10] == ["target", "delta_value", "ref_value", "alt_value"]
    ref_w = CHROM[pos - 1 - 20 : pos - 1 + 20]
    before, after = ft.get_outputs([ref_w, ref_w[:20] + alt + ref_w[21:]])[:, 1]
    assert table["delta_value"][0] == pytest.approx(after - before, abs=1e-5)


@pytest.mark.filterwarnings("ignore:.*differs from the genome's:UserWarning")  # the VCF's REF-mismatch record
def test_shards_together_give_the_whole_run(gc_classifier, genome_and_vcf):
    genome, vcf = genome_and_vcf
    whole = [r for _, rows in classifier_variant_blocks(gc_classifier, vcf, genome, variants_per_batch=2) for r in rows]
    parts = {}
    for rank in (0, 1):
        blocks = classifier_variant_blocks(gc_classifier, vcf, genome, variants_per_batch=2, shard=(rank, 2))
        parts.update(dict(blocks))
    assert [r for k in sorted(parts) for r in parts[k]] == whole


@pytest.mark.filterwarnings("ignore:.*differs from the genome's:UserWarning")  # the VCF's REF-mismatch record
def test_cli_vep_of_a_fine_tuned_model(gc_classifier, genome_and_vcf, tmp_path, capsys):
    genome, vcf = genome_and_vcf
    folder = gc_classifier.save(tmp_path / "gc_model")
    common = ["vep", str(vcf), "--genome", str(genome)]
    out = tmp_path / "e.tsv"
    assert main([*common, "--classifier", str(folder), "--target", "1", "--both-strands", "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    header = lines[0].split("\t")
    assert header[:8] == ["chrom", "pos", "id", "ref", "alt", "status", "target", "delta_log_odds"]
    assert len(lines) == 1 + 8 and "ok 7, ref_mismatch 1" in capsys.readouterr().err
    api = gc_classifier.variant_effects(vcf, genome, target=1, rc_average=True)
    first = dict(zip(header, lines[1].split("\t"), strict=True))
    assert float(first["delta_log_odds"]) == pytest.approx(api["delta_log_odds"][0], abs=1e-4)
    assert first["window"] == "100" and first["target"] == "1"
    assert main([*common, "--classifier", str(folder), "--model", str(FIXTURES / "tiny")]) == 1
    assert "--model: with --classifier the model is the fine-tuned folder's own" in capsys.readouterr().err
    assert main([*common, "--target", "1", "--model", str(FIXTURES / "tiny")]) == 1
    assert (
        "--target and --regions are for a fine-tuned model's prediction: give --classifier too"
        in capsys.readouterr().err
    )


def rc(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


@pytest.fixture(scope="module")
def regions_case(tmp_path_factory):
    """Two overlapping regions, one on each strand, and alleles inside both, inside one, across an edge and in none."""
    folder = tmp_path_factory.mktemp("r")
    genome = write_fasta(folder / "g.fa", "chrT", CHROM)
    bed = folder / "r.bed"
    bed.write_text("track name=promoters\nchrT\t350\t450\tp1\t0\t+\nchrT\t380\t480\tp2\t0\t-\n")
    records = [
        (*snv(400), "both"),
        (*snv(360), "plus_only"),
        (470, CHROM[469], CHROM[469] + "TT", "minus_insertion"),
        (449, CHROM[448:451], CHROM[448], "across_p1_end"),
        (*snv(12), "nowhere"),
    ]
    lines = ["#CHROM\tPOS\tID\tREF\tALT"] + [f"chrT\t{p}\t{n}\t{r}\t{a}" for p, r, a, n in records]
    (folder / "v.vcf").write_text("\n".join(lines) + "\n")
    return genome, folder / "v.vcf", bed


def test_in_regions_each_allele_is_scored_on_every_region_that_holds_it(gc_classifier, regions_case):
    """A region is read as the model was trained to read it: its own bases, reverse-complemented on '-', with the
    allele at its place; past an indel the genome fills the region's length."""
    genome, vcf, bed = regions_case
    ft = gc_classifier
    with pytest.warns(UserWarning, match="v.vcf: 1 alleles lie wholly inside no region; listed with status outside"):
        table = ft.variant_effects(vcf, genome, target=1, regions=bed)
    got = [(r.id, r.region, r.strand, r.status, r.offset) for r in table.itertuples()]
    assert got[:5] == [
        ("both", "p1", "+", "ok", 49),
        ("both", "p2", "-", "ok", 19),
        ("plus_only", "p1", "+", "ok", 9),
        ("minus_insertion", "p2", "-", "ok", 89),
        ("across_p1_end", "p2", "-", "ok", 68),
    ]
    # the allele in no region is listed in VCF order, with nothing scored
    (last,) = got[5:]
    assert (last[0], last[3]) == ("nowhere", "outside_regions") and pd.isna([last[1], last[2], last[4]]).all()
    assert table.iloc[5][["delta_log_odds", "ref_prob", "window"]].isna().all()
    assert (table["status"][:5] == "ok").all() and (table["window"][:5] == 100).all()
    both_p1, both_p2 = table.iloc[0], table.iloc[1]
    alt = both_p1.alt
    expected = {
        "p1": (CHROM[350:450], CHROM[350:399] + alt + CHROM[400:450]),
        "p2": (rc(CHROM[380:480]), rc(CHROM[380:399] + alt + CHROM[400:480])),
    }
    for row in (both_p1, both_p2):
        ref_w, alt_w = expected[row.region]
        by_hand = log_odds(ft.get_outputs([ref_w, alt_w]), 1)
        assert row.delta_log_odds == pytest.approx(by_hand[1] - by_hand[0], abs=1e-5)
    ins = table.iloc[3]  # CHROM[469] + "TT" on p2 [380, 480): two bases in, the last two of the region out
    alt_w = rc((CHROM[380:470] + "TT" + CHROM[470:480])[:100])
    by_hand = log_odds(ft.get_outputs([rc(CHROM[380:480]), alt_w]), 1)
    assert ins.delta_log_odds == pytest.approx(by_hand[1] - by_hand[0], abs=1e-5)


def test_regions_that_cannot_be_read_are_refused_with_their_line(gc_classifier, regions_case, tmp_path):
    genome, vcf, bed = regions_case
    tok = gc_classifier.tokenizer
    room = gc_classifier.context_length - len(tok.prefix) - len(tok.suffix)
    cases = {
        f"chrT\t0\t{room + 1}\tlong\t0\t+\n": f"long.bed:1: {room + 1:,} bases, above the {room:,} the model reads",
        "chrT\t700\t900\tpast\t0\t+\n": "past.bed:1: interval chrT:700-900 lies outside the chromosome",
        "chrQ\t0\t50\tother\t0\t+\n": "other.bed:1: chromosome 'chrQ' is not in",
        "chrT\t0\t50\tbad\t0\t*\n": r"bad.bed:1: strand must be \+, - or \.",
    }
    from hyenadna.data.readers import SequenceInputError

    for line, message in cases.items():
        path = tmp_path / f"{line.split(chr(9))[3]}.bed"
        path.write_text(line)
        with pytest.raises(SequenceInputError, match=message):
            gc_classifier.variant_effects(vcf, genome, regions=path)
    with pytest.raises(ValueError, match="give a window or regions, not both"):
        gc_classifier.variant_effects(vcf, genome, window=50, regions=bed)


def test_cli_vep_in_regions(gc_classifier, regions_case, tmp_path, capsys):
    genome, vcf, bed = regions_case
    folder = gc_classifier.save(tmp_path / "gc_model")
    out = tmp_path / "e.jsonl"
    argv = ["vep", str(vcf), "--genome", str(genome), "--classifier", str(folder), "--regions", str(bed)]
    assert main([*argv, "--target", "1", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["region"], r["strand"]) for r in rows][:2] == [("both", "p1", "+"), ("both", "p2", "-")]
    assert len(rows) == 6 and "1 alleles lie wholly inside no region" in capsys.readouterr().err
    last = rows[-1]
    expected = ("nowhere", "outside_regions", None, None)
    assert (last["id"], last["status"], last["region"], last["delta_log_odds"]) == expected
    assert (
        main(["vep", str(vcf), "--genome", str(genome), "--regions", str(bed), "--model", str(FIXTURES / "tiny")]) == 1
    )
    assert "--target and --regions are for a fine-tuned model's prediction" in capsys.readouterr().err


@pytest.mark.parametrize("strand", ["+", "-"])
def test_a_substitution_in_a_region_scores_what_the_regions_mutagenesis_map_gives_it(gc_classifier, tmp_path, strand):
    """Two paths, one answer: vep on a region and the in-silico mutagenesis of the same region read on the same
    strand (``mutagenesis(strand=...)``) put each substitution at the same change of the log-odds."""
    genome = write_fasta(tmp_path / "g.fa", "chrT", CHROM)
    (tmp_path / "r.bed").write_text(f"chrT\t200\t300\tr\t0\t{strand}\n")
    picks = [(205, "A"), (250, "C"), (299, "G"), (300, "T")]
    lines = ["#CHROM\tPOS\tID\tREF\tALT"]
    lines += [f"chrT\t{p}\t.\t{CHROM[p - 1]}\t{a}" for p, a in picks if CHROM[p - 1] != a]
    (tmp_path / "v.vcf").write_text("\n".join(lines) + "\n")
    table = gc_classifier.variant_effects(tmp_path / "v.vcf", genome, target=1, regions=tmp_path / "r.bed")
    ism = gc_classifier.mutagenesis(CHROM[200:300], target=1, strand=strand)
    assert len(table) == len(lines) - 1
    for row in table.itertuples():
        assert row.delta_log_odds == pytest.approx(ism.effect[row.pos - 1 - 200, "ACGT".index(row.alt)], abs=1e-5)
