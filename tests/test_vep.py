"""Variant effects that mean something: equal-length windows, the same scored positions, both strands, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyenadna import CharacterTokenizer, load_model
from hyenadna.data.readers import GenomeFasta, reverse_complement
from hyenadna.data.regions import Interval
from hyenadna.vep import Variant, normalized, score_variants, variant_windows
from tests.conftest import FIXTURES, seq_log_probs, write_fasta

rng = np.random.default_rng(11)
CHROM = "".join(rng.choice(list("ACGT"), 3000))


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    path = tmp_path_factory.mktemp("g") / "g.fa"
    write_fasta(path, "chr7", CHROM)
    return path


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURES / "tiny")


def window_ll(model, seq: str) -> float:
    """log P(seq[1:] | prefixes), by hand."""
    return float(seq_log_probs(model, seq).sum())


@pytest.mark.parametrize(
    ("pos", "ref", "alt"),
    [(1500, None, "G"), (1500, None, "ACGTT"), (1500, 6, "A"), (10, 1, "TTT"), (2990, 4, "C"), (2995, 1, "GGGGGGGG")],
)
def test_windows_have_equal_length_and_the_variant_at_the_same_offset(genome, pos, ref, alt):
    g = GenomeFasta(genome, {"chr7"})
    ref_allele = CHROM[pos - 1 : pos - 1 + (ref or 1)]
    if ref is None and len(alt) == 1 and alt == ref_allele:
        alt = "T" if alt != "T" else "A"
    v = Variant(1, "chr7", pos, ".", ref_allele, [alt])
    r, a, offset = variant_windows(v, alt, g, 200)
    n, n_alt = normalized(v, alt, g)  # the change as windows hold it: trimmed, shifted left
    assert len(r) == len(a) <= 200
    assert offset == min(n.pos - 1, 100)
    lo = n.pos - 1 - offset
    assert r == CHROM[lo : lo + len(r)]  # the reference window is the genome
    assert r[offset : offset + len(n.ref)] == n.ref[: len(r) - offset]
    assert a[offset : offset + len(n_alt)] == n_alt[: len(a) - offset]
    assert a == (CHROM[: pos - 1] + alt + CHROM[pos - 1 + len(ref_allele) :])[lo : lo + len(a)]  # the VCF's change
    assert a[:offset] == r[:offset]  # the same left flank


def test_one_change_spelled_several_ways_gets_one_score(model, tmp_path):
    """A VCF may write an indel in a repeat at any place in it, and pad any allele with shared bases. Windows centred
    on the change as written scored such spellings of one indel a median 0.35 nats apart on real chr20 indels; the
    change is now trimmed and shifted left first (as ``bcftools norm``), so they get one row of numbers."""
    # each repeat between bases that do not extend it
    seq = "AAAAG" + CHROM[:994] + "T" + "CAG" * 6 + "T" + CHROM[995:1499] + "T" + "A" * 150 + "C" + CHROM[1500:1900]
    seq += "N" * 5 + "TTTTG" + CHROM[1900:2400]
    genome = tmp_path / "repeats.fa"
    write_fasta(genome, "chr7", seq)
    cag, run, after_gap = 1000, seq.index("A" * 150), seq.index("NTTTTG") + 1  # 0-based starts of the repeats
    assert seq[cag - 1 : cag + 19] == "T" + "CAG" * 6 + "T"
    spellings = {  # 1-based POS, REF, ALT: each group one change
        "CAG deleted": [(cag + k, seq[cag + k - 1 : cag + k + 3], seq[cag + k - 1]) for k in range(16)]
        + [(cag + 1, seq[cag : cag + 9], seq[cag : cag + 6])],
        "CAG inserted": [
            (cag + k, seq[cag + k - 1], seq[cag + k - 1] + (seq[cag : cag + 3] * 2)[k % 3 : k % 3 + 3])
            for k in range(0, 19)
        ],
        "A inserted in 150": [(run, seq[run - 1], seq[run - 1] + "A"), (run + 149, "A", "AA"), (run + 80, "AA", "AAA")],
        "T deleted after N": [(after_gap + 1, "TT", "T"), (after_gap + 3, "TT", "T"), (after_gap + 2, "TTT", "TT")],
        "A deleted at the start": [(1, "AA", "A"), (3, "AA", "A"), (2, "AAAG", "AAG")],
        "SNV": [(1500, seq[1499], "T" if seq[1499] != "T" else "G")],
    }
    spellings["SNV"].append((1498, seq[1497:1502], seq[1497:1499] + spellings["SNV"][0][2] + seq[1500:1502]))
    vcf = tmp_path / "v.vcf"
    lines = [f"chr7\t{p}\t{name}\t{r}\t{a}" for name, group in spellings.items() for p, r, a in group]
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "\n".join(lines) + "\n")
    rows = list(score_variants(model, CharacterTokenizer(), vcf, genome, window=400, both_strands=True))
    assert [r["status"] for r in rows] == ["ok"] * len(lines)
    for name, group in spellings.items():
        scored = [(r["llr"], r["llr_reverse"], r["ref_ll"], r["offset"]) for r in rows if r["id"] == name]
        assert len(scored) == len(group) and len(set(scored)) == 1, name  # equal to the bit
    with pytest.warns(UserWarning, match="repeat that runs past the windows' end"):
        short = list(score_variants(model, CharacterTokenizer(), vcf, genome, window=120))
    hidden = [r["status"] == "repeat_past_window" for r in short]  # the A run is longer than 60 bases after it
    assert hidden == [r["id"] == "A inserted in 150" for r in short]
    g = GenomeFasta(genome, {"chr7"})
    expect = {  # where each change goes: its repeat's left end, or as far as an N or the chromosome's start allows
        "CAG deleted": (cag, seq[cag - 1 : cag + 3], seq[cag - 1]),
        "A inserted in 150": (run, seq[run - 1], seq[run - 1] + "A"),
        "T deleted after N": (after_gap + 1, "TT", "T"),
        "A deleted at the start": (1, "AA", "A"),
        "SNV": spellings["SNV"][0],
    }
    for name, (pos, ref, alt) in expect.items():
        for p, r, a in spellings[name]:
            v, a_norm = normalized(Variant(1, "chr7", p, ".", r, [a]), a, g)
            assert (v.pos, v.ref, a_norm) == (pos, ref, alt), (name, p, r, a)


def test_indel_llr_equals_a_hand_computation(genome, model):
    vcf = genome.parent / "v.vcf"
    lines = ["#CHROM\tPOS\tID\tREF\tALT"]
    lines += [f"chr7\t1200\tdel\t{CHROM[1199:1205]}\t{CHROM[1199]}", f"chr7\t1700\tins\t{CHROM[1699]}\t{CHROM[1699]}AC"]
    vcf.write_text("\n".join(lines) + "\n")
    g = GenomeFasta(genome, {"chr7"})
    rows = list(score_variants(model, CharacterTokenizer(), vcf, genome, window=300, batch_size=3))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        v = Variant(1, "chr7", row["pos"], ".", row["ref"], [row["alt"]])
        r, a, _ = variant_windows(v, row["alt"], g, 300)
        assert row["window"] == len(r) == len(a) == 300
        assert row["ref_ll"] == pytest.approx(window_ll(model, r), abs=2e-3)
        assert row["alt_ll"] == pytest.approx(window_ll(model, a), abs=2e-3)
        assert row["llr"] == pytest.approx(window_ll(model, a) - window_ll(model, r), abs=2e-3)


def test_targets_that_are_n_in_either_window_are_left_out_of_both_sums(model, tmp_path):
    """Next to a gap, the model's probabilities of the N bases move with the variant. They are left out of both
    windows' sums at the same positions (as ``score`` leaves N targets out), so the LLR measures the DNA; before,
    the gap's share swamped the variant's. An allele that holds N is not scored."""
    seq = CHROM[:1000] + "N" * 60 + CHROM[1000:2000] + "NNNRY" + CHROM[2000:2500]  # IUPAC codes read as N
    genome = tmp_path / "gap.fa"
    write_fasta(genome, "chr7", seq)
    snv = "A" if seq[979] != "A" else "C"
    vcf = tmp_path / "v.vcf"
    lines = ["#CHROM\tPOS\tID\tREF\tALT", f"chr7\t980\tsnv\t{seq[979]}\t{snv}"]
    lines += [f"chr7\t975\tdel\t{seq[974:978]}\t{seq[974]}", f"chr7\t2030\tins\t{seq[2029]}\t{seq[2029]}ACGTTG"]
    lines += ["chr7\t1001\tgap\tN\tA", f"chr7\t500\tto_n\t{seq[499]}\tN"]
    vcf.write_text("\n".join(lines) + "\n")
    g = GenomeFasta(genome, {"chr7"})
    with pytest.warns(UserWarning, match="REF or ALT holds N"):
        rows = list(score_variants(model, CharacterTokenizer(), vcf, genome, window=120, both_strands=True))
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["n_allele"] * 2
    for row in rows[:3]:
        v = Variant(1, "chr7", row["pos"], ".", row["ref"], [row["alt"]])
        r, a, _ = variant_windows(v, row["alt"], g, 120)
        gap = np.array([x not in "ACGT" or y not in "ACGT" for x, y in zip(r[1:], a[1:], strict=True)])
        assert 0 < gap.sum() == row["n_skipped"] < len(gap)
        lp_r, lp_a = seq_log_probs(model, r), seq_log_probs(model, a)
        assert row["llr_forward"] == pytest.approx(lp_a[~gap].sum() - lp_r[~gap].sum(), abs=2e-3)
        rc_r, rc_a = (seq_log_probs(model, reverse_complement(w)) for w in (r, a))
        rc_gap = np.array([x not in "ACGT" or y not in "ACGT" for x, y in zip(r[::-1][1:], a[::-1][1:], strict=True)])
        assert row["llr_reverse"] == pytest.approx(rc_a[~rc_gap].sum() - rc_r[~rc_gap].sum(), abs=2e-3)
        assert row["ref_ll"] == pytest.approx((lp_r[~gap].sum() + rc_r[~rc_gap].sum()) / 2, abs=2e-3)  # both strands
        assert row["llr"] == pytest.approx((row["llr_forward"] + row["llr_reverse"]) / 2)


def test_a_window_longer_than_the_model_reads_at_once_is_refused(genome, model, tmp_path):
    """A longer window was scored in pieces that each start their context again (the 1k model took --window 4096
    in silence), so an LLR depended on where a piece began. The longest window the model reads whole is scored as
    by hand; one base more is refused, by vep and ism alike, before any work."""
    from hyenadna.ism import in_silico_mutagenesis

    room = model.config.l_max  # the fixture's tokenizer adds no framing tokens
    alt = "A" if CHROM[1499] != "A" else "C"
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchr7\t1500\tsnv\t{CHROM[1499]}\t{alt}\n")
    (row,) = score_variants(model, CharacterTokenizer(), vcf, genome, window=room)
    r, a, _ = variant_windows(Variant(1, "chr7", 1500, ".", CHROM[1499], [alt]), alt, GenomeFasta(genome), room)
    assert row["window"] == len(r) == room
    assert row["llr"] == pytest.approx(window_ll(model, a) - window_ll(model, r), abs=2e-3)
    assert row["embedding_cosine_distance"] >= 0
    with pytest.raises(ValueError, match=f"reads at most {room:,} bases at once"):
        next(score_variants(model, CharacterTokenizer(), vcf, genome, window=room + 1))
    with pytest.raises(ValueError, match=f"give a window of at most {room:,}"):
        in_silico_mutagenesis(model, CharacterTokenizer(), genome, Interval("chr7", 1000, 1002), window=room + 1)


def test_alleles_that_cannot_be_scored_are_warned_of_a_few_at_a_time(genome, model, tmp_path):
    """A gVCF's reference blocks (<NON_REF>) or a joint call's spanning deletions (*) printed a warning line each.
    Five a status are named one by one, the rest counted in one warning; every row keeps its status."""
    import warnings

    lines = [f"chr7\t{100 + i}\t.\t{CHROM[99 + i]}\t<NON_REF>" for i in range(8)]
    lines += [f"chr7\t200\t.\t{CHROM[199]}\t*", f"chr7\t300\tsnv\t{CHROM[299]}\t{'A' if CHROM[299] != 'A' else 'C'}"]
    vcf = tmp_path / "g.vcf"
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = list(score_variants(model, CharacterTokenizer(), vcf, genome, window=100))
    assert [r["status"] for r in rows] == ["unsupported_allele"] * 9 + ["ok"]
    messages = [str(w.message) for w in caught]
    assert sum("not scored" in m for m in messages) == 5  # the first five of the status, the * among the rest
    assert sum("4 more alleles with status unsupported_allele" in m and "(9 in all" in m for m in messages) == 1


def test_a_change_past_the_chromosome_end_is_a_status_not_an_llr_of_zero(genome, model, tmp_path):
    """Deleting a chromosome's last bases leaves two windows cut to the shorter, which no longer differ: that is no
    measurement (status past_chromosome_end, no LLR), while an allele equal to REF is a true 0."""
    g = GenomeFasta(genome, {"chr7"})
    last = Variant(1, "chr7", 2999, ".", CHROM[2998:], [CHROM[2998]])
    assert variant_windows(last, CHROM[2998], g, 100) == "past_chromosome_end"
    vcf = tmp_path / "end.vcf"
    lines = ["#CHROM\tPOS\tID\tREF\tALT", f"chr7\t2999\tdel\t{CHROM[2998:]}\t{CHROM[2998]}"]
    other = "A" if CHROM[2999] != "A" else "C"
    lines += [f"chr7\t2999\tsame\t{CHROM[2998]}\t{CHROM[2998]}", f"chr7\t3000\tsnv\t{CHROM[2999]}\t{other}"]
    vcf.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="past the chromosome's end, outside both windows; not scored"):
        rows = list(score_variants(model, CharacterTokenizer(), vcf, genome, window=100))
    assert [r["status"] for r in rows] == ["past_chromosome_end", "ok", "ok"]
    assert rows[0]["llr"] is None and rows[1]["llr"] == 0 and rows[2]["llr"] != 0  # the last base itself is seen


def test_the_api_and_the_command_line_give_the_same_table(genome, tmp_path):
    """``HyenaDNA.variant_effects`` is ``hyenadna vep`` as a DataFrame: the same rows, statuses and values."""
    import pandas as pd

    from hyenadna import HyenaDNA, HyenaDNAConfig
    from hyenadna.cli import main

    vcf = tmp_path / "v.vcf"
    lines = ["#CHROM\tPOS\tID\tREF\tALT", f"chr7\t1200\tsnv\t{CHROM[1199]}\tA,C", "chr7\t5000\tpast\tA\tG"]
    lines += [f"chr7\t1700\tins\t{CHROM[1699]}\t{CHROM[1699]}AC", "chr7\t10\tsym\tA\t<DEL>"]
    vcf.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="outside chromosome"):
        table = HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny")).variant_effects(vcf, genome, window=300)
    args = ["vep", str(vcf), "--genome", str(genome), "--window", "300", "--model", str(FIXTURES / "tiny")]
    assert main([*args, "-o", str(tmp_path / "v.tsv")]) == 0
    cli = pd.read_csv(tmp_path / "v.tsv", sep="\t", keep_default_na=False, na_values=[""])
    assert list(table.columns) == list(cli.columns) and len(table) == 5
    assert (
        table["status"].tolist()
        == cli["status"].tolist()
        == ["ok", "ok", "outside_chromosome", "ok", "unsupported_allele"]
    )
    assert np.allclose(table["llr"].astype(float), cli["llr"], equal_nan=True, atol=1e-9)
    assert table["window"].tolist()[:2] == [300, 300] and table["window"].isna().tolist()[2]


def test_both_strands_average_the_reverse_complement_windows(genome, model):
    vcf = genome.parent / "s.vcf"
    alt = "A" if CHROM[999] != "A" else "C"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchr7\t1000\tsnv\t{CHROM[999]}\t{alt}\n")
    g = GenomeFasta(genome, {"chr7"})
    (row,) = score_variants(model, CharacterTokenizer(), vcf, genome, window=120, both_strands=True)
    r, a, _ = variant_windows(Variant(1, "chr7", 1000, ".", CHROM[999], [alt]), alt, g, 120)

    def rc(s: str) -> str:
        return s[::-1].translate(str.maketrans("ACGT", "TGCA"))

    fwd = window_ll(model, a) - window_ll(model, r)
    rev = window_ll(model, rc(a)) - window_ll(model, rc(r))
    assert row["llr_forward"] == pytest.approx(fwd, abs=2e-3)
    assert row["llr_reverse"] == pytest.approx(rev, abs=2e-3)
    assert row["llr"] == pytest.approx((fwd + rev) / 2, abs=2e-3)


def test_an_insertion_of_a_likely_base_does_not_score_negative_for_its_length(genome, model):
    """Insert, at 40 places, the base the model finds most likely there. With windows of unequal length each such
    insertion cost about one base's log-likelihood (-1.3 nats on real indels); now the mean LLR is near zero."""
    vcf = genome.parent / "ins.vcf"
    lines = ["#CHROM\tPOS\tID\tREF\tALT"]
    with torch.no_grad():
        for pos in range(400, 2400, 50):
            ctx = CHROM[pos - 300 : pos]  # the left flank ends with the VCF's REF base, then the insertion
            ids = torch.tensor([CharacterTokenizer().encode(ctx)])
            best = int(model(ids).logits[0, -1, 7:11].argmax())
            lines.append(f"chr7\t{pos}\t.\t{CHROM[pos - 1]}\t{CHROM[pos - 1]}{'ACGT'[best]}")
    vcf.write_text("\n".join(lines) + "\n")
    rows = list(score_variants(model, CharacterTokenizer(), vcf, genome, window=256, batch_size=16))
    llr = np.array([r["llr"] for r in rows])
    assert len(llr) == 40 and np.isfinite(llr).all()
    assert llr.mean() > -0.3, llr.mean()


