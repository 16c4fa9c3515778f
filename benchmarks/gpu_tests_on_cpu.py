"""Run ``tests/test_gpu.py`` on the CPU, "cuda" read as "cpu", to catch drift in the GPU tests' own code (a renamed
function, a changed signature) on machines without a GPU, where those tests only ever skip.

It proves nothing about CUDA: every model runs on the CPU, so a CUDA-against-CPU comparison compares the CPU with
itself, and the CUDA-only calls are stubbed (peak memory reads 0). So four tests fail by construction and are listed
as such: the two that compare peak memory (stubbed), the one that counts the checkpoint's CUDA RNG states (the CPU's
state is read instead) and the one that reads the CUDA device name a benchmark run records. Anything else that fails
is a real defect of the test or of the API it calls. The 2-GPU tests run as 2 CPU ranks over gloo ("cuda" read as
"cpu" makes ``pretrain`` choose gloo), which checks their launch and assertions, not NCCL.

    python benchmarks/gpu_tests_on_cpu.py            # ~2 minutes on 2 cores
    python benchmarks/gpu_tests_on_cpu.py --quick    # without the 32k- and 128k-token steps and 2-rank runs (~20 s)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# each expected failure, why, and the message it must fail with (after its other checks passed); another message
# from one of these tests is a real failure too
EXPECTED_FAILURES = {
    "test_cuda_gradient_checkpointing_same_gradients_in_less_memory": (
        "peak memory stubbed",
        r"AssertionError: \(0, 0\)$",
    ),
    "test_cuda_sequence_chunked_training_same_gradients_in_less_memory": (
        "peak memory stubbed",
        r"AssertionError: \(0, 0\)$",
    ),
    "test_cuda_pretraining_resumes_exactly_with_dropout_on": ("counts CUDA RNG states", r"assert \d+ == 0$"),
    "test_benchmark_workers_run_on_the_gpus_and_say_which": ("device name on CUDA only", r"KeyError: 'device'$"),
}
REPLACEMENTS = [
    ('pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),', ""),
    ("torch.cuda.synchronize()", "None"),
    ("torch.cuda.reset_peak_memory_stats()", "None"),
    ("torch.cuda.max_memory_allocated()", "0"),
    ("torch.cuda.device_count() < 2", "False"),  # the 2-GPU tests run as 2 CPU ranks over gloo
    ("torch.cuda.device_count()", "0"),
    ("torch.cuda.manual_seed_all(", "torch.manual_seed("),
    ("torch.cuda.get_rng_state()", "torch.get_rng_state()"),
    (".cuda()", ".cpu()"),
    ('"cuda"', '"cpu"'),
]


def cpu_version(source: str) -> str:
    for old, new in REPLACEMENTS:
        if old not in source:
            raise SystemExit(f"tests/test_gpu.py no longer contains {old!r}: update REPLACEMENTS")
        source = source.replace(old, new)
    return source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="leave out the two long-sequence steps and the 2-rank runs")
    args = ap.parse_args()
    copy = REPO / "tests" / "_gpu_tests_on_cpu.py"  # inside tests/, so that it imports tests.conftest
    copy.write_text(cpu_version((REPO / "tests" / "test_gpu.py").read_text()))
    skip = ["two_gpu", "gradient_checkpointing", "sequence_chunked"] if args.quick else []
    try:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", str(copy)]
        out = subprocess.run(
            [*cmd, "-k", " and ".join(f"not {s}" for s in skip)],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "1000"},
        ).stdout
    finally:
        copy.unlink()
    print(out.strip().splitlines()[-1])
    unexpected = 0 if " passed" in out.strip().splitlines()[-1] else 1
    for line in out.splitlines():
        if line.startswith("ERROR"):  # a collection or fixture error: an import the GPU tests make is gone
            unexpected += 1
            print(f"  UNEXPECTED: {line}")
        if not line.startswith("FAILED"):
            continue
        name = line.split("::")[1].split(" ")[0].split("[")[0]
        why, message = EXPECTED_FAILURES.get(name, ("", None))
        ok = message is not None and re.search(message, line) is not None
        unexpected += not ok
        print(f"  {name}: " + (f"expected ({why})" if ok else f"UNEXPECTED: {line}"))
    if unexpected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
