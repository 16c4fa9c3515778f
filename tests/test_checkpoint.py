"""Loading every layout, round trips between layouts, and one clear error per kind of bad checkpoint."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hyenadna import CheckpointError, HyenaConfig, HyenaDNALMHeadModel, convert_checkpoint, load_model
from hyenadna.models.checkpoint import LAYOUTS, read_state_dict
from tests.conftest import FIXTURES, load_io

TINY_LAYOUTS = ["tiny", "tiny/lightning_weights.ckpt", "tiny_ckpt_layer", "tiny_hf"]


def outputs(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("source", TINY_LAYOUTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_between_layouts(source, layout, tmp_path):
    ids = load_io("tiny")["batch4.input_ids"]
    original = load_model(FIXTURES / source)
    convert_checkpoint(FIXTURES / source, tmp_path / "out", layout=layout)
    reloaded = load_model(tmp_path / "out")
    assert torch.equal(outputs(original, ids), outputs(reloaded, ids))
    assert reloaded.config == original.config
    # and back again through our layout
    reloaded.save_pretrained(tmp_path / "again")
    assert torch.equal(outputs(load_model(tmp_path / "again"), ids), outputs(original, ids))


def test_geometric_filter_bands_round_trip_in_our_layout_only(tmp_path):
    """filter_geometric_bands: its features follow the published ones (which stay bit for bit as they were), our
    layout saves and reloads it exactly, and the layouts of the reference code, which cannot build it, refuse it."""
    import math

    from hyenadna.modules.hyena_filter import PositionalEmbedding

    z0, z = PositionalEmbedding(5, 130).z, PositionalEmbedding(5, 130, geometric_bands=3).z
    assert z.shape == (1, 130, 11) and torch.equal(z[..., :5], z0)
    x = torch.arange(130.0, dtype=torch.float64)
    for band, cycles in enumerate([1.0, math.sqrt(65), 65.0]):  # geometric from 1 cycle to Nyquist (130 / 2)
        angle = 2 * math.pi * cycles * x / 130
        assert torch.allclose(z[0, :, 5 + band].double(), torch.cos(angle), atol=1e-6)
        assert torch.allclose(z[0, :, 8 + band].double(), -torch.sin(angle), atol=1e-6)
    with pytest.raises(ValueError, match="filter_geometric_bands=-1"):
        HyenaConfig(filter_geometric_bands=-1)

    model = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=1, d_inner=32, l_max=130, filter_geometric_bands=3))
    model.eval().save_pretrained(tmp_path / "ours")
    reloaded = load_model(tmp_path / "ours")
    ids = torch.randint(7, 11, (2, 100))
    assert reloaded.config == model.config and torch.equal(outputs(reloaded, ids), outputs(model, ids))
    for layout in ("hf", "lightning"):
        with pytest.raises(ValueError, match="cannot hold filter_geometric_bands=3"):
            model.save_pretrained(tmp_path / layout, layout=layout)
        assert not (tmp_path / layout / "config.json").exists()


def test_geometric_band_features_are_rebuilt_not_stored(tmp_path):
    """A model with geometric bands rebuilds its positional features from the config, so its file holds none of
    them; weights saved while they were stored still load (the stored copy checked against the rebuilt one), and a
    stored copy that differs is an error naming the key."""
    model = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=2, d_inner=32, l_max=130, filter_geometric_bands=3))
    model.eval().save_pretrained(tmp_path / "new")
    stored = load_file(tmp_path / "new" / "model.safetensors")
    assert not [k for k in stored if k.endswith("pos_emb.z")] and any(k.endswith("pos_emb.t") for k in stored)
    z_keys = [k for k, _ in model.named_buffers() if k.endswith("pos_emb.z")]
    assert len(z_keys) == 2

    (tmp_path / "old").mkdir()
    shutil.copy(tmp_path / "new" / "config.json", tmp_path / "old")
    buffers = dict(model.named_buffers())
    save_file({**stored, **{k: buffers[k] for k in z_keys}}, tmp_path / "old" / "model.safetensors")
    ids = torch.randint(7, 11, (2, 100))
    assert torch.equal(outputs(load_model(tmp_path / "old"), ids), outputs(model, ids))

    wrong = {**stored, **{k: buffers[k] for k in z_keys}}
    wrong[z_keys[1]] = wrong[z_keys[1]] + 1e-3
    save_file(wrong, tmp_path / "old" / "model.safetensors")
    with pytest.raises(CheckpointError, match=f"key '{z_keys[1]}' differs from the buffer the config describes"):
        load_model(tmp_path / "old")
    # the published features stay in the file of a model without the bands, as in the released checkpoints
    plain = HyenaDNALMHeadModel(HyenaConfig(d_model=16, n_layer=1, d_inner=32, l_max=130))
    plain.save_pretrained(tmp_path / "plain")
    assert any(k.endswith("pos_emb.z") for k in load_file(tmp_path / "plain" / "model.safetensors"))


def test_detected_layouts():
    assert read_state_dict(FIXTURES / "tiny_hf" / "model.safetensors")[1] == "hf"
    assert read_state_dict(FIXTURES / "tiny" / "lightning_weights.ckpt")[1] == "lightning"
    assert read_state_dict(FIXTURES / "tiny" / "model.safetensors")[1] == "hyenadna"


def test_our_layout_files(tmp_path):
    load_model(FIXTURES / "tiny").save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    keys = load_file(tmp_path / "model.safetensors").keys()
    assert not any(k.endswith((".3.freq", ".5.freq")) for k in keys)  # the shared freq is stored once
    assert "lm_head.weight" not in keys  # tied
    assert json.loads((tmp_path / "config.json").read_text())["format"] == "hyenadna"


def test_hf_layout_matches_published_key_set(tmp_path):
    load_model(FIXTURES / "tiny").save_pretrained(tmp_path, layout="hf")
    assert set(load_file(tmp_path / "model.safetensors")) == set(load_file(FIXTURES / "tiny_hf" / "model.safetensors"))


def test_untied_head_survives(tmp_path):
    model = load_model(FIXTURES / "tiny_hf")
    state = load_file(FIXTURES / "tiny_hf" / "model.safetensors")
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    (tmp_path / "m").mkdir()
    save_file(state, tmp_path / "m" / "model.safetensors")
    shutil.copy(FIXTURES / "tiny_hf" / "config.json", tmp_path / "m")
    untied = load_model(tmp_path / "m")
    assert not untied.config.tie_word_embeddings
    ids = torch.tensor([[7, 8, 9]])
    assert not torch.allclose(outputs(untied, ids), outputs(model, ids))
    untied.save_pretrained(tmp_path / "ours")
    assert torch.equal(outputs(load_model(tmp_path / "ours"), ids), outputs(untied, ids))


# ---- bad checkpoints: one clear error each, naming the file and the key -------------------------------------


def copy_fixture(tmp_path: Path, name: str = "tiny_hf") -> Path:
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def edit_safetensors(path: Path, fn) -> None:
    state = dict(load_file(path))
    fn(state)
    save_file(state, path)


def test_missing_key(tmp_path):
    d = copy_fixture(tmp_path)
    key = "hyena.backbone.layers.1.mlp.fc2.bias"
    edit_safetensors(d / "model.safetensors", lambda s: s.pop(key))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*missing key 'backbone\.layers\.1\.mlp\.fc2\.bias'"):
        load_model(d)


def test_unexpected_key(tmp_path):
    d = copy_fixture(tmp_path)
    edit_safetensors(d / "model.safetensors", lambda s: s.__setitem__("hyena.backbone.extra.weight", torch.ones(2)))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*unexpected key 'backbone\.extra\.weight'"):
        load_model(d)


def test_misshaped_key(tmp_path):
    d = copy_fixture(tmp_path)
    key = "hyena.backbone.layers.0.mixer.in_proj.bias"
    edit_safetensors(d / "model.safetensors", lambda s: s.__setitem__(key, torch.zeros(7)))
    with pytest.raises(CheckpointError, match=r"'backbone\.layers\.0\.mixer\.in_proj\.bias' has shape \[7\]"):
        load_model(d)


def test_config_that_does_not_match_weights(tmp_path):
    d = copy_fixture(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["d_model"] = 256
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config\.json \(d_model=256.*does not match the weights"):
        load_model(d)
    cfg["d_model"], cfg["n_layer"] = 128, 3
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"missing key 'backbone\.layers\.2\."):
        load_model(d)


def test_truncated_safetensors(tmp_path):
    d = copy_fixture(tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated or corrupted"):
        load_model(d)


def test_corrupted_ckpt(tmp_path):
    d = copy_fixture(tmp_path, "tiny_ckpt_layer")
    data = (d / "lightning_weights.ckpt").read_bytes()
    (d / "lightning_weights.ckpt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"lightning_weights\.ckpt: truncated or corrupted"):
        load_model(d)
    (d / "lightning_weights.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"lightning_weights\.ckpt"):
        load_model(d)


def test_missing_or_invalid_config(tmp_path):
    d = copy_fixture(tmp_path)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        load_model(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read config"):
        load_model(d)
    (d / "config.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not a HyenaDNA config"):
        load_model(d)


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(">x\nACGT\n")
    with pytest.raises(CheckpointError, match=r"g\.fa: not a checkpoint; give a model folder, or a weights file"):
        load_model(fasta)


def test_a_fine_tuned_model_given_as_a_pretrained_one_names_its_backbone(tmp_path):
    d = tmp_path / "classifier"
    shutil.copytree(FIXTURES / "tiny", d / "backbone")
    (d / "finetune.json").write_text("{}")
    (d / "head.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"is a fine-tuned model \(finetune\.json\).* is {d / 'backbone'}$"):
        load_model(d)
    assert load_model(d / "backbone").config == load_model(FIXTURES / "tiny").config


def test_differing_freq_aliases_are_an_error(tmp_path):
    d = copy_fixture(tmp_path, "tiny")
    key = "backbone.layers.0.mixer.filter_fn.implicit_filter.3.freq"
    edit_safetensors(d / "model.safetensors", lambda s: s.__setitem__(key, s[key] + 1))
    with pytest.raises(CheckpointError, match=r"implicit_filter\.3\.freq' differs"):
        load_model(d)


class Hyperparameters:  # stands in for the omegaconf objects of real hub checkpoints
    def __init__(self):
        self.lr = 6e-4


def test_pickled_objects_need_explicit_opt_in(tmp_path):
    d = copy_fixture(tmp_path, "tiny_ckpt_layer")
    ckpt = torch.load(d / "lightning_weights.ckpt", weights_only=True)
    ckpt["hyper_parameters"] = Hyperparameters()
    torch.save(ckpt, d / "lightning_weights.ckpt")
    with pytest.raises(CheckpointError, match="allow_unsafe_pickle=True"):
        load_model(d)
    with pytest.warns(UserWarning, match="fully unpickling"):
        model = load_model(d, allow_unsafe_pickle=True)
    ids = load_io("tiny")["single.input_ids"]
    assert torch.equal(outputs(model, ids), outputs(load_model(FIXTURES / "tiny"), ids))


def test_safe_load_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(FIXTURES / "tiny" / "lightning_weights.ckpt")


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves neither a partial file nor a temp file behind."""
    import hyenadna.models.checkpoint as ck

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        HyenaDNALMHeadModel(HyenaConfig(d_model=8, n_layer=1, d_inner=16, l_max=16)).save_pretrained(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_original_config_layer_shift_is_honoured(tmp_path):
    """The reference reads the window shift from the original config's ``layer`` section (0.71 max abs at 0.0)."""
    dst = tmp_path / "shift0"
    shutil.copytree(FIXTURES / "tiny", dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["layer"]["shift"] = 0.0
    (dst / "config.json").write_text(json.dumps(cfg))
    model = load_model(dst)
    assert model.config.modulation_shift == 0.0
    assert model.backbone.layers[0].mixer.filter_fn.modulation.shift == 0.0
    again = load_model(model.save_pretrained(tmp_path / "again", layout="lightning"))
    assert again.config.modulation_shift == 0.0


def test_checkpoint_module_does_not_import_the_model():
    """checkpoint.py reads and writes (config, state dict); hyena_dna.py builds the model: no import cycle."""
    import ast

    import hyenadna.models.checkpoint as ckpt

    tree = ast.parse(Path(ckpt.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m and "hyena_dna" in m]
