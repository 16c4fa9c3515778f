from __future__ import annotations

import gzip
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from hyenadna.cli import main
from tests.conftest import FIXTURES, REPO

EXAMPLE = REPO / "hyenadna" / "examples" / "example.fa"


def test_embed_example_with_random_model(tmp_path, capsys):
    out = tmp_path / "emb.npz"
    assert main(["embed", str(EXAMPLE), "-o", str(out), "--random-init"]) == 0
    data = np.load(out)
    assert data["embeddings"].shape == (5, 256)
    assert data["ids"][0] == "20:5000000-5000600"
    assert data["lengths"].tolist() == [600, 1200, 300, 2500, 800]
    assert "RANDOMLY INITIALISED" in capsys.readouterr().err


def test_embed_with_checkpoint_path_and_npy(tmp_path):
    out = tmp_path / "emb.npy"
    assert main(["embed", str(EXAMPLE), "-o", str(out), "--model", str(FIXTURES / "tiny_hf"), "--pooling", "max"]) == 0
    assert np.load(out).shape == (5, 128)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ACGT\n>x\nACGT\n", "sequence data before the first '>' header"),
        (">x\n>y\nACGT\n", "record 'x' has no sequence"),
        (">x\nAC-GT\n", "sequence 0 (x), position 3: invalid character '-'"),
    ],
)
def test_embed_bad_fasta_exits_1_with_a_clear_message(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.fa"
    bad.write_text(content)
    out = tmp_path / "out.npz"
    assert main(["embed", str(bad), "-o", str(out), "--random-init"]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_corrupt_gzip(tmp_path, capsys):
    bad = tmp_path / "bad.fa.gz"
    rng = np.random.default_rng(0)
    fasta = b">x\n" + rng.choice(list(b"ACGT"), 20_000).astype(np.uint8).tobytes() + b"\n"  # bases, not int64s
    data = gzip.compress(fasta)
    for cut in (len(data) // 2, 30):  # the second ends before 4 KiB of text: not a "binary file" for its bytes
        bad.write_bytes(data[:cut])
        assert main(["embed", str(bad), "-o", str(tmp_path / "o.npz"), "--random-init"]) == 1
        assert "may be truncated" in capsys.readouterr().err


def test_missing_weights_exit_1(tmp_path, capsys):
    assert main(["embed", str(EXAMPLE), "-o", str(tmp_path / "o.npz"), "--model", "hyenadna-tiny-1k-seqlen"]) == 1
    assert "LongSafari/hyenadna-tiny-1k-seqlen" in capsys.readouterr().err


def test_info_and_convert(tmp_path, capsys):
    assert main(["convert", str(FIXTURES / "tiny" / "lightning_weights.ckpt"), str(tmp_path / "conv")]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "conv")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 436_096 and info["context"] == 1026
    assert main(["info", "--model", str(tmp_path / "conv")]) == 0  # as every other command names its model
    assert json.loads(capsys.readouterr().out) == info
    assert main(["info", str(FIXTURES / "tiny"), "--model", str(tmp_path / "conv")]) == 1
    assert "two models named" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert re.fullmatch(r"hyenadna \d+\.\d+\.\d+ \(torch \S+, Python \d+\.\d+\.\d+\)\n", capsys.readouterr().out)


def test_usage_error_exits_2():
    with pytest.raises(SystemExit) as e:
        main(["embed"])
    assert e.value.code == 2


def test_precision_bf16_embeds_close_to_fp32(tmp_path):
    runs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.npy"
        args = ["embed", str(EXAMPLE), "-o", str(out), "--model", str(FIXTURES / "tiny"), "--precision", precision]
        assert main(args) == 0
        runs[precision] = np.load(out)
    assert not np.array_equal(runs["fp32"], runs["bf16"])
    assert np.abs(runs["fp32"] - runs["bf16"]).max() < 0.05 * np.abs(runs["fp32"]).max()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["generate", "--prompt", "ACGT", "--top-k", "0"], "--top-k"),
        (["generate", "--prompt", "ACGT", "--top-k", "-1"], "--top-k"),
        (["generate", "--prompt", "ACGT", "--num-samples", "0"], "--num-samples"),
        (["generate", "--prompt", "ACGT", "--temperature", "0"], "--temperature"),
        (["generate", "--prompt", "ACGT", "--length", "-3"], "--length"),
        (["generate", "--prompt", "ACGT", "--top-p", "0"], "--top-p"),
        (["generate", "--prompt", "ACGT", "--top-p", "1.5"], "--top-p"),
        (["vep", "v.vcf", "--genome", "g.fa", "--window", "-5"], "--window"),
        (["vep", "v.vcf", "--genome", "g.fa", "--window", "1"], "--window"),
        (["embed", "x.fa", "-o", "y.npz", "--chunk-size", "0"], "--chunk-size"),
        (["embed", "x.fa", "-o", "y.npz", "--threads", "0"], "--threads"),
        (["embed", "x.fa", "-o", "y.npz", "--batch-size", "0"], "--batch-size"),
        (["embed", "x.fa", "-o", "y.npz", "--flank", "-1"], "--flank"),
        (["embed", "x.fa", "-o", "y.npz", "--overlap", "-1"], "--overlap"),
        (["score", "x.fa", "--overlap", "0"], "--overlap"),
        (["pretrain", "--out", "r", "--lr", "0"], "--lr"),
        (["pretrain", "--out", "r", "--seq-len", "1"], "--seq-len"),
        (["pretrain", "--out", "r", "--filter-geometric-bands", "-1"], "--filter-geometric-bands"),
        (["benchmark", "--suite", "nt", "--out", "o", "--max-train", "0"], "--max-train"),
        (["fine-tune", "task", "--out", "o", "--epochs", "0"], "--epochs"),
    ],
)
def test_numeric_flags_are_validated(args, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err


def test_score_leaves_n_out_and_counts_it(tmp_path):
    """N targets (or IUPAC codes mapped to N) are left out of the log-likelihood and n_scored, and counted apart."""
    rng = np.random.default_rng(5)
    seq = "".join(rng.choice(list("ACGT"), 400))
    masked = seq[:150] + "N" * 100 + seq[250:]
    fa = tmp_path / "s.fa"
    fa.write_text(f">clean\n{seq}\n>masked\n{masked}\n>iupac\n{seq[:150] + 'R' * 100 + seq[250:]}\n")
    out = tmp_path / "s.jsonl"
    assert main(["score", str(fa), "-o", str(out), "--model", str(FIXTURES / "tiny")]) == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["clean"]["n_scored"] == 399 and rows["clean"]["n_skipped"] == 0
    assert rows["masked"]["n_scored"] == 299 and rows["masked"]["n_skipped"] == 100
    assert rows["iupac"]["n_skipped"] == 100 and rows["iupac"]["log_likelihood"] == rows["masked"]["log_likelihood"]


def _cli(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "hyenadna.cli", *args]


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    """`timeout`, `kill` and schedulers send SIGTERM: no hidden temp file is left, and the exit says so."""
    import signal
    import subprocess
    import time

    big = tmp_path / "big.fa"
    rng = np.random.default_rng(0)
    big.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGT'), 2000))}\n" for i in range(400)))
    out = tmp_path / "out.npz"
    proc = subprocess.Popen(
        _cli("embed", str(big), "-o", str(out), "--model", str(FIXTURES / "tiny"), "--chunk-size", "10"),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".out.npz.*")):
        time.sleep(0.05)  # wait until it is writing
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.fa"]


