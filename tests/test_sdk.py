"""The model card's API: configuration, weight lookup, process_data and get_embeddings."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from hyenadna import (
    PUBLISHED_CONFIGS,
    HyenaDNA,
    HyenaDNAConfig,
    HyenaDNALMHeadModel,
    WeightsNotFoundError,
    load_model,
)
from hyenadna.tokenizer import reverse_complement_ids
from tests.conftest import FIXTURES

rng = np.random.default_rng(0)


def random_dna(n: int) -> str:
    return "".join(rng.choice(list("ACGT"), n))


@pytest.fixture(scope="module")
def tiny() -> HyenaDNA:
    return HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny", batch_size=4))


def test_model_card_example_runs_as_written(tmp_path):
    """The README's quick start, with the d256 checkpoint's files in the cache."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        HyenaDNALMHeadModel(PUBLISHED_CONFIGS["hyenadna-tiny-1k-seqlen-d256"]).save_pretrained(
            os.environ["HYENADNA_HOME"] + "/hyenadna-tiny-1k-seqlen-d256"
        )
    from hyenadna import HyenaDNA, HyenaDNAConfig

    model = HyenaDNA(configurer=HyenaDNAConfig(model_name="hyenadna-tiny-1k-seqlen-d256"))
    emb = model.get_embeddings(model.process_data("ACTG" * 1024))
    assert emb.shape == (1, 4096, 256)
    assert np.isfinite(emb).all()


@pytest.mark.parametrize(
    ("folder", "files"),
    [
        ("hyenadna-tiny-1k-seqlen", {"lightning_weights.ckpt": "weights.ckpt", "config.json": "config.json"}),
        ("hyenadna-tiny-1k-seqlen-hf", {"model.safetensors": "model.safetensors", "config.json": "config.json"}),
    ],
)
def test_published_name_found_in_cache_in_hub_layouts(folder, files, tiny):
    src = FIXTURES / ("tiny_hf" if folder.endswith("-hf") else "tiny")
    dst = os.path.join(os.environ["HYENADNA_HOME"], folder)
    os.makedirs(dst)
    for a, b in files.items():
        shutil.copy(src / a, os.path.join(dst, b))
    model = HyenaDNA(HyenaDNAConfig(model_name="hyenadna-tiny-1k-seqlen"))
    seqs = [random_dna(50)]
    assert np.allclose(model.get_embeddings(seqs, pooling="mean"), tiny.get_embeddings(seqs, pooling="mean"))


def test_missing_weights_say_where_they_come_from():
    """No network (HF_ENDPOINT points at a closed port) and nothing cached: one error that names the repository, the
    cache folder and the command that prefetches it."""
    with pytest.raises(WeightsNotFoundError) as e:
        HyenaDNA(HyenaDNAConfig(model_name="hyenadna-small-32k-seqlen"))
    msg = str(e.value)
    assert "LongSafari/hyenadna-small-32k-seqlen-hf" in msg
    assert os.path.join(os.environ["HF_HOME"], "hub") in msg
    assert "hyenadna download LongSafari/hyenadna-small-32k-seqlen-hf" in msg


def test_unknown_name_and_wrong_shape():
    with pytest.raises(WeightsNotFoundError, match="unknown model name 'hyenadna-huge'"):
        HyenaDNA(HyenaDNAConfig(model_name="hyenadna-huge"))
    with pytest.raises(
        WeightsNotFoundError, match=r"'hyenadna-small-32k'; did you mean hyenadna-small-32k-seqlen\? known"
    ):
        HyenaDNA(HyenaDNAConfig(model_name="hyenadna-small-32k"))
    dst = os.path.join(os.environ["HYENADNA_HOME"], "hyenadna-tiny-1k-seqlen-d256")
    shutil.copytree(FIXTURES / "tiny_hf", dst)
    with pytest.raises(ValueError, match="do not have the shape of hyenadna-tiny-1k-seqlen-d256: d_model=128"):
        HyenaDNA(HyenaDNAConfig(model_name="hyenadna-tiny-1k-seqlen-d256"))


