"""Sequence readers and writers, and the genomic command line: embed, score, vep, generate, on good and bad input."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyenadna.cli import main
from hyenadna.data.readers import SequenceInputError, read_bed_sequences, read_sequences, reverse_complement
from hyenadna.vep import read_vcf
from tests.conftest import FIXTURES, SHARED, held_by_another_process, write_fasta

MODEL = ["--model", str(FIXTURES / "tiny"), "--threads", "1"]
rng = np.random.default_rng(0)
CHROM = "".join(rng.choice(list("ACGT"), 5000))


@pytest.fixture
def genome(tmp_path):
    path = tmp_path / "genome.fa"
    write_fasta(path, "chr7 test", CHROM)
    gz = tmp_path / "genome.fa.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    return path, gz


def names_and_seqs(path, **kw):
    return [(r.name, r.sequence) for r in read_sequences(path, **kw)]


def test_every_input_format(tmp_path, monkeypatch):
    (tmp_path / "a.fa").write_text(">x desc\nACGT\nAC\n>y\nGG\n")
    (tmp_path / "a.fq").write_text("@r1\nACGT\n+\nIIII\n@r2\nGG\n+r2\nII\n")
    (tmp_path / "a.fq.gz").write_bytes(gzip.compress((tmp_path / "a.fq").read_bytes()))
    pd.DataFrame({"ID": ["p", "q"], "Sequence": ["AC", "GT"]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"sequence": ["AC", "GT"]}).to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    (tmp_path / "a.txt").write_text("ACGT\n\nTTT\n")
    assert names_and_seqs(tmp_path / "a.fa") == [("x", "ACGTAC"), ("y", "GG")]
    assert names_and_seqs(tmp_path / "a.fq") == [("r1", "ACGT"), ("r2", "GG")]
    assert names_and_seqs(tmp_path / "a.fq.gz") == [("r1", "ACGT"), ("r2", "GG")]
    assert names_and_seqs(tmp_path / "a.csv") == [("p", "AC"), ("q", "GT")]
    assert names_and_seqs(tmp_path / "a.tsv") == [("row1", "AC"), ("row2", "GT")]
    assert names_and_seqs(tmp_path / "a.txt") == [("line1", "ACGT"), ("line3", "TTT")]
    monkeypatch.setattr(sys, "stdin", io.StringIO(">s\nAAAC\n"))
    assert names_and_seqs("-") == [("s", "AAAC")]


def test_bed_intervals_are_strand_aware_with_flanks(tmp_path, genome):
    plain, gz = genome
    bed = tmp_path / "r.bed"
    bed.write_text("7\t100\t110\tfwd\t0\t+\nchr7\t200\t210\trev\t0\t-\nchr7\t300\t305\n")
    for g in (plain, gz):  # indexed (pyfaidx) and in-memory paths agree
        recs = list(read_bed_sequences(bed, g, flank=2))
        assert recs[0].name == "fwd" and recs[0].sequence == CHROM[98:112]
        assert recs[1].sequence == reverse_complement(CHROM[198:212])
        assert recs[2].name == "chr7:300-305(+)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("chr7\t4990\t5010\n", "lies outside the chromosome"),
        ("chr9\t1\t10\n", "chromosome 'chr9' is not in"),
        ("chr7\t10\n", "expected 'chrom start end"),
        ("chr7\tx\t10\n", "start 'x' is not a whole number"),
        ("chr7\t-5\t10\n", "start '-5' is not a whole number of bases \\(0 or more\\)"),
        ("chr7\t10\t10\n", "start 10, end 10; BED needs 0 <= start < end"),
    ],
)
def test_bad_bed_lines(tmp_path, genome, content, message):
    bed = tmp_path / "bad.bed"
    bed.write_text("chr7\t1\t5\n" + content)
    with pytest.raises(SequenceInputError, match=rf"bad\.bed:2: .*{message}"):
        list(read_bed_sequences(bed, genome[0]))
    if "outside" in message:
        with pytest.warns(UserWarning, match="skipped"):
            assert len(list(read_bed_sequences(bed, genome[0], skip_invalid=True))) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("nohdr.fa", "ACGT\n>x\nAC\n", "nohdr.fa:1: sequence data before the first '>' header"),
        ("empty.fa", ">x\n>y\nAC\n", "empty.fa:1: record 'x' has no sequence"),
        ("short.fq", "@r\nACGT\n+\n", "short.fq:1: FASTQ record is cut short"),
        ("qual.fq", "@r\nACGT\n+\nII\n", "qual.fq:4: quality length 2"),
    ],
)
def test_bad_sequence_files(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(SequenceInputError, match=message):
        list(read_sequences(tmp_path / name))


def test_corrupt_gzip_is_a_clear_error(tmp_path, capsys):
    data = gzip.compress((">x\n" + "".join(rng.choice(list("ACGT"), 50_000)) + "\n").encode())
    bad = tmp_path / "bad.fa.gz"
    bad.write_bytes(data[: len(data) // 2])
    assert main(["embed", str(bad), "-o", str(tmp_path / "o.npz"), *MODEL]) == 1
    assert "truncated or not really gzip" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_invalid_character_names_record_and_position(tmp_path, capsys):
    (tmp_path / "x.fa").write_text(">ok\nACGT\n>bad\nACXGT\n")
    assert main(["embed", str(tmp_path / "x.fa"), "-o", str(tmp_path / "o.npz"), *MODEL, "--chunk-size", "1"]) == 1
    assert "sequence 1 (bad), position 3: invalid character 'X'" in capsys.readouterr().err
    assert list(tmp_path.glob("o.npz*")) == []  # no partial output


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".parquet"])
def test_embed_outputs_pooled(tmp_path, suffix):
    fa = tmp_path / "in.fa"
    fa.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGT'), 30 + i))}\n" for i in range(7)))
    out = tmp_path / f"out{suffix}"
    assert main(["embed", str(fa), "-o", str(out), *MODEL, "--chunk-size", "3"]) == 0
    if suffix == ".npz":
        d = np.load(out)
        emb, ids = d["embeddings"], list(d["ids"])
    elif suffix == ".npy":
        emb, ids = np.load(out), (tmp_path / "out.npy.ids.txt").read_text().split()
    else:
        df = pd.read_parquet(out)
        emb, ids = np.stack(df["embedding"].to_numpy()), list(df["id"])
    assert emb.shape == (7, 128) and ids == [f"s{i}" for i in range(7)]
    from hyenadna import HyenaDNA, HyenaDNAConfig

    sdk = HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny", pooling="mean"))
    want = sdk.get_embeddings([r.sequence for r in read_sequences(fa)])
    assert np.abs(emb - want).max() < 1e-5


def test_embed_per_token_npz_and_parquet(tmp_path):
    fa = tmp_path / "in.fa"
    fa.write_text(">a\nACGTACGTAA\n>b\nGGC\n")
    assert main(["embed", str(fa), "-o", str(tmp_path / "t.npz"), "--pooling", "none", *MODEL]) == 0
    d = np.load(tmp_path / "t.npz")
    assert d["emb_0"].shape == (10, 128) and d["emb_1"].shape == (3, 128) and list(d["lengths"]) == [10, 3]
    assert main(["embed", str(fa), "-o", str(tmp_path / "t.parquet"), "--pooling", "none", *MODEL]) == 0
    df = pd.read_parquet(tmp_path / "t.parquet")
    assert np.allclose(np.stack(df["embedding"][1]), d["emb_1"], atol=1e-6)


def test_per_token_lengths_are_the_rows_output_under_truncate(tmp_path):
    """Under --long-sequences truncate a long record gets the context's rows: its per-token length says so in every
    format (it said the input's 1,500 bases over 1,026 rows); pooled output keeps the input's length."""
    from hyenadna import HyenaDNA, HyenaDNAConfig

    fa = tmp_path / "in.fa"
    fa.write_text(f">long\n{'ACGT' * 375}\n>short\nACGTA\n")
    args = ["--pooling", "none", "--long-sequences", "truncate", *MODEL]
    for suffix in (".npz", ".npy", ".parquet"):
        assert main(["embed", str(fa), "-o", str(tmp_path / f"t{suffix}"), *args]) == 0
    npz = np.load(tmp_path / "t.npz")
    assert list(npz["lengths"]) == [1026, 5] and npz["emb_0"].shape[0] == 1026
    assert (tmp_path / "t.npy.lengths.txt").read_text() == "1026\n5\n"
    assert np.load(tmp_path / "t.npy").shape[1] == 1026
    assert pd.read_parquet(tmp_path / "t.parquet")["length"].tolist() == [1026, 5]
    assert main(["embed", str(fa), "-o", str(tmp_path / "p.npz"), "--long-sequences", "truncate", *MODEL]) == 0
    assert list(np.load(tmp_path / "p.npz")["lengths"]) == [1500, 5]
    model = HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny"))
    assert model.per_base_rows(["A" * 1500, "ACG"]).tolist() == [1500, 3]
    assert model.per_base_rows(["A" * 1500, "ACG"], long_sequences="truncate").tolist() == [1026, 3]


def test_embed_per_token_npy_is_filled_on_disk(tmp_path, monkeypatch, capsys):
    """Per token, .npy is one (N, L_max, D) array a layer, memory-mapped while it is filled: the rows of the .npz,
    zeros past each end, ids and lengths beside it; no memory check refuses it, and a disk without room does."""
    import shutil

    from hyenadna.data import pipeline

    fa = tmp_path / "in.fa"
    seqs = {"long": "".join(rng.choice(list("ACGT"), 2500)), "b": "GGCA", "c": "ACGTNACGTA"}
    fa.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    args = ["--pooling", "none", "--layer", "1", "2", *MODEL]
    assert main(["embed", str(fa), "-o", str(tmp_path / "t.npz"), *args]) == 0
    monkeypatch.setattr(pipeline, "available_bytes", lambda device="cpu": 1)
    assert main(["embed", str(fa), "-o", str(tmp_path / "t.npy"), *args]) == 0
    for layer in (1, 2):
        npz = np.load(tmp_path / f"t.layer{layer}.npz")
        npy = np.load(tmp_path / f"t.layer{layer}.npy", mmap_mode="r")
        assert npy.shape == (3, 2500, 128) and npy.dtype == np.float32
        assert (tmp_path / f"t.layer{layer}.npy.ids.txt").read_text() == "long\nb\nc\n"
        assert (tmp_path / f"t.layer{layer}.npy.lengths.txt").read_text() == "2500\n4\n10\n"
        for i, n in enumerate((2500, 4, 10)):
            assert np.abs(npy[i, :n] - npz[f"emb_{i}"]).max() < 1e-4 and not npy[i, n:].any()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 10**6))
    capsys.readouterr()
    assert main(["embed", str(fa), "-o", str(tmp_path / "full.npy"), "--pooling", "none", *MODEL]) == 1
    err = capsys.readouterr().err
    assert "per-token .npy of 3 records (2,514 bases) needs 0.0 GB of disk, and" in err and "0.0 GB free" in err
    assert not list(tmp_path.glob("*full*"))
    from hyenadna.data.writers import EmbeddingWriter

    with pytest.raises(ValueError, match=r"a per-token \.npy is filled on disk by get_embeddings\(allocate=\.\.\.\)"):
        EmbeddingWriter(tmp_path / "w.npy", per_token=True)  # the streaming writer takes .npz and .parquet per token


def test_embed_per_token_memory_follows_the_bases_not_the_count_times_the_longest(tmp_path, monkeypatch, capsys):
    from hyenadna.cli import common, embed
    from hyenadna.data import pipeline

    seqs = {"long": "".join(rng.choice(list("ACGT"), 3000)), **{f"s{i}": "ACGTTGCA" * 2 for i in range(20)}}
    fa = tmp_path / "in.fa"
    fa.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    bases = sum(len(v) for v in seqs.values())
    # room for every record's rows, not for 21 rows as long as the longest (the padded layout: 21 x 3,000)
    monkeypatch.setattr(pipeline, "available_bytes", lambda device="cpu": 4 * 128 * bases)
    assert main(["embed", str(fa), "-o", str(tmp_path / "t.npz"), "--pooling", "none", *MODEL]) == 0
    d = np.load(tmp_path / "t.npz")
    assert [d[f"emb_{i}"].shape[0] for i in range(21)] == [len(v) for v in seqs.values()]
    # per token, a chunk holds about PER_TOKEN_CHUNK_BYTES of rows (a longer record alone)
    monkeypatch.setattr(embed, "PER_TOKEN_CHUNK_BYTES", 4 * 128 * 100)
    chunks = []
    real = common.in_chunks
    monkeypatch.setattr(embed, "in_chunks", lambda *a: (chunks.append(c) or c for c in real(*a)))
    assert main(["embed", str(fa), "-o", str(tmp_path / "c.npz"), "--pooling", "none", *MODEL]) == 0
    assert [len(c) for c in chunks] == [1, 6, 6, 6, 2]
    c = np.load(tmp_path / "c.npz")  # batches of other sizes round differently (8.7e-6 seen)
    assert list(c["ids"]) == list(d["ids"]) and all(
        np.abs(c[f"emb_{i}"] - d[f"emb_{i}"]).max() < 1e-4 for i in range(21)
    )
    # a record whose rows cannot fit: a one-line error naming it, before any work
    monkeypatch.setattr(pipeline, "available_bytes", lambda device="cpu": 4 * 128 * 2000)
    capsys.readouterr()
    assert main(["embed", str(fa), "-o", str(tmp_path / "e.npz"), "--pooling", "none", *MODEL]) == 1
    err = capsys.readouterr().err
    assert "hyenadna embed: error: per-base embeddings of 'long' (3,000 bases) take 0.0 GB, and 0.0 GB is" in err
    assert (
        "pool them (--pooling mean), write them to disk (-o OUT.npy), or embed it in shorter pieces (--bed intervals"
        " of --genome)" in err
    )
    assert "Traceback" not in err and not (tmp_path / "e.npz").exists()


def test_embed_per_token_parquet_is_written_from_the_arrays_and_refused_where_it_cannot_fit(
    tmp_path, monkeypatch, capsys
):
    import pyarrow.parquet as pq

    from hyenadna.data import pipeline
    from hyenadna.data.writers import PARQUET_PER_TOKEN_COPIES
    from hyenadna.utils import memory

    fa = tmp_path / "in.fa"
    fa.write_text(">a\n" + "".join(rng.choice(list("ACGT"), 1500)) + "\n>b\nGGCA\n")
    rows = 4 * 128 * 1504
    # room for the rows, not for what pyarrow holds while it encodes them
    for module in (pipeline, memory):
        monkeypatch.setattr(module, "available_bytes", lambda device="cpu": 2 * rows)
    assert main(["embed", str(fa), "-o", str(tmp_path / "t.npz"), "--pooling", "none", *MODEL]) == 0
    capsys.readouterr()
    assert main(["embed", str(fa), "-o", str(tmp_path / "t.parquet"), "--pooling", "none", *MODEL]) == 1
    err = capsys.readouterr().err
    assert (
        f"per-token Parquet of 2 records (1,504 bases) needs about {rows * (1 + PARQUET_PER_TOKEN_COPIES) / 1e9:.1f}"
        in err
    )
    assert "write .npz (one array a record, as it is)" in err and not (tmp_path / "t.parquet").exists()
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": None)
    assert main(["embed", str(fa), "-o", str(tmp_path / "t.parquet"), "--pooling", "none", *MODEL]) == 0
    d, df = np.load(tmp_path / "t.npz"), pd.read_parquet(tmp_path / "t.parquet")
    assert all(np.array_equal(np.stack(df["embedding"][i]), d[f"emb_{i}"]) for i in range(2))
    # no dictionary for the embeddings (it held about 30x the column's size); the ids keep theirs
    meta = pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert not any("DICTIONARY" in e for e in encodings["embedding.list.element.list.element"])
    assert any("DICTIONARY" in e for e in encodings["id"])
    # nor compression (snappy made floats 0.5% smaller and held another copy of the rows while it ran)
    codecs = {meta.column(i).path_in_schema: meta.column(i).compression for i in range(meta.num_columns)}
    assert codecs == {"id": "SNAPPY", "length": "SNAPPY", "embedding.list.element.list.element": "UNCOMPRESSED"}


@pytest.mark.parametrize("command", ["embed", "score"])
def test_progress_is_logged_within_a_long_record_without_a_terminal(tmp_path, monkeypatch, capsys, command):
    from hyenadna.cli import common

    fa = tmp_path / "in.fa"
    fa.write_text(">long\n" + "".join(rng.choice(list("ACGT"), 6000)) + "\n>short\nACGT\n")
    monkeypatch.setattr(common, "PROGRESS_LOG_SECONDS", 0.0)  # a line at every batch (a minute apart in a real log)
    out = str(tmp_path / ("e.npz" if command == "embed" else "s.jsonl"))
    capsys.readouterr()
    assert main([command, str(fa), "-o", out, "--batch-size", "2", *MODEL]) == 0
    lines = capsys.readouterr().err.splitlines()
    done = [int(x.split(", ")[1].split(" bp")[0].replace(",", "")) for x in lines if x.startswith("... ")]
    assert len(done) > 2 and done == sorted(done) and done[-1] == 6004  # the long record's windows tick by
    assert lines[-1].startswith(f"{command}{'ded' if command == 'embed' else 'd'} 2 sequences (6,004 bp) in ")


def test_in_chunks_by_count_and_bases():
    from types import SimpleNamespace

    from hyenadna.cli.common import in_chunks

    recs = [SimpleNamespace(sequence="A" * n) for n in (5, 1, 1, 20, 2, 2, 2)]
    assert [len(c) for c in in_chunks(recs, 3)] == [3, 3, 1]
    assert [len(c) for c in in_chunks(recs, 3, max_bases=6)] == [2, 1, 1, 3]
    assert [len(c) for c in in_chunks(recs, 10, max_bases=4)] == [1, 2, 1, 2, 1]


def test_embed_bed_on_genome(tmp_path, genome):
    bed = tmp_path / "r.bed"
    bed.write_text("chr7\t10\t60\tr1\t0\t-\n")
    out = tmp_path / "b.npz"
    assert main(["embed", "--bed", str(bed), "--genome", str(genome[1]), "-o", str(out), *MODEL]) == 0
    assert list(np.load(out)["ids"]) == ["r1"]


def test_score_matches_direct_computation(tmp_path):
    import torch

    from hyenadna import CharacterTokenizer, load_model

    fa = tmp_path / "s.fa"
    seq = "".join(rng.choice(list("ACGT"), 80))
    fa.write_text(f">s\n{seq}\n")
    assert main(["score", str(fa), "-o", str(tmp_path / "s.jsonl"), *MODEL]) == 0
    row = json.loads((tmp_path / "s.jsonl").read_text())
    model = load_model(FIXTURES / "tiny")
    ids = torch.tensor([CharacterTokenizer().encode(seq)])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits, -1)[0, :-1].gather(-1, ids[0, 1:, None]).sum().item()
    assert row["log_likelihood"] == pytest.approx(logp, abs=1e-3) and row["n_scored"] == 79
    assert row["perplexity"] == pytest.approx(np.exp(-logp / 79), rel=1e-4)


def test_score_of_a_sequence_with_nothing_scored_is_empty_not_perfect(tmp_path):
    """One base, or only N, leaves nothing to score: NLL and perplexity are null (JSON) or empty (TSV), not 0 and 1."""
    fa = tmp_path / "s.fa"
    fa.write_text(">one\nA\n>gap\nNNNNNN\n>dna\nACGTNNACGT\n")
    assert main(["score", str(fa), "-o", str(tmp_path / "s.jsonl"), *MODEL]) == 0
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [(r["n_scored"], r["n_skipped"]) for r in rows] == [(0, 0), (0, 5), (7, 2)]
    assert [r["perplexity"] is None and r["nll_per_base"] is None for r in rows] == [True, True, False]
    assert main(["score", str(fa), "-o", str(tmp_path / "s.tsv"), *MODEL]) == 0
    df = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert df["perplexity"].isna().tolist() == [True, True, False] and df["perplexity"][2] > 1


def test_vep_on_real_vcf_with_warnings(tmp_path, capsys):
    vcf = tmp_path / "v.vcf"
    genome = SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"
    with gzip.open(SHARED / "data" / "variants" / "vt_chr20_indels.vcf.gz", "rt") as f:
        real = f.read().splitlines()
    header = [x for x in real if x.startswith("#")]
    data = [x for x in real if not x.startswith("#")][:2]
    wrong_ref = data[0].split("\t")
    wrong_ref[3] = "T" if wrong_ref[3] != "T" else "G"
    multi = data[1].split("\t")
    multi[4] = multi[4] + "," + multi[3] + "A"
    lines = [*header, data[0], "\t".join(wrong_ref), "\t".join(multi), "chr20\t99999999\t.\tA\tG\t.\t.\t."]
    vcf.write_text("\n".join(lines) + "\n")
    out = tmp_path / "v.tsv"
    assert main(["vep", str(vcf), "--genome", str(genome), "--window", "128", "-o", str(out), *MODEL]) == 0
    df = pd.read_csv(out, sep="\t")
    assert list(df["status"]) == ["ok", "ref_mismatch", "ok", "ok", "outside_chromosome"]
    assert np.isfinite(df["llr"][0]) and np.isnan(df["llr"][1])
    err = capsys.readouterr().err
    assert "differs from the genome" in err and "outside chromosome" in err


def test_vep_multiallelic_outside_genome():
    rows = list(read_vcf(SHARED / "data" / "variants" / "vt_multiallelic_chr1.vcf"))
    assert len(rows) == 1 and len(rows[0].alts) > 1


def test_generate_is_seeded(tmp_path):
    args = ["generate", "--prompt", "ACGTACGT", "--length", "12", "--num-samples", "2", "--seed", "3", *MODEL]
    assert main([*args, "-o", str(tmp_path / "a.fa")]) == 0
    assert main([*args, "-o", str(tmp_path / "b.fa")]) == 0
    text = (tmp_path / "a.fa").read_text()
    assert text == (tmp_path / "b.fa").read_text()
    seqs = [r.sequence for r in read_sequences(tmp_path / "a.fa")]
    assert len(seqs) == 2 and all(len(s) == 20 and set(s) <= set("ACGT") for s in seqs)
    # .gz is gzip (it was plain text under a .gz name), the same bytes each time; a table's name is refused
    for name in ("c.fa.gz", "d.fa.gz"):
        assert main([*args, "-o", str(tmp_path / name)]) == 0
    assert gzip.decompress((tmp_path / "c.fa.gz").read_bytes()).decode() == text
    assert (tmp_path / "c.fa.gz").read_bytes() == (tmp_path / "d.fa.gz").read_bytes()
    assert main([*args, "-o", str(tmp_path / "e.json")]) == 1 and not (tmp_path / "e.json").exists()


def test_generate_continues_each_record_of_a_file_or_bed(tmp_path, capsys):
    """Prompts from a FASTA file (each record continued, named after it) or from BED intervals of a genome; a bad
    base is reported at its file, line and column; --prompt and INPUT together are refused."""
    fasta = tmp_path / "loci.fa"
    fasta.write_text(">a\nACGTACGTAC\n>b\nGGGGCCCC\n")
    out = tmp_path / "out.fa"
    assert main(["generate", str(fasta), "--length", "6", "--num-samples", "2", "-o", str(out), *MODEL]) == 0
    records = list(read_sequences(out))
    assert [r.name for r in records] == ["a_sample1", "a_sample2", "b_sample1", "b_sample2"]
    assert [r.sequence[:-6] for r in records] == ["ACGTACGTAC"] * 2 + ["GGGGCCCC"] * 2
    single = tmp_path / "single.fa"
    args = ["generate", "--prompt", "GGGGCCCC", "--length", "6", "--num-samples", "2", "-o", str(single), *MODEL]
    assert main(args) == 0
    assert [r.sequence for r in read_sequences(single)] == [r.sequence for r in records[2:]]  # the same seed
    genome = write_fasta(tmp_path / "g.fa", "chr1", "ACGTTGCAAC" * 10)
    (tmp_path / "p.bed").write_text("chr1\t10\t30\tlocus\t0\t+\n")
    bed_args = ["--bed", str(tmp_path / "p.bed"), "--genome", str(genome)]
    assert main(["generate", *bed_args, "--length", "5", "-o", str(out), *MODEL]) == 0
    assert [(r.name, r.sequence[:20]) for r in read_sequences(out)] == [("locus_sample1", "ACGTTGCAAC" * 2)]
    (tmp_path / "bad.fa").write_text(">x\nACGT\n>y\nACGXT\n")
    assert main(["generate", str(tmp_path / "bad.fa"), "--length", "5", "-o", str(tmp_path / "none.fa"), *MODEL]) == 1
    err = capsys.readouterr().err
    assert "bad.fa:4:4: sequence 1 (y), position 4" in err and not (tmp_path / "none.fa").exists()
    assert main(["generate", str(fasta), "--prompt", "ACGT", *MODEL]) == 1
    assert "one of them" in capsys.readouterr().err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_readers_never_raise_uncaught_exceptions(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("fuzz")
    for name in ("x.fa", "x.fa.gz", "x.fq", "x.vcf", "x.bed"):
        (d / name).write_bytes(data if not name.endswith(".gz") else b"\x1f\x8b" + data)
    (d / "g.fa").write_text(">chr1\nACGTACGTAC\n")
    for fn in (
        lambda: list(read_sequences(d / "x.fa")),
        lambda: list(read_sequences(d / "x.fa.gz")),
        lambda: list(read_sequences(d / "x.fq")),
        lambda: list(read_vcf(d / "x.vcf")),
        lambda: list(read_bed_sequences(d / "x.bed", d / "g.fa")),
    ):
        with contextlib.suppress(SequenceInputError):  # the documented error is fine; anything else fails
            fn()


def test_one_fasta_parser_for_files_and_stdin(tmp_path, monkeypatch):
    """Files, gzip and standard input go through the same parser: same records, same errors."""
    text = ">a first\tdesc\nACGT\n; a comment line\n\nGG\n>b\nTTTT\n"
    fa = tmp_path / "x.fa"
    fa.write_text(text)
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    from_stdin = [(r.name, r.sequence) for r in read_sequences("-")]
    assert from_stdin == [(r.name, r.sequence) for r in read_sequences(fa)] == [("a", "ACGTGG"), ("b", "TTTT")]
    bad = ">a\nACGT\n>\nAC\n"
    fa.write_text(bad)
    monkeypatch.setattr(sys, "stdin", io.StringIO(bad))
    for source in ("-", fa):
        with pytest.raises(SequenceInputError, match=r":3: empty FASTA header"):
            list(read_sequences(source))


def test_a_byte_order_mark_and_spaced_sequence_lines_are_read_as_dna(tmp_path, monkeypatch, capsys):
    """A file saved by a Windows editor starts with a UTF-8 byte-order mark: FASTA read it as sequence data before
    the first header, FASTQ as a bad header, text as the character '\ufffd', BED as chromosome '\ufeff20'. Spaces and
    tabs inside FASTA sequence lines (GenBank-style blocks) were invalid characters; whitespace is no base."""
    from hyenadna.data.regions import Interval, read_bed

    bom = b"\xef\xbb\xbf"
    cases = {
        "x.fa": b">a\nACGT\n",
        "x.fa.gz": gzip.compress(bom + b">a\nACGT\n"),
        "x.fq": b"@a\nACGT\n+\nIIII\n",
        "x.txt": b"ACGT\n",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content if name.endswith(".gz") else bom + content)
        assert [r.sequence for r in read_sequences(path)] == ["ACGT"], name
    monkeypatch.setattr(sys, "stdin", io.StringIO("\ufeff>a\nACGT\n"))
    assert [(r.name, r.sequence) for r in read_sequences("-")] == [("a", "ACGT")]
    (tmp_path / "x.bed").write_bytes(bom + b"chr20\t10\t20\n")
    assert read_bed(tmp_path / "x.bed") == [Interval("20", 10, 20)]
    (tmp_path / "x.vcf").write_bytes(bom + b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n20\t5\trs1\tA\tG\n")
    assert [(v.chrom, v.pos) for v in read_vcf(tmp_path / "x.vcf")] == [("20", 5)]
    from hyenadna.data.readers import GenomeFasta

    (tmp_path / "genome.fa").write_bytes(bom + b">chr1\nACGTACGTAC\nGGGGCCCCAA\n")  # plain: pyfaidx refused it
    genome = GenomeFasta(tmp_path / "genome.fa")
    assert genome.sizes == {"1": 20} and genome.fetch("chr1", 2, 12) == "GTACGTACGG"
    (tmp_path / "spaced_genome.fa").write_text(">chr1\nACGTA CGTAC\nGGGGC CCCAA\n")  # pyfaidx counts the spaces
    with pytest.raises(SequenceInputError, match=r"sequence lines hold spaces or tabs, which the index counts"):
        GenomeFasta(tmp_path / "spaced_genome.fa").fetch("chr1", 2, 12)
    (tmp_path / "spaced_genome.fa.gz").write_bytes(gzip.compress(b">chr1\nACGTA CGTAC\nGGGGC CCCAA\n"))
    assert GenomeFasta(tmp_path / "spaced_genome.fa.gz").fetch("chr1", 2, 12) == "GTACGTACGG"
    (tmp_path / "hg19.2bit").write_bytes(b"\x43\x27\x41\x1a" + bytes(12))  # pyfaidx's "Unexpected text" before
    with pytest.raises(SequenceInputError, match=r"hg19\.2bit: a \.2bit genome; give it as FASTA \(`twoBitToFa"):
        GenomeFasta(tmp_path / "hg19.2bit")
    spaced = tmp_path / "spaced.fa"
    spaced.write_text(">a\nACGTA CGTAC\tGG\nTT\n")
    assert [r.sequence for r in read_sequences(spaced)] == ["ACGTACGTACGGTT"]
    spaced.write_text(">a\nAC GT\nAX\n")  # a bad base after dropped spaces: its position counts bases only
    assert main(["embed", str(spaced), "-o", str(tmp_path / "e.npz")]) == 1
    assert "sequence 0 (a), position 6: invalid character 'X'" in capsys.readouterr().err


def test_atomic_writes_name_the_file_asked_for(tmp_path):
    """A folder as the output, or a place that cannot be written, named the hidden temporary file
    ("[Errno 2] No such file or directory: '/proc/.x.npz.pubfqmo_.tmp'") or came from deep in a writer."""
    from hyenadna.utils.io import atomic_write_text

    with pytest.raises(IsADirectoryError, match=f"^{tmp_path} is a folder; give a file name to write$"):
        atomic_write_text(tmp_path, "x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match=f"^cannot write {blocker}/x.tsv: "):
        atomic_write_text(blocker / "x.tsv", "x")  # its parent is a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_figures_are_written_in_the_format_their_extension_names(tmp_path):
    """`--plot x.pdf` wrote a PNG under the .pdf name; PDF and SVG are written as such, the same bytes each time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyenadna.utils.io import save_figure

    magic = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}
    for fmt, start in magic.items():
        runs = []
        for k in range(2):
            fig, ax = plt.subplots()
            ax.plot([0, 1], [1, 0])
            save_figure(fig, tmp_path / f"f{k}.{fmt}")
            runs.append((tmp_path / f"f{k}.{fmt}").read_bytes())
        assert runs[0].startswith(start) and runs[0] == runs[1]
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match=r"f\.jpg: a figure is written as \.png, \.pdf or \.svg"):
        save_figure(fig, tmp_path / "f.jpg")
    plt.close(fig)
    assert not (tmp_path / "f.jpg").exists()
    with pytest.raises(SystemExit) as e:  # refused by the parser, before any work
        main(["ism", "--genome", "g.fa", "--region", "chr1:0-10", "--plot", str(tmp_path / "m.jpeg")])
    assert e.value.code == 2


