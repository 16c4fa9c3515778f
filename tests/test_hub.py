"""Weights and datasets by name from the Hugging Face Hub, against a local stand-in on 127.0.0.1 (tests/hub_standin.py).

Every failure case a user can meet: a cache hit with the server stopped, offline mode, a pinned revision, an unknown
repository, a server that is down (with and without a cached copy), and downloads that break, have the wrong size or
the wrong bytes. In each, the cache keeps its good copy.
"""

from __future__ import annotations

import io
import json
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hyenadna import PUBLISHED_CONFIGS, HyenaDNA, HyenaDNAConfig, HyenaDNALMHeadModel, WeightsNotFoundError
from hyenadna.cli import main
from hyenadna.hub import HubDownloadError, HubOptions, resolve_weights
from tests.conftest import FIXTURES, load_io
from tests.hub_standin import HubStandIn

HF_REPO = "LongSafari/hyenadna-tiny-1k-seqlen-hf"
LIGHTNING_REPO = "LongSafari/hyenadna-tiny-1k-seqlen"
ATOL = 5e-5


def hf_files() -> dict[str, bytes]:
    return {f: (FIXTURES / "tiny_hf" / f).read_bytes() for f in ("config.json", "model.safetensors")}


def lightning_files() -> dict[str, bytes]:
    return {
        "config.json": (FIXTURES / "tiny" / "config.json").read_bytes(),
        "weights.ckpt": (FIXTURES / "tiny" / "lightning_weights.ckpt").read_bytes(),
    }