def test_random_model_is_deliberate_and_seeded():
    a = HyenaDNA(HyenaDNAConfig(pretrained=False, seed=3, model_name="hyenadna-tiny-1k-seqlen"))
    b = HyenaDNA(HyenaDNAConfig(pretrained=False, seed=3, model_name="hyenadna-tiny-1k-seqlen"))
    assert "RANDOMLY INITIALISED" in a.source
    assert np.array_equal(a.get_embeddings("ACGT", pooling="mean"), b.get_embeddings("ACGT", pooling="mean"))


@pytest.mark.parametrize("pooling", [None, "mean", "last", "max"])
def test_embedding_does_not_depend_on_the_batch(tiny, pooling):
    short, longer = random_dna(150), random_dna(700)
    alone = tiny.get_embeddings([short], pooling=pooling)
    batched = tiny.get_embeddings([short, longer, random_dna(20)], pooling=pooling)
    if pooling is None:
        assert batched.shape == (3, 700, 128)
        assert np.abs(batched[0, :150] - alone[0]).max() < 1e-5
        assert np.all(batched[0, 150:] == 0)
    else:
        assert np.abs(batched[0] - alone[0]).max() < 1e-5


def test_pooling_definitions(tiny):
    seq = random_dna(80)
    per_token = tiny.get_embeddings([seq])[0]
    assert np.allclose(tiny.get_embeddings([seq], pooling="mean")[0], per_token.mean(0), atol=1e-5)
    assert np.allclose(tiny.get_embeddings([seq], pooling="max")[0], per_token.max(0), atol=1e-6)
    assert np.allclose(tiny.get_embeddings([seq], pooling="last")[0], per_token[-1], atol=1e-6)


def test_windows_cover_each_base_once(tiny):
    seq = random_dna(2500)  # l_max 1026: windows [0, 1026), [1026, 2052), and the last one ends at 2500
    emb = tiny.get_embeddings([seq])
    assert emb.shape == (1, 2500, 128)
    for start, first_out in ((0, 0), (1026, 0), (2500 - 1026, 2052 - (2500 - 1026))):
        alone = tiny.get_embeddings([seq[start : start + 1026]])[0]
        out = start + first_out
        assert np.abs(emb[0, out : start + len(alone)] - alone[first_out:]).max() < 1e-5
    mean = tiny.get_embeddings([seq], pooling="mean")[0]
    assert np.allclose(mean, emb[0].mean(0), atol=1e-5)


def test_long_sequence_modes(tiny):
    seq = random_dna(1100)
    assert tiny.get_embeddings([seq], long_sequences="truncate").shape == (1, 1026, 128)
    with pytest.raises(ValueError, match=r"sequence 0 has 1100 tokens, more than the context of 1026"):
        tiny.get_embeddings([seq], long_sequences="error")


def test_rc_average(tiny):
    seq = random_dna(60)
    rc = tiny.tokenizer.decode(reverse_complement_ids(tiny.tokenizer.encode_bases(seq)))
    fwd, rev = tiny.get_embeddings([seq], pooling="mean"), tiny.get_embeddings([rc], pooling="mean")
    assert np.allclose(tiny.get_embeddings([seq], pooling="mean", rc_average=True), (fwd + rev) / 2, atol=1e-5)
    tok_f, tok_r = tiny.get_embeddings([seq])[0], tiny.get_embeddings([rc])[0]
    both = tiny.get_embeddings([seq], rc_average=True)[0]
    assert np.allclose(both, (tok_f + tok_r[::-1]) / 2, atol=1e-5)  # position i of seq is position n-1-i of rc
    assert np.allclose(
        tiny.get_embeddings([rc], pooling="mean", rc_average=True),
        tiny.get_embeddings([seq], pooling="mean", rc_average=True),
        atol=1e-5,
    )


def test_dataframe_input_and_names(tiny):
    df = pd.DataFrame({"Name": ["a", "b"], "SEQUENCE": ["ACGTAC", "acgtacgt"]})
    data = tiny.process_data(df)
    assert data.names == ["a", "b"] and data.lengths.tolist() == [6, 8]
    with pytest.raises(ValueError, match="no 'sequence' column"):
        tiny.process_data(pd.DataFrame({"seq": ["ACGT"]}))
    # a dict maps names to sequences: its keys are names, never embedded as DNA
    by_name = tiny.process_data({"a": "ACGTAC", "b": "acgtacgt"})
    assert by_name.names == ["a", "b"] and [x.tolist() for x in by_name.ids] == [x.tolist() for x in data.ids]


