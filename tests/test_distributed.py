"""torchrun inference: 2 CPU ranks (gloo) shard embed, score and vep, and the merged output equals a single process's,
byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, two_nodes

EXAMPLE = REPO / "hyenadna" / "examples" / "example.fa"


def run(args: list[str], ranks: int, tmp_path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        "GLOO_SOCKET_IFNAME": "lo",  # the ranks meet on loopback only
        "HF_HUB_OFFLINE": "1",
    }
    launcher = [sys.executable, "-m", "hyenadna.cli"]
    if ranks > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
        launcher += ["-m", "hyenadna.cli"]
    proc = subprocess.run(launcher + args, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize(
    ("command", "output", "extra"),
    [
        ("embed", "emb.npz", ["--chunk-size", "2"]),
        ("embed", "tok.parquet", ["--chunk-size", "2", "--pooling", "none", "--layer", "1", "-1"]),
        ("score", "scores.tsv", ["--chunk-size", "2", "--overlap", "16"]),
    ],
)
def test_two_ranks_write_what_one_process_writes(tmp_path, command, output, extra):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    run([command, str(EXAMPLE), "-o", str(tmp_path / "one" / output), *extra, "--threads", "1"], 1, tmp_path)
    proc = run([command, str(EXAMPLE), "-o", str(tmp_path / "two" / output), *extra], 2, tmp_path)
    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    two = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert one == two and one  # the same files, and no parts left behind
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert "rank 1 of 2" in proc.stderr


@pytest.mark.parametrize("classifier", [False, True], ids=["language model", "fine-tuned model"])
def test_two_ranks_vep(tmp_path, classifier):
    import numpy as np

    rng = np.random.default_rng(1)
    chrom = "".join(rng.choice(list("ACGT"), 3000))
    (tmp_path / "g.fa").write_text(">1\n" + chrom + "\n")
    lines = [f"1\t{p}\t.\t{chrom[p - 1]}\t{'A' if chrom[p - 1] != 'A' else 'C'}" for p in range(200, 2800, 19)]
    lines.insert(5, "1\t300\t.\tNNN\tA")  # an unscorable row keeps its place
    (tmp_path / "v.vcf").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "\n".join(lines) + "\n")
    args = ["vep", str(tmp_path / "v.vcf"), "--genome", str(tmp_path / "g.fa"), "--window", "128"]
    if classifier:  # an untrained head is enough: the point is that both runs compute the same rows
        from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel
        from tests.conftest import FIXTURES

        config = HyenaDNAConfig(model_path=FIXTURES / "tiny", progress=False)
        folder = HyenaDNAFineTuningModel(config, "classification", 2).save(tmp_path / "clf")
        args += ["--classifier", str(folder), "--target", "1"]
    run([*args, "-o", str(tmp_path / "one.tsv"), "--threads", "1"], 1, tmp_path)
    run([*args, "-o", str(tmp_path / "two.tsv")], 2, tmp_path)
    assert (tmp_path / "one.tsv").read_bytes() == (tmp_path / "two.tsv").read_bytes()
    assert len((tmp_path / "one.tsv").read_text().splitlines()) == len(lines) + 1


def test_sharding_needs_an_output_file(monkeypatch):
    from hyenadna.cli.distributed import Sharding

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match="needs -o OUTPUT"):
        Sharding(None, "score")


def test_two_ranks_map_bed_regions_as_one_process_does(tmp_path):
    """ism --bed across 2 ranks: each rank maps its regions into the shared folder, rank 0 writes the index and the
    TF-MoDISco arrays once every rank is done; the files equal a single process's."""
    import numpy as np

    rng = np.random.default_rng(2)
    (tmp_path / "g.fa").write_text(">chr1\n" + "".join(rng.choice(list("ACGT"), 1000)) + "\n")
    (tmp_path / "r.bed").write_text("".join(f"chr1\t{s}\t{s + 8}\tr{s}\t0\t+\n" for s in range(100, 700, 120)))
    args = ["ism", "--genome", str(tmp_path / "g.fa"), "--bed", str(tmp_path / "r.bed"), "--window", "64", "--modisco"]
    run([*args, "-o", str(tmp_path / "one"), "--threads", "1"], 1, tmp_path)
    proc = run([*args, "-o", str(tmp_path / "two")], 2, tmp_path)
    names = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert len([n for n in names if n.suffix == ".npz" and n.parent.name != "modisco"]) == 5
    for name in names:
        if name.suffix == ".npz":
            with np.load(tmp_path / "one" / name) as a, np.load(tmp_path / "two" / name) as b:
                assert a.files == b.files, name
                for k in a.files:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k}")  # NaN equals NaN here
        else:
            assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text(), name
    assert "rank 1 of 2" in proc.stderr and not list(tmp_path.glob(".two.parts"))