def test_broken_pipe_is_quiet():
    import subprocess

    cmd = " ".join(_cli("info", str(FIXTURES / "tiny"))) + " | head -c 10"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert res.stderr == "" and len(res.stdout) == 10


def test_convert_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    dst = tmp_path / "out"
    assert main(["convert", str(FIXTURES / "tiny_hf"), str(dst), "--layout", "lightning"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "weights.ckpt"]
    assert main(["convert", str(FIXTURES / "tiny_hf"), str(dst)]) == 1  # not empty
    assert main(["convert", str(FIXTURES / "tiny_hf"), str(dst), "--overwrite"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "model.safetensors"]  # the old layout is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folders left


def test_converting_into_the_sources_own_folder_is_refused(tmp_path, capsys):
    """`convert X X --overwrite` swapped the source folder out (and deleted it); the library's convert_checkpoint(X, X)
    rewrote the source's weights and config.json in the other layout, in place."""
    from hyenadna import convert_checkpoint

    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "tiny", src)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    for dest in (src, tmp_path):
        assert main(["convert", str(src), str(dest), "--overwrite"]) == 1
        assert f"{dest} holds the source {src}: write the converted checkpoint to another folder" in (
            capsys.readouterr().err
        )
    assert main(["convert", str(src / "lightning_weights.ckpt"), str(src), "--overwrite"]) == 1
    for source in (src, src / "lightning_weights.ckpt"):
        with pytest.raises(ValueError, match="is the source's own folder: write the converted checkpoint to another"):
            convert_checkpoint(source, src, layout="hf")
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError, match="a_file is a file; a checkpoint is saved as a folder"):
        convert_checkpoint(src, tmp_path / "a_file")


