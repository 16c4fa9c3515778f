"""torchrun inference: 2 CPU ranks (gloo) shard embed, score and vep, and the merged output equals a single process's,
byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

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


def test_two_ranks_vep(tmp_path):
    import numpy as np

    rng = np.random.default_rng(1)
    chrom = "".join(rng.choice(list("ACGT"), 3000))
    (tmp_path / "g.fa").write_text(">1\n" + chrom + "\n")
    lines = [f"1\t{p}\t.\t{chrom[p - 1]}\t{'A' if chrom[p - 1] != 'A' else 'C'}" for p in range(200, 2800, 19)]
    lines.insert(5, "1\t300\t.\tNNN\tA")  # an unscorable row keeps its place
    (tmp_path / "v.vcf").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "\n".join(lines) + "\n")
    args = ["vep", str(tmp_path / "v.vcf"), "--genome", str(tmp_path / "g.fa"), "--window", "128"]
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
