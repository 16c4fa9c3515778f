from __future__ import annotations

import contextlib
import json
import os

# the CLI lowers its threads when other work keeps a core busy; tests must not depend on the machine's load
os.environ["HYENADNA_AUTO_THREADS"] = "0"
# ... and tests must not depend on which kernels this machine measured fastest (tests/test_autotune.py measures)
os.environ["HYENADNA_AUTOTUNE"] = "0"
import random
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

# Before anything imports huggingface_hub, which reads these once: its own requests (headers, telemetry) go to
# 127.0.0.1, where nothing listens, never to the real Hub.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the repository; HYENADNA_SHARED names another place (a GPU machine that receives a copy)
SHARED = Path(os.environ.get("HYENADNA_SHARED") or REPO.parent / "shared")
FIXTURES = SHARED / "fixtures" / "reference"
MODELS = ("tiny", "deep_long", "wide")
CASES = ("batch4", "long", "padded", "single", "all_ids")

if not FIXTURES.is_dir():
    raise RuntimeError(
        f"reference fixtures not found at {FIXTURES}: put ../shared beside the repository or name it in HYENADNA_SHARED"
    )


def assert_close(actual, expected, atol: float = 1e-6, rtol: float = 2e-6) -> None:
    """max |actual - expected| <= atol + rtol * max |expected|. Float32 rounding grows with the values' magnitude
    (and differs between Intel and AMD kernels), so a bound on the absolute error alone fails on large outputs."""
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = (actual - expected).abs().max().item() if expected.numel() else 0.0
    bound = atol + rtol * (expected.abs().max().item() if expected.numel() else 0.0)
    assert err <= bound, f"max abs error {err:.3g} > {bound:.3g} (atol {atol:g} + rtol {rtol:g} x max |expected|)"


# a pretraining run as torchrun starts it: ``python script.py cfg.json new|resume``; each rank writes its result to
# ``<out_dir>/rank<r>.json``
PRETRAIN_SCRIPT = (
    "import json, os, sys\n"
    "from hyenadna.training.pretrain import PretrainConfig, pretrain\n"
    "cfg = PretrainConfig(**json.load(open(sys.argv[1])))\n"
    "r = pretrain(cfg, resume=sys.argv[2] == 'resume')\n"
    "os.makedirs(cfg.out_dir, exist_ok=True)\n"
    "open(os.path.join(cfg.out_dir, f\"rank{r['rank']}.json\"), 'w').write(json.dumps(r))\n"
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a rendezvous: a fixed one may be held by a job left from a killed run."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_ranks(script: Path, args: list[str], timeout: int = 600) -> None:
    """``python script args...`` as a 2-process torchrun job on this machine (CPU ranks, one thread each); fails the
    test with the job's stderr unless it succeeds."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    proc = subprocess.run([*cmd, str(script), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


def two_nodes(args: list[str], cwds: tuple[Path, Path] | None = None, timeout: int = 600) -> list[tuple[int, str]]:
    """Two torchrun agents of one process each, meeting as two nodes through a c10d rendezvous on 127.0.0.1 (the
    README's Slurm command on one machine; each rank is LOCAL_RANK 0 of its node), running ``python args...`` from
    ``cwds`` (a relative path then names a folder of each node's own). (return code, stderr) of each; agents still
    running after ``timeout`` seconds are killed and fail the test."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo"}
    env["HF_HUB_OFFLINE"] = "1"
    port = free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1"]
    cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id=test{port}", *args]
    procs = [
        subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=cwds[i] if cwds else None)
        for i in range(2)
    ]
    try:
        errs = [p.communicate(timeout=timeout)[1] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"two torchrun agents still running after {timeout} s: {cmd}")
    return [(p.returncode, e) for p, e in zip(procs, errs, strict=True)]


def set_cpu_bf16(monkeypatch, amx: bool, avx512_bf16: bool | None = None) -> None:
    """Make torch report whether the CPU has AMX tiles and AVX512-BF16 (by default as it has AMX), so that the
    training precision a test expects does not depend on the machine it runs on."""
    avx512_bf16 = amx if avx512_bf16 is None else avx512_bf16
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)


def seq_log_probs(model, seq: str) -> np.ndarray:
    """By hand: log P(seq[t] | seq[:t]) for t >= 1, one forward pass, no pipeline (what scoring paths are checked
    against)."""
    from hyenadna.tokenizer import CharacterTokenizer

    ids = torch.tensor([CharacterTokenizer().encode(seq)])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.float(), -1)
    return logp[0, :-1].gather(-1, ids[0, 1:, None]).squeeze(-1).numpy()


def write_fasta(path: Path, header: str, sequence: str, width: int = 60) -> Path:
    """One record wrapped at `width` columns, as genome FASTAs are (so an indexed reader has real line lengths)."""
    path.write_text(f">{header}\n" + "\n".join(sequence[i : i + width] for i in range(0, len(sequence), width)) + "\n")
    return path


@pytest.fixture(scope="session")
def gc_classifier():
    """The model card's fine-tuning example on a GC task (class 1: GC-rich, 100-base rows), as test_finetune trains
    it; shared by the tests that explain or probe a fine-tuned model's predictions, which leave it as it is."""
    from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel
    from tests.test_finetune import gc_task

    ft = HyenaDNAFineTuningModel(
        HyenaDNAConfig(model_path=FIXTURES / "tiny", batch_size=16, progress=False), "classification", 2
    )
    seqs, labels = gc_task(200)
    ft.train(ft.process_data(seqs), labels, epochs=4, lr=2e-3)
    test, test_labels = gc_task(80, seed=1)
    assert ft.evaluate(test, test_labels)["mcc"] > 0.6
    return ft


def load_io(name: str) -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / name / "io.safetensors")


def load_meta(name: str) -> dict:
    return json.loads((FIXTURES / name / "meta.json").read_text())


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same global random state, so unseeded test data is the same on every run and CPU;
    and gets torch's thread count back as it found it (the CLI lowers it on a busy machine)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _loopback_only(address) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if host not in LOOPBACK:
        raise AssertionError(f"a test tried to open a network connection to {address!r}; only 127.0.0.1 is allowed")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with sockets refused except to 127.0.0.1, where the tests' own Hub stand-in listens."""
    connect, create_connection = socket.socket.connect, socket.create_connection

    def guarded_connect(self, address):
        _loopback_only(address)
        return connect(self, address)

    def guarded_create_connection(address, *args, **kwargs):
        _loopback_only(address)
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Empty caches, and a Hub endpoint on 127.0.0.1 where nothing listens, so no test sees a developer's cache or the
    real Hub. Hub tests point HF_ENDPOINT at their own stand-in."""
    monkeypatch.setenv("HYENADNA_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")


@contextlib.contextmanager
def held_by_another_process(folder):
    """``folder`` held (hyenadna.utils.io.hold_folder) by a child process until the block ends."""
    import subprocess

    code = "import sys, time\nfrom hyenadna.utils.io import hold_folder\nwith hold_folder(sys.argv[1]):\n"
    code += "    print('held', flush=True)\n    time.sleep(120)\n"
    child = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield child
    finally:
        child.kill()
        child.wait()
