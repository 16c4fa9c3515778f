"""Per-machine kernel choices (ops/autotune.py): the choosing logic on fake timings, the cache, the off switch, and
that the choices reach the kernels."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch

from hyenadna.benchmark.runner import BenchmarkConfig, run_benchmark
from hyenadna.ops import autotune
from hyenadna.ops import linear as linear_ops
from hyenadna.ops.execution import GPU_LOW_MEMORY_CHUNK, ExecutionOptions
from hyenadna.ops.fftconv import fft_length, smooth_fft_length
from tests.conftest import FIXTURES, REPO  # at import: importing conftest again inside a test resets HYENADNA_AUTOTUNE
from tests.test_benchmark import gc_frame


@pytest.fixture
def tuned(tmp_path, monkeypatch):
    """Autotune on, with its cache in a temporary HYENADNA_HOME and ``measure`` replaced by a fake record."""
    monkeypatch.setenv("HYENADNA_HOME", str(tmp_path))
    monkeypatch.setenv("HYENADNA_AUTOTUNE", "1")
    autotune.set_enabled(None)
    calls = []

    def fake_measure(choices=None):
        calls.append(1)
        chosen = {**autotune.DEFAULTS.__dict__, **(choices or {})}
        return {
            "cpu": autotune.cpu_name(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "version": autotune.VERSION,
            "measured_at": "now",
            "measure_seconds": 0.0,
            "choices": chosen,
            "defaults": autotune.DEFAULTS.__dict__,
            "seconds": {k: {} for k in chosen},
        }

    state = {"choices": None}
    monkeypatch.setattr(autotune, "measure", lambda: fake_measure(state["choices"]))
    yield state, calls
    autotune.set_enabled(None)


def test_pick_keeps_the_default_unless_another_is_clearly_faster_round_for_round():
    assert autotune.pick({"onednn": [1.0, 2.0, 1.0], "mkl": [0.93, 1.86, 0.93]}, "onednn") == "onednn"  # 7%: noise
    assert autotune.pick({"onednn": [1.0, 2.0, 1.0], "mkl": [0.85, 1.70, 0.85]}, "onednn") == "mkl"
    # paired by round: the machine slowed down in round 2, which a comparison of minima would have mixed up
    assert autotune.pick({"onednn": [1.0, 3.0, 1.0], "mkl": [0.8, 2.4, 1.2]}, "onednn") == "mkl"
    assert autotune.pick({"onednn": [1.0, 1.0, 1.0], "mkl": [0.5, 1.1, 1.1]}, "onednn") == "onednn"  # one lucky round
    assert autotune.pick({1024: [3.0], 2048: [2.0], 4096: [1.0]}, 2048) == 4096
    assert autotune.pick({"mkl": [2.0]}, "onednn") == "mkl"  # the default could not run here
    assert autotune.pick({}, "onednn") == "onednn"


def test_time_candidates_alternates_the_order_and_drops_what_fails():
    order, now = [], [0.0]
    cost = {"a": [5.0, 3.0, 4.0], "b": [2.0, 6.0, 1.0]}

    def run(name):
        def go():
            order.append(name)
            now[0] += cost[name].pop(0) if len(order) > 2 else 0.0  # the two warm-up calls take no time

        return go

    def broken():
        raise RuntimeError("no such kernel here")

    clock = lambda: now[0]  # noqa: E731
    rounds = autotune.time_candidates({"a": run("a"), "b": run("b"), "c": broken}, repeats=3, clock=clock)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-ups, then a b, b a, a b
    assert rounds == {"a": [5.0, 3.0, 4.0], "b": [2.0, 6.0, 1.0]}


def test_measured_once_then_read_from_the_cache_keyed_by_cpu_torch_and_threads(tuned, tmp_path):
    state, calls = tuned
    state["choices"] = {"block_tokens": 4096, "projection_inference": "mkl"}
    first = autotune.tuning()
    assert first.block_tokens == 4096 and first.projection_inference == "mkl" and len(calls) == 1
    path = autotune.cache_path()
    assert path.parent == tmp_path / "autotune" and path.is_file()
    assert str(torch.get_num_threads()) in path.name and torch.__version__.split("+")[0] in path.name
    autotune.set_enabled(None)  # a new process: memo empty, the file is read, nothing is measured
    assert autotune.tuning() == first and len(calls) == 1
    assert autotune.cache_path(threads=torch.get_num_threads() + 1) != path  # another thread count measures anew


def test_cpus_of_one_name_but_other_instruction_sets_keep_separate_caches(monkeypatch):
    # a VM's CPU name can hide its generation: an Ice Lake and an AMX Sapphire Rapids Xeon both read "Intel(R) Xeon(R)
    # Processor @ 2.80GHz" here, and a home folder shared across a cluster's nodes must not hand one the other's choices
    features = autotune.cpu_features()
    if autotune.platform.system() == "Linux":
        assert features.startswith("family ") and " model " in features
    key = autotune.cache_key(1)
    monkeypatch.setattr(autotune, "cpu_features", lambda: "family 6 model 143; avx2 avx512f amx_tile amx_bf16")
    assert autotune.cache_key(1) != key and autotune.cache_key(1).split("-t1-")[0] == key.split("-t1-")[0]


def test_the_choices_reach_the_kernels(tuned, monkeypatch):
    state, _ = tuned
    state["choices"] = {
        "block_tokens": 8192,
        "low_memory_chunk": 512,
        "fft_pow2_slack": 1.25,
        "projection_inference": "mkl",
        "projection_train": "onednn",
    }
    options = ExecutionOptions()
    assert (options.tuned("block_tokens", "cpu"), options.tuned("low_memory_chunk", "cpu")) == (8192, 512)
    assert ExecutionOptions(block_tokens=100).tuned("block_tokens", "cpu") == 100  # set by the caller: kept
    assert fft_length(54_675) == 65_536 and smooth_fft_length(54_675, 1.05) == 54_675
    if not linear_ops.onednn_available(torch.float32):
        pytest.skip("torch built without oneDNN")
    used = []
    monkeypatch.setattr(linear_ops, "linear_ref", lambda *a, **k: used.append("mkl") or torch.zeros(1))
    monkeypatch.setattr(linear_ops, "_onednn_linear", lambda *a, **k: used.append("onednn") or torch.zeros(1))
    x, w = torch.randn(4, 8), torch.randn(3, 8)
    with torch.no_grad():
        linear_ops.linear(x, w)
    linear_ops.linear(x, w.requires_grad_())
    assert used == ["mkl", "onednn"]  # inference measured MKL faster, training oneDNN


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weight_gradient_takes_the_measured_library_in_either_orientation(tuned, monkeypatch, dtype):
    """ops/linear.py ``weight_gradient``: dy^T x through oneDNN where measured faster, with the narrower operand as
    the rows of oneDNN's product (both orientations: fc2's out < in, fc1's out > in), equal to torch.mm's result;
    torch.mm for equal feature counts, in bf16, and by default."""
    if not linear_ops.onednn_available(torch.float32):
        pytest.skip("torch built without oneDNN")
    g = torch.Generator().manual_seed(0)
    shapes = [(16, 64), (64, 16), (32, 32)]  # (out, in)
    operands = [(torch.randn(300, o, generator=g), torch.randn(300, i, generator=g)) for o, i in shapes]
    calls, real = [], linear_ops._onednn_linear
    monkeypatch.setattr(linear_ops, "_onednn_linear", lambda *a, **k: calls.append(1) or real(*a, **k))
    for choice in ("mm", "onednn"):
        autotune.use(dataclasses.replace(autotune.DEFAULTS, weight_gradient=choice))
        calls.clear()
        for dy, x in operands:
            dy, x = dy.to(dtype), x.to(dtype)
            got = linear_ops.weight_gradient(dy, x)
            assert got.shape == (dy.shape[1], x.shape[1])
            torch.testing.assert_close(got, torch.mm(dy.T, x), rtol=1e-5 if dtype == torch.float32 else 2e-2, atol=1e-4)
        assert len(calls) == (2 if choice == "onednn" and dtype == torch.float32 else 0)


def test_out_proj_takes_the_measured_library_in_training(tuned, monkeypatch):
    """ops/linear.py ``out_proj_forward`` / ``out_proj_input_gradient``: out_proj's input arrives channels first;
    through oneDNN (reading it transposed in place) where measured faster, torch.addmm / torch.mm by default and in
    bf16, the same values either way."""
    if not linear_ops.onednn_available(torch.float32):
        pytest.skip("torch built without oneDNN")
    g = torch.Generator().manual_seed(0)
    x, w, b, dy = (torch.randn(*s, generator=g) for s in ((32, 300), (32, 32), (32,), (300, 32)))
    calls, real = [], linear_ops._onednn_linear
    monkeypatch.setattr(linear_ops, "_onednn_linear", lambda *a, **k: calls.append(1) or real(*a, **k))
    for choice, dtype, used in (("mm", torch.float32, 0), ("onednn", torch.float32, 2), ("onednn", torch.bfloat16, 0)):
        autotune.use(dataclasses.replace(autotune.DEFAULTS, out_proj_train=choice))
        calls.clear()
        tol = {"rtol": 1e-5, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 5e-2}
        xd, wd, bd, dyd = (t.to(dtype) for t in (x, w, b, dy))
        forward = linear_ops.out_proj_forward(xd, wd, bd)
        torch.testing.assert_close(forward, torch.addmm(bd, xd.T, wd.T), **tol)
        grad = linear_ops.out_proj_input_gradient(dyd, wd)
        assert grad.shape == x.shape  # channels first, as the input came
        torch.testing.assert_close(grad, torch.mm(wd.T, dyd.T), **tol)
        assert len(calls) == used


def test_work_on_another_device_never_measures(tuned):
    """A GPU user's first model must not wait for CPU timings that do not apply to it."""
    state, calls = tuned
    state["choices"] = {"block_tokens": 8192, "low_memory_chunk": 512, "fft_pow2_slack": 1.25}
    options = ExecutionOptions()  # building options measures nothing either
    cuda = torch.device("cuda")
    assert options.tuned("block_tokens", cuda) == autotune.DEFAULTS.block_tokens
    # off the CPU the low-memory chunk is a GPU's (few, long chunks), never the CPU's measured 512
    assert options.tuned("low_memory_chunk", "meta") == options.tuned("low_memory_chunk", cuda) == GPU_LOW_MEMORY_CHUNK
    assert fft_length(54_675, cuda) == smooth_fft_length(54_675, autotune.DEFAULTS.fft_pow2_slack)
    assert not calls
    assert fft_length(54_675, "cpu") == 65_536 and len(calls) == 1  # the CPU's work still gets its measured choice
    # "auto" (a command's --device) is the CPU here, where there is no GPU, and never an error
    expected = autotune.DEFAULTS if torch.cuda.is_available() else autotune.tuning("cpu")
    assert autotune.tuning("auto") == expected and autotune.tuning_for_threads(1, "auto") is not None