def test_header_only_vcf_writes_a_header_and_says_so(tmp_path, capsys):
    from tests.conftest import SHARED

    vcf = tmp_path / "empty.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n")
    out = tmp_path / "e.tsv"
    genome = SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"
    assert main(["vep", str(vcf), "--genome", str(genome), "-o", str(out), "--model", str(FIXTURES / "tiny")]) == 0
    assert out.read_text().startswith("chrom\tpos\tid\tref\talt\tstatus\tllr\t")
    assert "has no variant records" in capsys.readouterr().err


def test_benchmark_plot_has_no_error_bars_from_one_seed(tmp_path, monkeypatch):
    import matplotlib.axes

    from hyenadna.benchmark.report import write_report

    calls, titles = [], []
    real_bar, real_title = matplotlib.axes.Axes.bar, matplotlib.axes.Axes.set_title
    monkeypatch.setattr(
        matplotlib.axes.Axes, "bar", lambda self, *a, **k: calls.append(k.get("yerr")) or real_bar(self, *a, **k)
    )
    monkeypatch.setattr(
        matplotlib.axes.Axes, "set_title", lambda self, t, **k: titles.append(t) or real_title(self, t, **k)
    )
    m = {"mean": 0.5, "sd": 0.0}
    entry = {"metrics": {k: m for k in ("accuracy", "precision", "recall", "f1", "mcc")}, "seeds": [0], "seconds": 1.0}
    entry |= {"n_train": 10, "n_test": 5, "source": ""}
    cfg = {"profile": "quick", "seeds": [0], "epochs": 3, "patience": 2, "finetune_lrs": [1e-3], "scratch_lrs": [1e-3]}
    cfg |= {"head_init": "probe", "max_train": 10, "max_test": 5}
    write_report({"config": cfg, "tasks": {"t": {"metric": "mcc", "modes": {"kmer": entry}}}}, tmp_path)
    assert calls == [None] and titles == ["quick profile (seed 0, no error bars)"]
    assert (tmp_path / "results.png").is_file()


def test_bed_edge_cases_are_errors_and_warnings_are_one_line(tmp_path, capsys):
    genome = tmp_path / "g.fa"
    genome.write_text(">chr1\n" + "ACGT" * 50 + "\n")
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t10\t60\ta\nchr2\t0\t10\tb\n")
    fa = tmp_path / "x.fa"
    fa.write_text(">x\nACGT\n")
    model = ["--model", str(FIXTURES / "tiny")]
    out = str(tmp_path / "o.npz")
    assert main(["embed", str(fa), "--bed", str(bed), "--genome", str(genome), "-o", out, *model]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["embed", "--bed", str(bed), "--genome", str(genome), "-o", out, "--skip-invalid", *model]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "warning" in line]
    assert warning == [f"hyenadna embed: warning: {bed}:2: skipped: chromosome 'chr2' is not in {genome}"]
    bed.write_text("chr2\t0\t10\tb\n")
    assert main(["embed", "--bed", str(bed), "--genome", str(genome), "-o", out, "--skip-invalid", *model]) == 1
    assert "every one of its 1 intervals was skipped" in capsys.readouterr().err