def test_score_is_each_sequences_log_likelihood(tiny):
    """``score`` sums log P(base | bases before it) over every base but the first, leaves N out (counted), gives NaN
    where nothing was scored, reads long sequences in windows, and runs in the configured precision."""
    rng = np.random.default_rng(4)
    seqs = {"dna": "".join(rng.choice(list("ACGT"), 60)), "gap": "NNNN", "one": "A", "long": "ACGT" * 400}
    table = tiny.score(seqs)
    assert list(table.columns) == [
        "id",
        "length",
        "log_likelihood",
        "n_scored",
        "n_skipped",
        "nll_per_base",
        "perplexity",
    ]
    assert table["id"].tolist() == list(seqs) and table["length"].tolist() == [60, 4, 1, 1600]
    ids = torch.tensor([tiny.tokenizer.encode(seqs["dna"])])
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(ids).logits, -1)[0, :-1].gather(-1, ids[0, 1:, None]).sum().item()
    assert table["log_likelihood"][0] == pytest.approx(logp, abs=1e-3)
    assert table["nll_per_base"][0] == pytest.approx(-logp / 59, abs=1e-4)
    assert table[["n_scored", "n_skipped"]].values.tolist() == [[59, 0], [0, 3], [0, 0], [1599, 0]]
    assert table["perplexity"].isna().tolist() == [False, True, True, False]
    bf16 = HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny", precision="bf16"), model=tiny.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bf16 emulated on CPUs without it: slower, not wrong
        rounded = bf16.score([seqs["dna"]])["log_likelihood"][0]
    assert rounded != table["log_likelihood"][0] and rounded == pytest.approx(logp, rel=0.05)


def test_bad_input_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match=r"sequence 1, position 3: invalid character '-'"):
        tiny.process_data(["ACGT", "AC-GT"])
    with pytest.raises(ValueError, match=r"sequence 0 is empty"):
        tiny.process_data([""])
    with pytest.raises(TypeError, match="sequence 1: expected str"):
        tiny.process_data(["ACGT", 5])
    with pytest.raises(TypeError, match=r"expected str, got bytes: decode it first"):
        tiny.process_data(b"ACGT")
    with pytest.raises(ValueError, match=r"sequence 1 \(b\) is missing \(nan\)"):  # a gap in a table
        tiny.process_data(pd.DataFrame({"name": ["a", "b"], "sequence": ["ACGT", None]}))
    with pytest.raises(ValueError, match=r"model_overrides: foo not a HyenaConfig field \(activation_freq, d_inner"):
        HyenaDNAConfig(model_overrides={"foo": 1, "d_model": 8})
    with pytest.raises(TypeError, match=r"layer='last': give a layer number or a list of them"):
        tiny.get_embeddings("ACGT", layer="last")
    # numpy's integers are layer numbers: one array for one, a list for a list
    assert tiny.get_embeddings("ACGT", layer=np.int64(1)).shape == (1, 4, tiny.embedding_dim)
    assert len(tiny.get_embeddings("ACGT", layer=np.arange(2))) == 2
    with pytest.raises(ValueError, match="pooling"):
        HyenaDNAConfig(pooling="median")
    with pytest.raises(ValueError, match=r"batch_size=2\.5: must be a whole number"):
        HyenaDNAConfig(batch_size=2.5)
    with pytest.raises(ValueError, match=r"iupac_policy='x': choose one of"):
        HyenaDNAConfig(iupac_policy="x")
    with pytest.raises(ValueError, match=r"device='gpu': give 'auto', 'cpu', 'cuda' \(or 'cuda:N'\) or 'mps'"):
        HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny", device="gpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_missing_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny", device="cuda"))