def test_off_switch_uses_the_defaults_and_writes_nothing(tuned, monkeypatch, tmp_path):
    _, calls = tuned
    monkeypatch.setenv("HYENADNA_AUTOTUNE", "0")
    assert autotune.tuning() == autotune.DEFAULTS and not calls
    assert not (tmp_path / "autotune").exists()
    monkeypatch.setenv("HYENADNA_AUTOTUNE", "1")
    autotune.set_enabled(False)
    assert autotune.tuning() == autotune.DEFAULTS and not calls


def test_a_file_pins_the_choices_a_cache_file_or_a_benchmark_run_records(tuned, monkeypatch, tmp_path, capsys):
    from hyenadna.cli import main

    _, calls = tuned
    other = {**autotune.DEFAULTS.__dict__, "projection_train": "mkl", "fft_pow2_slack": 1.0}
    run = tmp_path / "seed0.json"
    run.write_text(json.dumps({"test": {}, "environment": {"threads": 1, "kernels": other}}))
    record = tmp_path / "machine.json"
    record.write_text(json.dumps({"choices": {**other, "block_tokens": 4096}}))
    for path, expected in ((run, other), (record, {**other, "block_tokens": 4096})):
        monkeypatch.setenv("HYENADNA_AUTOTUNE", str(path))
        autotune.set_enabled(None)
        assert autotune.tuning() == autotune.Tuning(**expected)
        assert autotune.tuning_for_threads(1) == autotune.Tuning(**expected)  # whatever the thread count
    # runs recorded before weight_gradient and out_proj_train existed ran torch.mm, their default; other missing
    # knobs stay errors
    older = {k: v for k, v in other.items() if k not in ("weight_gradient", "out_proj_train")}
    run.write_text(json.dumps({"test": {}, "environment": {"threads": 1, "kernels": older}}))
    monkeypatch.setenv("HYENADNA_AUTOTUNE", str(run))
    autotune.set_enabled(None)
    assert autotune.tuning() == autotune.Tuning(**older)
    assert autotune.tuning().weight_gradient == autotune.tuning().out_proj_train == "mm"
    assert main(["autotune"]) == 0 and "pinned by HYENADNA_AUTOTUNE" in capsys.readouterr().out
    assert not calls and not (tmp_path / "autotune").exists()  # nothing measured, nothing cached
    # a pin that cannot be honoured is an error naming the file, never the defaults in silence
    bad = tmp_path / "bad.json"
    no_chunk = {k: v for k, v in other.items() if k != "low_memory_chunk"}
    for text in (
        None,
        "{not json",
        json.dumps({"test": {}}),
        json.dumps({"choices": {**other, "block_tokens": 3}}),
        json.dumps({"choices": no_chunk}),
    ):
        if text is not None:
            bad.write_text(text)
        monkeypatch.setenv("HYENADNA_AUTOTUNE", str(bad))
        autotune.set_enabled(None)
        with pytest.raises(ValueError, match=r"bad\.json: cannot pin"):
            autotune.tuning()