def test_info_on_a_fine_tuned_folder(tmp_path, capsys):
    from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel

    ft = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny"), "classification", 3)
    ft.save(tmp_path / "clf")
    assert main(["info", str(tmp_path / "clf")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["fine_tuned"]["output_size"] == 3 and info["parameters"] > 0


def test_every_command_has_its_own_examples():
    from hyenadna.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    epilogs = {name: p.epilog or "" for name, p in sub.choices.items()}
    for name, epilog in epilogs.items():
        assert f"hyenadna {name}" in epilog, f"{name} --help shows no example of itself"
    generate = {a.option_strings[0]: a for a in sub.choices["generate"]._actions if a.option_strings}
    for flag in ("--top-k", "--num-samples", "--temperature", "--length", "--seed"):
        assert generate[flag].help, f"generate {flag} has no description"


def test_fine_tune_caps_rows_and_patience(tmp_path, capsys):
    from tests.conftest import SHARED

    args = ["fine-tune", str(SHARED / "benchmarks" / "promoter_all"), "--out", str(tmp_path / "clf")]
    args += [
        "--validation-fraction",
        "0.25",
        "--gradient-checkpointing",
        "--max-train",
        "40",
        "--max-test",
        "20",
        "--epochs",
        "1",
        "--patience",
        "1",
        "--patience-from",
        "training loss",
        "--model",
        str(FIXTURES / "tiny"),
    ]
    capsys.readouterr()
    assert main(args) == 0
    # 10 of the 40 rows held out: the warning names what the command line can do, not the library's parameters
    err = capsys.readouterr().err
    assert "hyenadna fine-tune: warning: the validation split, which chooses the epoch kept, has only 10 rows" in err
    assert "train on more rows, or hold out more of them (a larger --validation-fraction)" in err
    assert "validation_data" not in err
    meta = json.loads((tmp_path / "clf" / "finetune.json").read_text())
    assert len(meta["history"]) == 1
    # the folder says what it is: task, base model, recipe, the epoch kept and the test metrics
    record = json.loads((tmp_path / "clf" / "results.json").read_text())
    assert record["task"] == "promoter_all" and record["rows"] == {"train": 40, "test": 20}
    assert record["kept_epoch"] == 1 and record["recipe"]["patience_from"] == "training loss"
    assert str(FIXTURES / "tiny") in record["base_model"] and set(record["test"]) >= {"f1", "mcc"}
    card = (tmp_path / "clf" / "README.md").read_text()
    assert card.startswith("# HyenaDNA fine-tuned on promoter_all") and f"| {record['test']['mcc']:.4f} |" in card
    assert "the weights of epoch 1 were kept" in card
    # promoter_all's rows are 300 bases: what `vep --classifier` reads around a variant by default
    assert record["train_lengths"] == {"min": 300, "median": 300, "max": 300} == meta["train_lengths"]
    assert "Trained on 40 rows of 300 bases (25% of them held out" in card and "reads windows of 300 bases" in card
    assert record["recipe"]["validation_fraction"] == 0.25
    with pytest.raises(SystemExit):
        main([*args[:-4], "--patience-from", "validation loss"])


def test_benchmark_patience_reaches_the_recipe(monkeypatch, tmp_path):
    """--patience changes the recipe saved with each run, so runs saved with another patience are run again."""
    from hyenadna.benchmark import runner

    seen = []
    monkeypatch.setattr(runner, "run_benchmark", lambda cfg, **kw: seen.append(cfg) or {"wall_seconds_this_call": 0})
    base = ["benchmark", "--tasks-dir", "t", "--quick", "--modes", "scratch", "--out", str(tmp_path / "o")]
    assert main(base) == 0 and main([*base, "--patience", "6"]) == 0
    assert [cfg.patience for cfg in seen] == [3, 6]
    assert runner.run_recipe(seen[1], "scratch")["patience"] == 6
    assert main([*base, "--scratch-patience-from", "training loss"]) == 0
    assert [cfg.scratch_patience_from for cfg in seen] == ["above chance", "above chance", "training loss"]
    with pytest.raises(SystemExit):
        main([*base, "--patience", "0"])


def test_benchmark_unknown_mode_is_a_usage_error(monkeypatch, tmp_path, capsys):
    from hyenadna.benchmark import runner

    monkeypatch.setattr(runner, "run_benchmark", lambda cfg, **kw: pytest.fail("ran with an unknown mode"))
    with pytest.raises(SystemExit):
        main(["benchmark", "--tasks-dir", "t", "--modes", "probe", "lp", "--out", str(tmp_path / "o")])
    assert "invalid choice: 'lp'" in capsys.readouterr().err


def test_bad_characters_name_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "wrapped.fa"
    bad.write_text(">a\n" + "ACGTACGTAC\n" * 3 + "ACG-T\n>b\nACGT\n")
    assert main(["embed", str(bad), "-o", str(tmp_path / "o.npz"), "--random-init"]) == 1
    assert f"{bad}:5:4: sequence 0 (a), position 34: invalid character '-'" in capsys.readouterr().err
    gappy = tmp_path / "gappy.fa"  # a blank line inside the record: only the record's first line is certain
    gappy.write_text(">a\nACGT\n\nAC!T\n")
    assert main(["score", str(gappy), "--random-init"]) == 1
    assert "the record starting at line 2" in capsys.readouterr().err
    csv = tmp_path / "t.csv"
    csv.write_text("name,sequence\nx,ACGT\ny,AC*T\n")
    assert main(["score", str(csv), "--random-init"]) == 1
    assert f"{csv}, row 2: sequence 1 (y), position 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x7fELF\x02\x01\x01" + bytes(100), "is an ELF executable"),
        (b">a\nAC\x00GT\n", "holds NUL bytes"),
        # BGZF-compressed formats: read as gzip text, a BAM stopped at its first "bad base" ('\x01')
        (gzip.compress(b"BAM\x01" + bytes(8)), "input.fa is a BAM file (its reads as FASTA: samtools fasta input.fa"),
        (gzip.compress(b"BCF\x02\x02" + bytes(8)), "is a BCF file (as VCF: bcftools view input.fa -Oz"),
        (gzip.compress(b">a\nAC\x00GT\n"), "holds NUL bytes"),
    ],
)
def test_binary_files_are_refused_by_name(tmp_path, capsys, content, message):
    path = tmp_path / "input.fa"
    path.write_bytes(content)
    assert main(["embed", str(path), "-o", str(tmp_path / "o.npz"), "--random-init"]) == 1
    assert message in capsys.readouterr().err


