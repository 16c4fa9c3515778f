"""Weights split into safetensors shards with a model.safetensors.index.json, as Hugging Face splits large models:
written, read back exactly, replaced cleanly, and refused with a clear error when the set is not whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hyenadna import CheckpointError, load_model
from hyenadna.cli import main
from hyenadna.cli.convert import parse_size
from hyenadna.models.checkpoint import SHARD_INDEX, weight_files
from tests.conftest import FIXTURES, load_io

LIMIT = 400_000  # the tiny fixture's 1.8 MB of weights in six shards


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(load_io("tiny")["batch4.input_ids"]).logits


def shards_of(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("model-*.safetensors"))


@pytest.mark.parametrize("layout", ["hyenadna", "hf"])
def test_sharded_save_reads_back_exactly(layout, tmp_path):
    model = load_model(FIXTURES / "tiny")
    model.save_pretrained(tmp_path / "single", layout=layout)
    model.save_pretrained(tmp_path / "sharded", layout=layout, max_shard_bytes=LIMIT)
    folder = tmp_path / "sharded"
    names = shards_of(folder)
    assert len(names) > 3 and names[0] == f"model-00001-of-{len(names):05d}.safetensors"
    assert not (folder / "model.safetensors").exists()
    index = json.loads((folder / SHARD_INDEX).read_text())
    single = load_file(tmp_path / "single" / "model.safetensors")
    assert set(index["weight_map"]) == set(single) and sorted(set(index["weight_map"].values())) == names
    assert index["metadata"]["total_size"] == sum(v.numel() * 4 for v in single.values())
    for name in names:
        tensors = load_file(folder / name)
        size = sum(v.numel() * v.element_size() for v in tensors.values())
        assert size <= LIMIT or len(tensors) == 1  # a tensor larger than the limit gets a shard of its own
        for key, value in tensors.items():
            assert index["weight_map"][key] == name and torch.equal(value, single[key])
    assert weight_files(folder) == [folder / SHARD_INDEX] + [folder / n for n in names]
    reloaded = load_model(folder)
    assert reloaded.config == model.config
    assert torch.equal(logits(reloaded), logits(model))


def test_weights_under_the_limit_stay_one_file(tmp_path):
    load_model(FIXTURES / "tiny").save_pretrained(tmp_path, max_shard_bytes=10_000_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_saving_again_replaces_the_other_form(tmp_path):
    model = load_model(FIXTURES / "tiny")
    model.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path, max_shard_bytes=LIMIT // 2)
    many = shards_of(tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
    model.save_pretrained(tmp_path, max_shard_bytes=LIMIT)  # fewer shards: the earlier split's extra ones go
    assert len(shards_of(tmp_path)) < len(many)
    assert sorted(set(json.loads((tmp_path / SHARD_INDEX).read_text())["weight_map"].values())) == shards_of(tmp_path)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert torch.equal(logits(load_model(tmp_path)), logits(model))


def test_interrupted_sharded_save_leaves_no_index(tmp_path, monkeypatch):
    """The shards keep their names between saves, so an old index beside half-rewritten shards would describe a
    mixture of two models. The old index goes first: the folder then fails to load, loudly."""
    model = load_model(FIXTURES / "tiny")
    model.save_pretrained(tmp_path, max_shard_bytes=LIMIT)
    import hyenadna.utils.shards as shards

    calls = []

    def failing(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        save_file(tensors, path, metadata=metadata)

    monkeypatch.setattr(shards, "save_file", failing)
    with torch.no_grad():
        model.backbone.embeddings.word_embeddings.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path, max_shard_bytes=LIMIT)
    assert not (tmp_path / SHARD_INDEX).exists()
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(CheckpointError, match=rf"has the shards .* but not {SHARD_INDEX}"):
        load_model(tmp_path)


@pytest.fixture
def sharded(tmp_path) -> Path:
    load_model(FIXTURES / "tiny").save_pretrained(tmp_path / "m", max_shard_bytes=LIMIT)
    return tmp_path / "m"


def test_missing_shard(sharded):
    (sharded / "model-00002-of-00006.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"lists model-00002-of-00006\.safetensors, which is missing"):
        load_model(sharded)


def test_shard_from_another_save(sharded):
    path = sharded / "model-00003-of-00006.safetensors"
    original = dict(load_file(path))
    save_file({k: v for k, v in original.items() if k != sorted(original)[0]}, path)
    with pytest.raises(CheckpointError, match=r"model-00003-of-00006\.safetensors: lacks '.*', which the index"):
        load_model(sharded)
    save_file({**original, "backbone.extra": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match=r"holds 'backbone\.extra', which the index does not list"):
        load_model(sharded)


@pytest.mark.parametrize("target", ["../outside.safetensors", "/etc/passwd", "model-00001-of-00006.bin"])
def test_index_never_points_outside_its_folder(sharded, target):
    index = json.loads((sharded / SHARD_INDEX).read_text())
    key = next(iter(index["weight_map"]))
    index["weight_map"][key] = target
    (sharded / SHARD_INDEX).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=rf"key '{key}' points to '{target}', not a \.safetensors file beside"):
        load_model(sharded)


def test_unreadable_index(sharded):
    (sharded / SHARD_INDEX).write_text('{"metadata": {}}')
    with pytest.raises(CheckpointError, match=r"not a safetensors index with a weight_map"):
        load_model(sharded)


def test_convert_with_max_shard_size(tmp_path, capsys):
    dst = tmp_path / "hf"
    assert main(["convert", str(FIXTURES / "tiny"), str(dst), "--layout", "hf", "--max-shard-size", "0.4MB"]) == 0
    assert len(shards_of(dst)) == 6 and (dst / SHARD_INDEX).exists()
    assert torch.equal(logits(load_model(dst)), logits(load_model(FIXTURES / "tiny")))
    with pytest.raises(SystemExit):
        main(["convert", str(FIXTURES / "tiny"), str(tmp_path / "x"), "--max-shard-size", "lots"])
    assert "give a size such as 9.5MB" in capsys.readouterr().err


def test_parse_size():
    assert parse_size("9.5MB") == 9_500_000
    assert parse_size("10MiB") == 10 * 2**20
    assert parse_size("500000") == 500_000
    assert parse_size("2 kb") == 2000
    for bad in ("", "0", "MB", "5 potatoes", "-3MB"):
        with pytest.raises(Exception, match="give a size"):
            parse_size(bad)


def test_index_or_one_shard_named_loads_the_whole_model(sharded):
    whole = logits(load_model(sharded))
    assert torch.equal(logits(load_model(sharded / SHARD_INDEX)), whole)
    assert torch.equal(logits(load_model(sharded / "model-00002-of-00006.safetensors")), whole)


def test_sharded_folder_copied_whole_is_a_model(sharded, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in [*weight_files(sharded), sharded / "config.json"]:
        shutil.copy(f, copy)
    assert torch.equal(logits(load_model(copy)), logits(load_model(sharded)))