def test_a_run_folder_is_one_processs(tmp_path):
    """A second process is refused a folder a run holds, naming the holder (its process, host and command, from the
    lock file, so also across the nodes of a network file system); the same process may hold it again (the command,
    then the library function it calls); the lock file goes when the run ends, a folder made for a run that wrote
    nothing is removed, and a killed holder (SIGKILL) leaves a file that locks nothing."""
    import socket

    from hyenadna.utils.io import LOCK_FILE, FolderInUseError, hold_folder

    run = tmp_path / "run"
    with held_by_another_process(run) as child:
        message = rf"run is in use by another run \(process {child.pid} on {socket.gethostname()}: -c {run}\)"
        with pytest.raises(FolderInUseError, match=message), hold_folder(run):
            pass
    assert [p.name for p in run.iterdir()] == [LOCK_FILE]  # left by the killed child
    with hold_folder(run), hold_folder(run):  # free again, and ours twice over
        (run / "metrics.jsonl").write_text("")
    assert [p.name for p in run.iterdir()] == ["metrics.jsonl"]
    with contextlib.suppress(ValueError), hold_folder(tmp_path / "new" / "deeper"):
        raise ValueError("an error before any output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_second_pretrain_or_fine_tune_in_a_running_ones_folder_is_refused(tmp_path, capsys):
    """The same command started twice (a requeued job while the first still runs): the second interleaved its
    metrics.jsonl with the first's and overwrote its checkpoints and pretrain_config.json. Now it is refused before
    it writes anything."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "pretrain_config.json").write_text("the first run's")
    with held_by_another_process(run):
        pretrain = ["pretrain", "--fasta", str(tmp_path / "genome.fa"), "--out", str(run), "--max-steps", "5"]
        assert main(pretrain) == 1
        assert "run is in use by another pretraining run (process " in capsys.readouterr().err
        assert main([*pretrain, "--resume"]) == 1
        assert "run is in use by another pretraining run (process " in capsys.readouterr().err
    assert (run / "pretrain_config.json").read_text() == "the first run's"
    ft = tmp_path / "ft"  # a fine-tuning run's folder, before its first epoch's state: empty
    with held_by_another_process(ft):
        task = SHARED / "benchmarks" / "promoter_all"
        assert main(["fine-tune", str(task), "--out", str(ft), *MODEL]) == 1
        assert "ft is in use by another fine-tuning run (process " in capsys.readouterr().err
    from hyenadna.cli.finetune import check_out_folder
    from hyenadna.utils.io import LOCK_FILE

    assert [p.name for p in ft.iterdir()] == [LOCK_FILE]  # its holder was killed: a file that locks nothing
    check_out_folder(ft, overwrite=False)  # and leaves the folder empty for the next fine-tune