def test_vep_streams_a_large_vcf_in_bounded_memory(tmp_path):
    """Rows are produced block by block while the VCF is read: peak memory (a fresh process per VCF) follows the
    block, not the file."""
    import subprocess
    import sys

    from tests.conftest import REPO

    rng = np.random.default_rng(2)
    chrom = "".join(rng.choice(list("ACGT"), 120_000))
    genome = tmp_path / "g.fa"
    genome.write_text(">1\n" + chrom + "\n")
    script = (
        "import resource, sys, torch\n"
        "from hyenadna import CharacterTokenizer, HyenaConfig, HyenaDNALMHeadModel\n"
        "from hyenadna.vep import score_variants\n"
        "torch.manual_seed(0); torch.set_num_threads(1)\n"
        "m = HyenaDNALMHeadModel(HyenaConfig(d_model=8, n_layer=1, d_inner=16, l_max=18)).eval()\n"
        "rows = score_variants(m, CharacterTokenizer(), sys.argv[1], sys.argv[2], window=16, batch_size=64)\n"
        "n = sum(1 for _ in rows)\n"
        "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    peaks = {}
    for n in (2_000, 16_000):
        vcf = tmp_path / f"{n}.vcf"
        lines = [f"1\t{p}\t.\t{chrom[p - 1]}\t{'A' if chrom[p - 1] != 'A' else 'G'}" for p in range(20, 20 + 5 * n, 5)]
        vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "\n".join(lines) + "\n")
        proc = subprocess.run(
            [sys.executable, "-c", script, str(vcf), str(genome)],
            capture_output=True,
            text=True,
            timeout=600,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows, kb = map(int, proc.stdout.split())
        assert rows == n
        peaks[n] = kb
    assert peaks[16_000] < peaks[2_000] + 20 * 1024, peaks  # eight times the variants: within 20 MB of the same peak


def test_a_bcf_is_named_with_the_line_that_makes_a_vcf_of_it(tmp_path):
    """A BCF (BGZF as bcftools writes it) failed mid-binary: "cannot read (... codec can't decode ...)"."""
    import gzip

    from hyenadna.data.readers import SequenceInputError
    from hyenadna.vep import read_vcf

    for name, data in (("a.bcf", gzip.compress(b"BCF\x02\x02\x8a\xff\x00\x00##fileformat")), ("b.bcf", b"BCF\x02\x02")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SequenceInputError, match=rf"{name} is a BCF file \(as VCF: bcftools view {name} -Oz"):
            list(read_vcf(tmp_path / name))