def test_an_unreadable_cache_file_is_kept_and_the_defaults_are_used(tuned):
    _, calls = tuned
    path = autotune.cache_path()
    path.parent.mkdir(parents=True)
    for bad in ("{not json", json.dumps({"choices": {**autotune.DEFAULTS.__dict__, "block_tokens": 3}})):
        path.write_text(bad)
        autotune.set_enabled(None)
        with pytest.warns(UserWarning, match="autotune --refresh"):
            assert autotune.tuning() == autotune.DEFAULTS
        assert path.read_text() == bad and not calls  # never deleted or rewritten behind the user's back


def test_a_home_that_cannot_be_written_runs_with_the_defaults(tuned, tmp_path, monkeypatch, capsys):
    """A read-only HYENADNA_HOME (a container, a cluster node) stopped every command before it began."""
    from hyenadna.cli import main

    state, calls = tuned
    state["choices"] = {"block_tokens": 8192}
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("HYENADNA_HOME", str(tmp_path / "a_file" / "home"))
    autotune.set_enabled(None)
    with pytest.warns(UserWarning, match="cannot keep kernel choices in .*; using the default ones. Set HYENADNA_HOME"):
        assert autotune.tuning() == autotune.DEFAULTS
    assert not calls
    assert main(["embed", str(REPO / "hyenadna" / "examples" / "example.fa"), "-o", str(tmp_path / "e.npz")]) == 0