@pytest.mark.parametrize("command", ["embed", "ism"])
def test_two_nodes_without_a_shared_output_folder_fail_clearly(tmp_path, command):
    """Two nodes whose -o names a folder of each node's own (a relative path from two working folders, as a
    node-local disk would): rank 0 cannot see rank 1's files, and every rank stops with an error that says so,
    where rank 0 merged without them (3 of 5 records, exit 0); nothing is written in the output's place."""
    nodes = (tmp_path / "node0", tmp_path / "node1")
    for node in nodes:
        node.mkdir()
    if command == "embed":
        args = ["-m", "hyenadna.cli", "embed", str(EXAMPLE), "-o", "emb.npz", "--chunk-size", "2"]
    else:
        import numpy as np

        rng = np.random.default_rng(3)
        (tmp_path / "g.fa").write_text(">chr1\n" + "".join(rng.choice(list("ACGT"), 600)) + "\n")
        (tmp_path / "r.bed").write_text("".join(f"chr1\t{s}\t{s + 6}\tr{s}\n" for s in range(100, 500, 100)))
        args = ["-m", "hyenadna.cli", "ism", "--genome", str(tmp_path / "g.fa"), "--bed", str(tmp_path / "r.bed")]
        args += ["--window", "64", "-o", "maps"]
    done = two_nodes(args, cwds=nodes, timeout=300)
    # every node's job fails; our one-line error shows in the node logs its worker reached before torchrun tore the
    # job down (a node whose agent saw the other close the rendezvous first reports only that)
    assert all(rc != 0 for rc, _ in done)
    said = [err for _, err in done if f"hyenadna {command}: error: rank 1 wrote" in err]
    assert said and all("file system every rank sees" in err for err in said)
    assert not any(f'File "{REPO / "hyenadna"}' in err for _, err in done)
    assert not (nodes[0] / "emb.npz").exists() and not (nodes[1] / "emb.npz").exists()
    assert not (nodes[0] / "maps" / "regions.tsv").exists() and not (nodes[1] / "maps" / "regions.tsv").exists()


def test_commands_that_do_not_split_refuse_torchrun(monkeypatch, capsys):
    """Under torchrun (WORLD_SIZE > 1) a command that would run whole in every process, all writing the same
    outputs, stops with one clear line; the commands that split their work go on."""
    from argparse import Namespace

    from hyenadna.cli import main
    from hyenadna.cli.distributed import refuse_unsplit
    from tests.conftest import FIXTURES

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    assert main(["info", str(FIXTURES / "tiny")]) == 1
    err = capsys.readouterr().err
    assert "hyenadna info: error: info runs in one process" in err and "each of the 4 processes" in err
    for args in (
        Namespace(command="embed"),
        Namespace(command="vep"),
        Namespace(command="pretrain"),
        Namespace(command="score", track=None),
        Namespace(command="ism", bed="r.bed"),
    ):
        refuse_unsplit(args)
    for args, what in (
        (Namespace(command="score", track="t.bedgraph"), "score --track"),
        (Namespace(command="ism", bed=None), "ism without --bed"),
        (Namespace(command="fine-tune"), "fine-tune"),
        (Namespace(command="benchmark"), "benchmark"),
    ):
        with pytest.raises(ValueError, match=f"^{what} runs in one process"):
            refuse_unsplit(args)
    monkeypatch.setenv("WORLD_SIZE", "1")
    refuse_unsplit(Namespace(command="fine-tune"))


def test_cpu_ranks_hear_how_many_threads_would_be_theirs(monkeypatch):
    """torchrun's OMP_NUM_THREADS=1 leaves each CPU rank one core: local rank 0 says which --threads gives each its
    share; GPU ranks, a user's own OMP_NUM_THREADS, one process per node, or too few cores say nothing."""
    from hyenadna.cli.distributed import torchrun_threads_note

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    note = torchrun_threads_note("cpu")
    assert "4 processes computes on 1 CPU thread" in note and "--threads 4" in note and "16 cores" in note
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert torchrun_threads_note("cpu") is None  # said once a node
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert torchrun_threads_note("cpu") is None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert torchrun_threads_note("cpu") is None
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert torchrun_threads_note("cpu") is None  # one core each is their share
    import torch

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torchrun_threads_note("cuda") is None