def test_framing_for_helical_compatibility(tiny):
    """Per-token output has one row per input base under every framing: the [CLS]/[SEP] rows are not output."""
    cls_sep = HyenaDNA(HyenaDNAConfig(framing="cls_sep"), model=tiny.model)
    emb = cls_sep.get_embeddings(["ACGT"])
    assert emb.shape == (1, 4, 128)
    with torch.no_grad():
        want = tiny.model.backbone(torch.tensor([[0, 7, 8, 9, 10, 1]]))[0].numpy()
    assert np.allclose(emb[0], want[1:5], atol=1e-6)
    assert np.allclose(cls_sep.get_embeddings(["ACGT"], pooling="mean")[0], want.mean(0), atol=1e-6)
    assert np.allclose(cls_sep.get_embeddings(["ACGT"], pooling="last")[0], want[-1], atol=1e-6)


def test_sdk_matches_model_on_fixture_case(tiny):
    from tests.conftest import load_io

    io = load_io("tiny")
    ids = io["batch4.input_ids"]
    seqs = [tiny.tokenizer.decode(r) for r in ids]
    emb = tiny.get_embeddings(seqs)
    assert np.abs(emb - io["batch4.hidden_states"].numpy()).max() < 5e-5
    assert load_model(FIXTURES / "tiny").config.l_max == tiny.context_length


def test_bf16_precision_is_close_to_fp32_and_validated():
    seqs = ["ACGT" * 50, "GGCATTAC" * 20]
    fp32 = HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny", pooling="mean", progress=False))
    bf16 = HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny", pooling="mean", progress=False, precision="bf16"))
    a, b = fp32.get_embeddings(seqs), bf16.get_embeddings(seqs)
    assert not np.array_equal(a, b)  # the autocast really ran
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()
    with pytest.raises(ValueError, match="precision"):
        HyenaDNAConfig(precision="fp8")


