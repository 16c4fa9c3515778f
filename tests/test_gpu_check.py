"""benchmarks/gpu_check.py --dry-run: the GPU machine's script runs end to end on the CPU, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_gpu_check_dry_run_writes_its_report(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["tests"]["exit"] == 0  # the GPU tests ran (and skipped) without error
    workloads = {r["workload"] for r in report["rows"]}
    assert workloads == {"tiny1k_b32", "train_tiny1k_b8", "small32k", "medium160k", "large1m"}
    assert all("tokens_per_s" in r for r in report["rows"]), [r for r in report["rows"] if "error" in r]
    assert {(r["impl"], r["precision"]) for r in report["rows"] if r["workload"] == "tiny1k_b32"} == {
        (impl, p) for impl in ("fast", "reference", "transformer") for p in ("fp32", "bf16")
    }
    assert "ratio" in proc.stdout


def test_gpu_paths_dry_run_times_every_path(tmp_path):
    out = tmp_path / "gpu_paths.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_paths.py"), "--dry-run", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert all("tokens_per_s" in r for r in rows), [r for r in rows if "error" in r]
    assert {r["path"] for r in rows if r["workload"] == "large1m"} == {
        "reference",
        "batched",
        "low_memory",
        "low_memory_chunk1k",
    }
    assert {r["path"] for r in rows if r["workload"] == "train_tiny1k_b8"} == {"reference", "train"}
    profiled = [r for r in rows if "profile" in r]
    assert profiled and all(r["profile"]["top_kernels_us_per_pass"] for r in profiled)


def test_the_gpu_tests_run_on_the_cpu_failing_only_where_they_read_cuda_state():
    """benchmarks/gpu_tests_on_cpu.py: tests/test_gpu.py with "cuda" read as "cpu", so that its own code cannot rot
    on machines where it only skips (the long-sequence steps left out)."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_tests_on_cpu.py"), "--quick"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "UNEXPECTED" not in proc.stdout
    assert not (REPO / "tests" / "_gpu_tests_on_cpu.py").exists()