def test_a_folder_as_input_is_named_as_a_folder(tmp_path, capsys):
    assert main(["embed", str(tmp_path), "-o", str(tmp_path / "o.npz"), "--random-init"]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_library_messages_speak_in_flags():
    from hyenadna.cli import for_the_command_line

    assert for_the_command_line("device='cuda' was asked for; use device='cpu'") == (
        "--device cuda was asked for; use --device cpu"
    )
    assert for_the_command_line("pretrained=False needs a name") == "--random-init needs a name"
    assert for_the_command_line("pass model_path=/x or model_name='y'") == "pass --model /x or --model y"
    assert "--long-sequences window or truncate" in for_the_command_line(
        "use long_sequences 'window' (CLI: --long-sequences window) or 'truncate'"
    )
    # the small-validation advice: a flag where the command has one, else only what it can do
    advice = "has only 6 rows: train on more rows, or give a validation set of its own (validation_data) or a larger "
    advice += "validation_fraction"
    assert for_the_command_line(advice, "fine-tune").endswith(
        "train on more rows, or hold out more of them (a larger --validation-fraction)"
    )
    assert for_the_command_line(advice, "benchmark").endswith("has only 6 rows: train on more rows")


def test_missing_model_says_what_the_flags_do(tmp_path, capsys):
    assert main(["embed", str(EXAMPLE), "-o", str(tmp_path / "o.npz"), "--model", "no-such-model"]) == 1
    err = capsys.readouterr().err
    assert "unknown model name 'no-such-model'" in err and "leave --model out to use the bundled model" in err
    assert "--random-init" in err


def test_input_counts_for_progress_totals(tmp_path):
    import argparse

    from hyenadna.cli.common import Progress, count_records

    def ns(**kw):
        base = {"bed": None, "input": None, "format": "auto"}
        return argparse.Namespace(**{**base, **kw})

    fa = tmp_path / "a.fa"
    fa.write_text(">a\nAC\nGT\n>b\nA\n>c\nC\n")
    fq = tmp_path / "a.fq"
    fq.write_text("@r1\nAC\n+\n@@\n@r2\nGG\n+\nII\n")  # a quality line starting with '@' is not a record
    csv = tmp_path / "a.csv"
    csv.write_text("name,sequence\nx,AC\ny,GT\n")
    vcf = tmp_path / "a.vcf"
    vcf.write_text("##x\n#CHROM\tPOS\tID\tREF\tALT\n1\t5\t.\tA\tG,T\n1\t9\t.\tC\tG\n")
    with gzip.open(tmp_path / "a.fa.gz", "wt") as f:
        f.write(">a\nAC\n>b\nGT\n")
    assert count_records(ns(input=str(fa))) == 3
    assert count_records(ns(input=str(fq))) == 2
    assert count_records(ns(input=str(csv))) == 2
    assert count_records(ns(input=str(tmp_path / "a.fa.gz"))) == 2
    assert count_records(argparse.Namespace(vcf=str(vcf))) == 3  # one row per ALT allele
    assert count_records(ns(input="-")) is None
    assert count_records(ns(input=str(tmp_path / "missing.fa"))) is None
    progress = Progress("sequences", total=lambda: count_records(ns(input=str(fa))), enabled=True)
    assert progress.bar.total == 3
    progress.update(3, 6)
    line = progress.finish("embedded", "out.npz")
    assert line.startswith("embedded 3 sequences (6 bp) in ") and line.endswith("-> out.npz")
    one = Progress("sequences", enabled=False)
    one.update(1, 4)
    assert one.finish("scored", None).startswith("scored 1 sequence (4 bp) in ")  # not "1 sequences"


def test_vep_reference_mismatch_warning_shows_both_alleles(tmp_path, capsys):
    genome = tmp_path / "g.fa"
    genome.write_text(">1\n" + "ACGT" * 50 + "\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\n1\t1\t.\tTT\tG\n")
    assert main(["vep", str(vcf), "--genome", str(genome), "--random-init", "-o", str(tmp_path / "v.tsv")]) == 0
    err = capsys.readouterr().err
    assert "REF TT differs from the genome's AC there; not scored" in err
    assert "ref_mismatch 1" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--prompt", "ACGT", "--seed", "99999999999999999999"], "is greater than 2**32 - 1"),  # overflow
        (["fine-tune", "task", "--out", "x", "--seed", "-2"], "argument --seed: -2 is less than 0"),  # scikit-learn's
        (["pretrain", "--out", "x", "--weight-decay", "-1"], "argument --weight-decay: -1 is less than 0"),
        (["pretrain", "--out", "x", "--max-n-fraction", "2"], "argument --max-n-fraction: 2 is greater than 1"),
    ],
)
def test_seeds_and_rates_out_of_range_are_usage_errors(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_skip_invalid_skips_sequences_that_are_not_dna(tmp_path, capsys):
    """--skip-invalid skipped BED intervals only: given a FASTA with a bad record it still stopped at it. Now such
    records are skipped with a warning naming file, line and column (the first 5, then a count); all bad is an
    error, and without the flag the first bad record still is."""
    fasta = tmp_path / "x.fa"
    records = [("bad0", "ACGX"), ("good", "ACGTAC")] + [(f"bad{i}", "ZZ") for i in range(1, 7)] + [("ok", "GGCC")]
    fasta.write_text("".join(f">{n}\n{s}\n" for n, s in records))
    out = tmp_path / "e.npz"
    assert main(["embed", str(fasta), "-o", str(out), "--random-init", "--skip-invalid"]) == 0
    err = capsys.readouterr().err
    assert list(np.load(out)["ids"]) == ["good", "ok"]
    assert f"warning: {fasta}:2:4: skipped: sequence 0 (bad0), position 4: invalid character 'X'" in err
    assert err.count(": skipped: ") == 5 and "skipped 7 of 9 sequences: empty, or holding characters that are" in err
    assert main(["score", str(fasta), "-o", str(tmp_path / "s.tsv"), "--random-init", "--skip-invalid"]) == 0
    assert [line.split("\t")[0] for line in (tmp_path / "s.tsv").read_text().splitlines()[1:]] == ["good", "ok"]
    assert main(["embed", str(fasta), "-o", str(out), "--random-init"]) == 1
    assert "sequence 0 (bad0), position 4: invalid character 'X'" in capsys.readouterr().err
    fasta.write_text(">a\nXX\n>b\nZZ\n")
    assert main(["embed", str(fasta), "-o", str(out), "--random-init", "--skip-invalid"]) == 1
    assert "every one of the 2 sequences was empty or held a character that is not DNA" in capsys.readouterr().err
    # an empty record is skipped too (it stopped the run: FASTA, FASTQ and CSV alike), and without the flag named
    for name, text in (
        ("e.fa", ">a\n>b\nACGT\n"),
        ("e.fq", "@a\n\n+\n\n@b\nACGT\n+\nIIII\n"),
        ("e.csv", "name,sequence\na,\nb,ACGT\n"),
    ):
        path = tmp_path / name
        path.write_text(text)
        assert main(["embed", str(path), "-o", str(out), "--random-init", "--skip-invalid"]) == 0
        assert list(np.load(out)["ids"]) == ["b"]
        assert "skipped: sequence 0 (a) has no sequence" in capsys.readouterr().err
        assert main(["embed", str(path), "-o", str(out), "--random-init"]) == 1
        assert re.search(r"(a\)?'?) has (no|an empty) sequence", capsys.readouterr().err)


def test_progress_totals_count_skipped_records_and_a_ranks_share_and_one_process_warns(tmp_path, recwarn):
    """A bar counted every record of the input, skipped ones too, so it ended short of its total; under torchrun every
    rank (each reads the whole input) printed the same skip warnings."""
    import argparse

    from hyenadna.cli.common import Progress, read_records

    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\nACGT\n>b\nACGX\n>c\nGGCC\n>d\nZZ\n")
    args = argparse.Namespace(bed=None, input=str(fasta), format="auto", column="sequence", skip_invalid=True)
    progress = Progress("sequences", total=4, enabled=True)
    names = [r.name for r in read_records(args, progress.skip, warn=False)]  # another rank's view
    assert names == ["a", "c"] and progress.bar.total == 2 and not recwarn.list
    progress.update(2)
    assert progress.bar.n == progress.bar.total
    assert [r.name for r in read_records(args)] == ["a", "c"] and len(recwarn.list) == 2  # the main process warns
    hidden = Progress("sequences", total=lambda: 4, enabled=False)  # a hidden bar never counts its input
    list(read_records(args, hidden.skip))
    # one of a torchrun job's 2 processes does about half (its bar ended at half its total)
    rank0 = Progress("sequences", total=lambda: 5, enabled=True, share=2)
    assert rank0.bar.total == 3
    list(read_records(args, rank0.skip, warn=False))
    assert rank0.bar.total == 2


def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path, capsys):
    """`hyenadna score x.fa -o x.fa` replaced the FASTA with its scores (the atomic write swapped it in)."""
    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\nACGTACGT\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\nchr1\t2\t.\tC\tG\n")
    for argv, named in (
        (["score", str(fasta), "-o", str(fasta)], "INPUT"),
        (["embed", str(fasta), "-o", str(tmp_path / ".." / tmp_path.name / "x.fa")], "INPUT"),
        (["vep", str(vcf), "--genome", str(fasta), "-o", str(vcf)], "VCF"),
        (["vep", str(vcf), "--genome", str(fasta), "-o", str(fasta)], "--genome"),
    ):
        assert main([*argv, "--random-init"]) == 1
        assert f"is the output and also read as {named}; write the output elsewhere" in capsys.readouterr().err
    assert fasta.read_text() == ">a\nACGTACGT\n" and vcf.read_text().startswith("##fileformat")