def other_weights(tmp_path: Path, seed: int) -> dict[str, bytes]:
    """The tiny shape with other (random) weights, in the -hf layout: a second commit of the same repository."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        folder = HyenaDNALMHeadModel(PUBLISHED_CONFIGS["hyenadna-tiny-1k-seqlen"]).save_pretrained(
            tmp_path / f"w{seed}", layout="hf"
        )
    return {f: (folder / f).read_bytes() for f in ("config.json", "model.safetensors")}


@pytest.fixture
def hub(monkeypatch):
    server = HubStandIn().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()


@pytest.fixture
def connections(monkeypatch):
    """Every socket connection attempted during the test (conftest still refuses all but 127.0.0.1)."""
    seen = []
    connect = socket.socket.connect

    def counting(self, address):
        seen.append(address)
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counting)
    return seen


def hub_cache() -> Path:
    return Path(os.environ["HF_HOME"]) / "hub"


def assert_reproduces_tiny_fixture(folder: Path) -> None:
    model = HyenaDNALMHeadModel.from_pretrained(folder)
    data = load_io("tiny")
    with torch.no_grad():
        out = model(data["batch4.input_ids"])
    assert (out.hidden_states - data["batch4.hidden_states"]).abs().max().item() < ATOL
    assert (out.logits - data["batch4.logits"]).abs().max().item() < ATOL


def embed(name: str = "hyenadna-tiny-1k-seqlen", **kw) -> np.ndarray:
    model = HyenaDNA(HyenaDNAConfig(model_name=name, **kw))
    return model.get_embeddings(["ACGTACGTTTGACCA" * 5], pooling="mean")


# -- the model card's example -----------------------------------------------------------------------------------------


def test_model_card_example_runs_as_written_then_from_cache_then_offline(hub, tmp_path, monkeypatch):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        d256 = HyenaDNALMHeadModel(PUBLISHED_CONFIGS["hyenadna-tiny-1k-seqlen-d256"])
    folder = d256.save_pretrained(tmp_path / "d256", layout="hf")
    hub.add_commit(
        "LongSafari/hyenadna-tiny-1k-seqlen-d256-hf",
        {f: (folder / f).read_bytes() for f in ("config.json", "model.safetensors")},
    )

    from hyenadna import HyenaDNA, HyenaDNAConfig

    model = HyenaDNA(configurer=HyenaDNAConfig(model_name="hyenadna-tiny-1k-seqlen-d256"))
    emb = model.get_embeddings(model.process_data("ACTG" * 1024))
    assert emb.shape == (1, 4096, 256)
    assert "models--LongSafari--hyenadna-tiny-1k-seqlen-d256-hf" in model.source

    hub.stop()  # network down: the cached copy, with one warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = HyenaDNA(configurer=HyenaDNAConfig(model_name="hyenadna-tiny-1k-seqlen-d256"))
    assert [str(w.message) for w in caught if "could not reach" in str(w.message)] == [str(caught[0].message)], (
        "exactly one warning"
    )
    assert "using the cached copy of LongSafari/hyenadna-tiny-1k-seqlen-d256-hf" in str(caught[0].message)
    assert np.array_equal(again.get_embeddings(again.process_data("ACTG" * 1024)), emb)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # offline by choice: no warning
        offline = HyenaDNA(configurer=HyenaDNAConfig(model_name="hyenadna-tiny-1k-seqlen-d256"))
    assert np.array_equal(offline.get_embeddings(offline.process_data("ACTG" * 1024)), emb)


# -- layouts --------------------------------------------------------------------------------------------------------


def test_hf_repository_is_preferred_and_reproduces_the_fixture(hub):
    hub.add_commit(HF_REPO, hf_files())
    hub.add_commit(LIGHTNING_REPO, lightning_files())
    folder = resolve_weights("hyenadna-tiny-1k-seqlen")
    assert folder.parent.parent.name == "models--LongSafari--hyenadna-tiny-1k-seqlen-hf"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert_reproduces_tiny_fixture(folder)
    assert not any("weights.ckpt" in path for _, path in hub.requests), "the pickle was never asked for"


def test_lightning_repository_when_asked_or_when_hf_is_missing(hub):
    hub.add_commit(LIGHTNING_REPO, lightning_files())
    folder = resolve_weights("hyenadna-tiny-1k-seqlen")  # no -hf repository: falls back
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.ckpt"]
    assert_reproduces_tiny_fixture(folder)
    hub.add_commit(HF_REPO, hf_files())
    asked = resolve_weights("hyenadna-tiny-1k-seqlen", hub=HubOptions(layout="lightning"))
    assert asked == folder


def test_repo_id_and_from_pretrained_by_name(hub):
    hub.add_commit("someone/my-hyena", hf_files())
    assert_reproduces_tiny_fixture(resolve_weights("someone/my-hyena"))
    model = HyenaDNALMHeadModel.from_pretrained("someone/my-hyena")
    assert model.config.d_model == 128


def sharded_hf_files(tmp_path: Path) -> dict[str, bytes]:
    """The tiny fixture in the -hf layout, split into shards with a model.safetensors.index.json."""
    folder = HyenaDNALMHeadModel.from_pretrained(FIXTURES / "tiny_hf").save_pretrained(
        tmp_path / "sharded", layout="hf", max_shard_bytes=400_000
    )
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_sharded_repository_fetches_every_shard_then_works_offline(hub, tmp_path, monkeypatch, connections):
    files = sharded_hf_files(tmp_path)
    assert len([f for f in files if f.startswith("model-")]) == 6
    hub.add_commit(HF_REPO, files)
    folder = resolve_weights("hyenadna-tiny-1k-seqlen")
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    assert_reproduces_tiny_fixture(folder)
    assert not any(path.endswith("/model.safetensors") and method == "GET" for method, path in hub.requests)

    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    connections.clear()
    assert resolve_weights("hyenadna-tiny-1k-seqlen") == folder
    assert_reproduces_tiny_fixture(folder)
    assert connections == []


def test_sharded_repository_missing_a_shard(hub, tmp_path):
    files = sharded_hf_files(tmp_path)
    del files["model-00004-of-00006.safetensors"]
    hub.add_commit(HF_REPO, files)
    with pytest.raises(
        WeightsNotFoundError, match=r"index\.json lists model-00004-of-00006\.safetensors, which is not"
    ):
        resolve_weights("hyenadna-tiny-1k-seqlen")


def test_hand_placed_folder_is_looked_at_first(hub, connections):
    dst = Path(os.environ["HYENADNA_HOME"]) / "hyenadna-tiny-1k-seqlen-hf"
    dst.mkdir(parents=True)
    for name, data in hf_files().items():
        (dst / name).write_bytes(data)
    assert resolve_weights("hyenadna-tiny-1k-seqlen") == dst
    assert connections == [] and hub.requests == []


def test_mistyped_path_is_not_a_model_name():
    with pytest.raises(WeightsNotFoundError, match="no such file or folder"):
        resolve_weights("/nonexistent/model")
    with pytest.raises(WeightsNotFoundError, match="no such file or folder"):
        resolve_weights("./weights.ckpt")


# -- offline, revisions, failures -------------------------------------------------------------------------------------


def test_offline_mode_never_opens_a_socket(hub, connections, monkeypatch):
    hub.add_commit(HF_REPO, hf_files())
    online = embed()
    n = len(hub.requests)
    connections.clear()
    assert np.array_equal(embed(local_files_only=True), online)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert np.array_equal(embed(), online)
    assert connections == [] and len(hub.requests) == n

    # nothing cached: one clear error, still without a socket
    with pytest.raises(WeightsNotFoundError) as e:
        embed("hyenadna-small-32k-seqlen")
    msg = str(e.value)
    assert "offline mode is on" in msg and str(hub_cache()) in msg
    assert "hyenadna download LongSafari/hyenadna-small-32k-seqlen-hf" in msg
    assert connections == []


def test_pinned_revision(hub, tmp_path):
    first = hub.add_commit(HF_REPO, hf_files())
    hub.add_commit(HF_REPO, other_weights(tmp_path, seed=1))  # main moves on
    pinned = resolve_weights("hyenadna-tiny-1k-seqlen", hub=HubOptions(revision=first))
    assert pinned.name == first
    assert_reproduces_tiny_fixture(pinned)
    latest = resolve_weights("hyenadna-tiny-1k-seqlen")
    assert latest.name != first
    assert not np.array_equal(embed(), embed(revision=first))
    with pytest.raises(WeightsNotFoundError, match="not found"):
        resolve_weights("hyenadna-tiny-1k-seqlen", hub=HubOptions(revision="no-such-branch"))


def test_unknown_repository_is_a_clear_404(hub):
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights("someone/missing")
    assert "'someone/missing': not found on " + hub.url in str(e.value)
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights("hyenadna-tiny-1k-seqlen")  # a published name whose repositories are both missing
    assert f"tried {HF_REPO}, {LIGHTNING_REPO}" in str(e.value)


def test_server_down_without_a_cached_copy(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights("hyenadna-tiny-1k-seqlen")
    msg = str(e.value)
    assert "http://127.0.0.1:9 cannot be reached" in msg and str(hub_cache()) in msg
    assert "hyenadna download LongSafari/hyenadna-tiny-1k-seqlen-hf" in msg


def cache_snapshot() -> dict[str, bytes | str]:
    """Every file and link in the Hub cache (locks and tags aside), with its content or target."""
    out = {}
    for p in sorted(hub_cache().rglob("*")):
        rel = str(p.relative_to(hub_cache()))
        if p.is_symlink():
            out[rel] = os.readlink(p)
        elif p.is_file() and ".locks" not in rel and p.name != "CACHEDIR.TAG":
            out[rel] = p.read_bytes()
    return out


@pytest.mark.parametrize("fault", ["truncate", "wrong_size", "corrupt"])
def test_broken_download_keeps_the_good_copy(hub, tmp_path, fault):
    hub.add_commit(HF_REPO, hf_files())
    good = resolve_weights("hyenadna-tiny-1k-seqlen")
    before = cache_snapshot()
    new = other_weights(tmp_path, seed=2)
    hub.add_commit(HF_REPO, new)  # a new commit whose weights break in transit
    hub.faults["model.safetensors"] = fault
    with pytest.raises(HubDownloadError) as e:
        resolve_weights("hyenadna-tiny-1k-seqlen")
    msg = str(e.value)
    assert "model.safetensors" in msg and "as it was" in msg
    if fault == "corrupt":
        assert "sha256" in msg
    else:
        assert HF_REPO in msg
    after = cache_snapshot()
    # the good copy and the branch ref are untouched; nothing added holds the new weights, except what was set aside
    assert {k: v for k, v in after.items() if k in before} == before
    added = set(after) - set(before)
    assert not [k for k in added if isinstance(after[k], bytes) and len(after[k]) > 10_000 and "rejected" not in k]
    rejected = [k for k in added if k.endswith(".rejected")]
    assert len(rejected) == (1 if fault == "corrupt" else 0)
    assert not [k for k in after if "incomplete" in k]
    # and the good copy still loads, offline
    assert resolve_weights("hyenadna-tiny-1k-seqlen", hub=HubOptions(local_files_only=True)) == good
    assert_reproduces_tiny_fixture(good)


# -- datasets: the NT suite -------------------------------------------------------------------------------------------

NT_REPO = "InstaDeepAI/nucleotide_transformer_downstream_tasks"


def fake_nt_dataset(n_train: int = 24, n_test: int = 12) -> dict[str, bytes]:
    """All 18 task folders in the real layout: every folder has train/test.fna (headers ``name|label``); every
    second one also has the 2026 parquet files (with a ``task`` column). Labels follow a planted motif."""
    from hyenadna.benchmark.suites import NT_TASKS

    rng = np.random.default_rng(0)
    files = {}
    for i, task in enumerate(NT_TASKS):
        classes = 3 if task in ("splice_sites_all", "enhancers_types") else 2
        for split, n in (("train", n_train), ("test", n_test)):
            labels = np.arange(n) % classes
            seqs = []
            for label in labels:
                s = "".join(rng.choice(list("ACGT"), 60))
                seqs.append(s[:20] + ["AAAAAAAA", "CGCGCGCG", "TATATATA"][label] + s[28:])
            names = [f"{task}_{split}_{j}" for j in range(n)]
            fna = "".join(f">{nm}|{lab}\n{s}\n" for nm, lab, s in zip(names, labels, seqs, strict=True))
            files[f"{task}/{split}.fna"] = fna.encode()
            if i % 2 == 0:
                df = pd.DataFrame({"sequence": seqs, "name": names, "label": labels, "task": task})
                buf = io.BytesIO()
                df.to_parquet(buf, index=False)
                files[f"{task}/{split}.parquet"] = buf.getvalue()
    files["README.md"] = b"fake NT downstream tasks for tests\n"
    return files


def test_nt_suite_end_to_end_through_the_cli(hub, tmp_path, monkeypatch, capsys):
    from hyenadna.benchmark.suites import NT_TASKS

    hub.add_commit(NT_REPO, fake_nt_dataset(), repo_type="dataset")
    out = tmp_path / "nt"
    rc = main(["benchmark", "--suite", "nt", "--modes", "kmer", "probe", "--seeds", "0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = (out / "results.md").read_text()
    rows = [line.split("|")[1].strip() for line in report.splitlines() if line.startswith("| ")]
    assert rows[1 : 1 + len(NT_TASKS)] == list(NT_TASKS)  # the model card's rows, in its order
    header = report.splitlines()[2]
    for title in (
        "NT fine-tuned (published)",
        "GPT (published)",
        "HyenaDNA fine-tuned (published)",
        "HyenaDNA not pretrained (published)",
        "HyenaDNA probing, Helical (published)",
    ):
        assert title in header
    h3 = next(line for line in report.splitlines() if line.startswith("| H3 |"))
    assert "| MCC |" in h3 and "81.7" in h3 and "72.1" in h3  # HyenaDNA fine-tuned / Helical probing, published
    summary = json.loads((out / "results.json").read_text())
    assert summary["tasks"]["promoter_all"]["metric"] == "f1"
    probe_mcc = [t["modes"]["probe"]["metrics"]["mcc"]["mean"] for t in summary["tasks"].values()]
    assert np.mean(probe_mcc) > 0.5  # the planted motif is found: the labels were read right
    assert (out / "results.png").is_file()

    # both file formats were read: parquet where the revision has it, FASTA elsewhere
    asked = {path.rsplit("/", 1)[-1] for _, path in hub.requests}
    assert {"train.parquet", "train.fna"} <= asked

    # the same suite again with the server stopped, offline: from the cache, no socket
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["benchmark", "--suite", "nt", "--tasks", "H3", "--modes", "kmer", "--out", str(tmp_path / "again")])
    assert rc == 0


def test_download_command_prefetches_for_offline_use(hub, capsys, monkeypatch, connections):
    hub.add_commit(HF_REPO, hf_files())
    hub.add_commit(NT_REPO, fake_nt_dataset(8, 4), repo_type="dataset")
    assert main(["download", "hyenadna-tiny-1k-seqlen", "--dataset", "nt"]) == 0
    printed = capsys.readouterr().out
    assert "models--LongSafari--hyenadna-tiny-1k-seqlen-hf/snapshots/" in printed
    assert "nt: 18 tasks in " in printed
    hub.stop()
    connections.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["info", "hyenadna-tiny-1k-seqlen"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["d_model"] == 128
    assert main(["info", "hyenadna-small-32k-seqlen"]) == 1
    assert "hyenadna download LongSafari/hyenadna-small-32k-seqlen-hf" in capsys.readouterr().err
    assert connections == []
    # a bundled model needs no download (it asked the Hub for a repository that does not exist)
    assert main(["download", "hyenadna-tiny-1k-d256-grch37"]) == 0
    assert "hyenadna-tiny-1k-d256-grch37: bundled with hyenadna (" in capsys.readouterr().out
    assert connections == []


def test_a_cache_folder_that_cannot_be_used_is_named_not_blamed_on_the_network(hub, monkeypatch, capsys, tmp_path):
    """HF_HOME under a file said the endpoint "cannot be reached" (and a failed download said to retry)."""
    hub.add_commit(HF_REPO, hf_files())
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "a_file" / "hub"))
    assert main(["download", "hyenadna-tiny-1k-seqlen"]) == 1
    err = capsys.readouterr().err
    assert "the Hugging Face folder on this machine cannot be used (NotADirectoryError" in err
    assert "set HF_HOME (or HF_HUB_CACHE) to a folder this user can write" in err
    assert "cannot be reached" not in err and "retry" not in err


def test_a_suite_not_cached_offline_names_the_download_that_fetches_it(monkeypatch, capsys, tmp_path):
    """It said `hyenadna download --dataset InstaDeepAI/...`, which --dataset refuses, and offered --model."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["benchmark", "--suite", "nt", "--modes", "kmer", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "prefetch it with `hyenadna download --dataset nt` into the same cache" in err
    assert "or pass a folder of task folders (--tasks-dir)" in err and "--model" not in err


def test_benchmark_takes_task_folders_directly(tmp_path):
    from tests.conftest import SHARED

    rc = main(
        [
            "benchmark",
            "--tasks",
            str(SHARED / "benchmarks" / "promoter_all"),
            "--modes",
            "kmer",
            "--seeds",
            "0",
            "--max-train",
            "200",
            "--max-test",
            "100",
            "--out",
            str(tmp_path / "one"),
        ]
    )
    assert rc == 0
    assert "| promoter_all |" in (tmp_path / "one" / "results.md").read_text()


# -- the guard itself --------------------------------------------------------------------------------------------------


def test_sockets_are_refused_except_to_loopback(hub):
    with pytest.raises(AssertionError, match=r"only 127\.0\.0\.1"):
        socket.create_connection(("203.0.113.1", 443), timeout=0.1)
    with pytest.raises(AssertionError, match=r"only 127\.0\.0\.1"):
        socket.socket().connect(("huggingface.co", 443))
    port = int(hub.url.rsplit(":", 1)[1])
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