def test_bf16_low_memory_path_runs_and_stays_close():
    from hyenadna import load_model

    model = load_model(FIXTURES / "deep_long")
    ids = torch.randint(7, 12, (1, 999))
    with torch.no_grad():
        ref = model.backbone(ids, low_memory=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.backbone(ids, low_memory=True)
            full = model.backbone(ids, low_memory=False)
    assert low.dtype == torch.float32
    assert (low - ref).abs().max() < 0.05 * ref.abs().max()
    assert (full.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_import_and_embedding_load_no_heavy_dependencies():
    """`import hyenadna` and an embedding with the bundled model load neither pandas, pyarrow, scipy, scikit-learn,
    matplotlib nor huggingface_hub: each is imported where a feature needs it."""
    import subprocess
    import sys

    code = (
        "import sys, hyenadna\n"
        "m = hyenadna.HyenaDNA(hyenadna.HyenaDNAConfig(progress=False))\n"
        "m.get_embeddings(['ACGT' * 50, 'GGCA' * 20], pooling='mean')\n"
        "heavy = ('pandas', 'pyarrow', 'scipy', 'sklearn', 'matplotlib', 'huggingface_hub')\n"
        "print(sorted(k for k in heavy if k in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_import_is_lazy_and_every_public_name_resolves():
    """`import hyenadna` (and the command line's start) import no torch; each public name loads on first use."""
    import subprocess
    import sys

    code = (
        "import sys, hyenadna, hyenadna.cli\n"
        "print('torch' in sys.modules)\n"
        "print(sorted(hyenadna.__all__) == sorted(hyenadna._EXPORTS))\n"
        "print(all(getattr(hyenadna, n) is not None for n in hyenadna.__all__), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True", "True"], out.stdout + out.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import hyenadna

        hyenadna.nothing  # noqa: B018


def test_ctrl_c_while_starting_up_is_clean(tmp_path):
    """A Ctrl-C at any moment of start-up (torch importing, the model loading) ends with 130 and one line, never a
    traceback, nor an abort: raised inside torch's import, a KeyboardInterrupt once ended the process in pybind11's
    terminate (-6)."""
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(0)
    fasta = tmp_path / "many.fa"  # long enough to be still running at the last delay
    fasta.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGT'), 1000))}\n" for i in range(300)))
    out = tmp_path / "emb.npz"
    # from 0.4 s: Python's own start-up, before any of our code runs (~0.1 s), cannot be helped
    for delay in (0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.3, 1.6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "hyenadna", "embed", str(fasta), "-o", str(out), "--threads", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, f"after {delay} s:\n{err}"
        # never ignored (it ran on before) nor aborted (-6). Once (a clean-clone CI run, 2026-12-02), at 1.6 s
        # (embedding under way), it printed its one line and then ended by SIGINT (-2), which a shell reports as 130
        assert proc.returncode in (130, -signal.SIGINT), (delay, proc.returncode, err)
        assert err.count("interrupted") == 1 and not out.exists()


def test_ctrl_c_held_during_start_up_is_raised_once_torch_has_imported(monkeypatch):
    """The start-up handler only remembers a Ctrl-C (raising inside torch's C++ import could abort the process);
    resume() puts Python's handler back and raises the one held."""
    import os
    import signal

    from hyenadna import _startup

    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(_startup, "interrupted", False)
    try:
        _startup.install()
        os.kill(os.getpid(), signal.SIGINT)  # handled here, between bytecodes: remembered, nothing raised
        for _ in range(1000):
            if _startup.interrupted:
                break
        assert _startup.interrupted
        with pytest.raises(KeyboardInterrupt):
            _startup.resume()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        monkeypatch.setattr(_startup, "interrupted", False)
        _startup.resume()  # nothing held: nothing raised
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_held_until_the_model_stack_has_imported():
    """torch._dynamo is imported by our ops (torch.compiler.disable) and defines dataclasses as it imports: a Ctrl-C
    there came out of Python 3.11 as a RuntimeError traceback (a clean-clone CI run, 2026-12-03), so the held
    Ctrl-C is released only after it."""
    import subprocess
    import sys

    script = """
import sys
from hyenadna import _startup, cli
imported = []
release = _startup.resume
def resume():
    imported.append(all(m in sys.modules for m in ("torch", "torch._dynamo", "hyenadna.models")))
    release()
_startup.resume = resume
cli._run = lambda args: 0
print(cli.main(["info"]), imported)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["0", "[True]"], (done.stdout, done.stderr)


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_ctrl_c_wrapped_in_another_exception_ends_as_an_interrupt(monkeypatch, capsys, wrapped):
    from hyenadna import cli

    def run(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            if wrapped:  # as type.__new__ reports an exception from __set_name__ on Python 3.11
                raise RuntimeError("Error calling __set_name__ on 'Field' instance 'breakpoints'") from e
            raise RuntimeError("a real failure") from None

    monkeypatch.setattr(cli, "_run", run)
    if wrapped:
        assert cli.main(["info"]) == 130
        assert capsys.readouterr().err == "hyenadna: interrupted\n"
    else:  # a RuntimeError of its own is not mistaken for one
        with pytest.raises(RuntimeError, match="a real failure"):
            cli.main(["info"])


def test_old_torch_is_refused_at_import_without_importing_it(tmp_path, monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    import hyenadna

    for version, ok in (("2.3.1+cpu", False), ("2.4.0", True), ("2.13.0+cu126", True), ("10.0.0a0", True)):
        (tmp_path / "version.py").write_text(f"__version__ = '{version}'\ngit_version = 'abc'\n")
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: SimpleNamespace(origin=str(tmp_path / "x.py")))
        if ok:
            hyenadna._check_torch()
        else:
            with pytest.raises(ImportError, match=r"needs torch >= 2.4; this environment has torch 2.3.1"):
                hyenadna._check_torch()


def test_a_ctrl_c_dropped_by_a_weakref_callback_is_delivered_again():
    """Python drops a KeyboardInterrupt raised inside a weakref callback (importlib's module locks have one), with an
    "Exception ignored" traceback, and the command ran on. After start-up it comes back at the next line instead."""
    import subprocess
    import sys

    script = """
import time, weakref
from hyenadna import _startup
_startup.install()
_startup.resume()
class Box:
    pass
def callback(_):
    raise KeyboardInterrupt
box = Box()
ref = weakref.ref(box, callback)
try:
    del box  # the callback's KeyboardInterrupt is "unraisable"
    for _ in range(300):
        time.sleep(0.01)
    print("ran on")
except KeyboardInterrupt:
    print("interrupted")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "interrupted", (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