def test_score_and_vep_write_the_format_their_output_is_named_for(tmp_path, capsys):
    """`-o scores.csv` held JSON Lines, `-o scores.json` several JSON objects (not one document), `-o x.parquet`
    text: now CSV, a JSON array, and a refusal before any work."""
    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\nACGTACGT\n>b,c\nGGCCA\n")
    base = ["score", str(fasta), "--random-init"]
    assert main([*base, "-o", str(tmp_path / "s.csv")]) == 0
    table = pd.read_csv(tmp_path / "s.csv")
    assert list(table["id"]) == ["a", "b,c"] and "nll_per_base" in table  # a comma in a name is quoted
    assert main([*base, "-o", str(tmp_path / "s.json")]) == 0
    rows = json.loads((tmp_path / "s.json").read_text())
    assert [r["id"] for r in rows] == ["a", "b,c"]
    assert main([*base, "-o", str(tmp_path / "s.tsv")]) == 0
    assert pd.read_csv(tmp_path / "s.tsv", sep="\t")["nll_per_base"].tolist() == [r["nll_per_base"] for r in rows]
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "s.parquet")]) == 1
    err = capsys.readouterr().err
    assert "s.parquet: rows are written as text: name the file .tsv, .csv, .json or .jsonl" in err
    assert "model:" not in err and not (tmp_path / "s.parquet").exists()  # refused before the model loaded
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\na\t3\t.\tG\tT\n")
    assert main(["vep", str(vcf), "--genome", str(fasta), "--random-init", "-o", str(tmp_path / "v.json")]) == 0
    assert [r["status"] for r in json.loads((tmp_path / "v.json").read_text())] == ["ok"]
    # scores under a VCF's name were JSON Lines that no VCF reader reads
    assert main(["vep", str(vcf), "--genome", str(fasta), "--random-init", "-o", str(tmp_path / "scored.vcf")]) == 1
    assert "scored.vcf: rows are written as text: name the file .tsv" in capsys.readouterr().err