def test_a_measurement_beside_other_work_says_so(tuned, capsys, monkeypatch):
    """The paired rounds cancel drifting load, not steady load: a record measured with fewer idle cores than its
    threads says so when measured and when shown, with the way to measure again; a quiet one says nothing."""
    from hyenadna.cli import main

    assert tuned  # autotune on, a fake measurement, a temporary cache
    fake = autotune.measure
    monkeypatch.setattr(autotune, "measure", lambda: {**fake(), "idle_cores": 0})
    autotune.tuning()
    assert "other work kept cores busy (0 idle" in capsys.readouterr().err
    assert main(["autotune"]) == 0 and "autotune --refresh` measures again" in capsys.readouterr().out
    assert autotune.contention_note({"idle_cores": 2, "threads": 2}) is None
    assert autotune.contention_note({"threads": 2}) is None  # recorded before idle cores were


def test_cli_shows_and_refreshes_the_choices(tuned, capsys):
    from hyenadna.cli import main

    state, calls = tuned
    state["choices"] = {"low_memory_chunk": 2048}
    assert main(["autotune", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "low_memory_chunk" in out and "2048" in out and len(calls) == 1
    assert main(["autotune", "--threads", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["choices"]["low_memory_chunk"] == 2048 and len(calls) == 1
    assert main(["autotune", "--threads", "1", "--refresh"]) == 0 and len(calls) == 2


def test_real_measurement_returns_a_candidate_for_every_knob(tmp_path, monkeypatch):
    monkeypatch.setenv("HYENADNA_HOME", str(tmp_path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # as in real use, where the first model asks from inside an inference-mode forward (embedding)
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("error")
            record = autotune.measure()
    finally:
        torch.set_num_threads(threads)
    assert set(record["choices"]) == set(autotune.CANDIDATES) and "idle_cores" in record
    for name, chosen in record["choices"].items():
        assert chosen in autotune.CANDIDATES[name]
        assert record["seconds"][name] and all(s > 0 for s in record["seconds"][name].values())
    assert autotune._from_record(json.loads(json.dumps(record))) == autotune.Tuning(**record["choices"])


def test_benchmark_workers_take_the_choices_their_parent_resolved_once(tuned, tmp_path, capfd):
    """Two workers starting together on a new machine would each measure, side by side, and could pick different
    kernels for the runs of one call: the parent measures once and hands its choices over."""
    state, calls = tuned
    state["choices"] = {"fft_pow2_slack": 1.25}
    task = tmp_path / "tasks" / "gc_task"
    task.mkdir(parents=True)
    gc_frame(40, 0).to_csv(task / "train.csv.gz", index=False)
    gc_frame(20, 1).to_csv(task / "test.csv.gz", index=False)
    (task / "task.json").write_text(json.dumps({"name": "gc_task", "metric": "MCC", "label_names": ["at", "gc"]}))
    cfg = BenchmarkConfig(
        tasks_dir=str(tmp_path / "tasks"),
        out_dir=str(tmp_path / "out"),
        seeds=[0, 1],
        modes=["probe"],
        probes=["logreg"],
        model_path=str(FIXTURES / "tiny"),
    )
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run_benchmark(cfg, log=lambda m: None, workers=2)
    finally:
        torch.set_num_threads(threads)
    assert calls == [1]  # the parent, once, for the workers' one thread each
    assert capfd.readouterr().err.count("measuring which kernels") == 1  # the parent's: neither worker measured
    assert json.loads(autotune.cache_path(1).read_text())["choices"]["fft_pow2_slack"] == 1.25


def _tune_in_a_new_process(home: str, log: str) -> dict:
    """Child of the test below: autotune on, ``measure`` a slow fake that logs each call."""
    import os
    import time

    os.environ.update(HYENADNA_HOME=home, HYENADNA_AUTOTUNE="1")
    autotune.set_enabled(None)

    def slow_measure():
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # long enough that the other process asks while this one measures
        return {"choices": {**autotune.DEFAULTS.__dict__, "block_tokens": 4096}}

    autotune.measure = slow_measure
    return autotune.tuning().__dict__


def test_processes_starting_together_measure_once(tmp_path):
    import multiprocessing

    log = tmp_path / "measured.log"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        choices = pool.starmap(_tune_in_a_new_process, [(str(tmp_path), str(log))] * 2)
    assert len(log.read_text().split()) == 1  # one measured; the other waited for its file and read it
    assert choices[0] == choices[1] and choices[0]["block_tokens"] == 4096