def test_embed_refuses_a_layer_named_twice(tmp_path, capsys):
    """`--layer 2 -1` on a 2-layer model wrote out.layer2.npz twice over (-1 is layer 2)."""
    out = tmp_path / "e.npz"
    argv = ["embed", str(EXAMPLE), "-o", str(out), "--model", str(FIXTURES / "tiny")]
    assert main([*argv, "--layer", "2", "-1"]) == 1
    assert "--layer 2 -1 names layer 2 twice (-1 is layer 2, the last)" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    assert main([*argv, "--layer", "1", "-1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.layer1.npz", "e.layer2.npz"]


@pytest.mark.parametrize("command", ["pretrain", "fine-tune", "benchmark"])
def test_a_file_given_as_the_out_folder_is_named(tmp_path, capsys, command):
    taken = tmp_path / "x.fa"
    taken.write_text(">a\nACGT\n")
    argv = {
        "pretrain": ["pretrain", "--fasta", str(taken)],
        "fine-tune": ["fine-tune", str(tmp_path)],
        "benchmark": ["benchmark", "--tasks-dir", str(tmp_path)],
    }[command]
    assert main([*argv, "--out", str(taken)]) == 1
    assert f"--out {taken} is a file; --out names a folder for the run's files" in capsys.readouterr().err
    assert taken.read_text() == ">a\nACGT\n"
