"""The one data path (hyenadna.data.pipeline): framing, fitting to the context, windows with overlap, strand alignment,
pooling once, and layer selection. Each defect the one-path review found has a test here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyenadna import HyenaDNA, HyenaDNAConfig, load_model
from hyenadna.data.pipeline import ContextPolicy, plan_chunks, window_spans
from hyenadna.tokenizer import CharacterTokenizer, reverse_complement_ids
from tests.conftest import FIXTURES

rng = np.random.default_rng(7)


def random_dna(n: int) -> str:
    return "".join(rng.choice(list("ACGT"), n))


def revcomp(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


@pytest.fixture(scope="module")
def tiny() -> HyenaDNA:
    return HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "tiny", batch_size=4, progress=False))


def test_window_spans_cover_each_position_once():
    assert window_spans(10, ContextPolicy(10)) == [(0, 10, 0)]
    assert window_spans(25, ContextPolicy(10)) == [(0, 10, 0), (10, 20, 0), (15, 25, 5)]
    assert window_spans(25, ContextPolicy(10, overlap=3)) == [(0, 10, 0), (7, 17, 3), (14, 24, 3), (15, 25, 9)]
    for n in range(1, 60):
        for overlap in (0, 1, 4, 9):
            spans = window_spans(n, ContextPolicy(10, overlap=overlap))
            out = np.concatenate([np.arange(s + f, e) for s, e, f in spans])
            assert np.array_equal(out, np.arange(n))
            assert all(e - s <= 10 for s, e, _ in spans)
            assert all(f >= overlap for _, _, f in spans[1:])  # every later window has its left context
    with pytest.raises(ValueError, match="overlap"):
        ContextPolicy(10, overlap=10)


@pytest.mark.parametrize("framing", ["none", "sep", "cls_sep"])
def test_base_index_maps_rows_to_forward_bases_on_both_strands(framing):
    tok = CharacterTokenizer(framing)
    bases = tok.encode_bases("ACGTTGCAAC")
    chunks = plan_chunks([bases], tok, ContextPolicy(4, overlap=1), strands=2)
    for strand in (0, 1):
        mine = [c for c in chunks if c.strand == strand]
        idx = np.concatenate([c.base_index() for c in mine])
        rows = np.concatenate([c.ids[c.first_out :] for c in mine])
        real = idx >= 0
        assert sorted(idx[real]) == list(range(10))  # every base exactly once
        strand_bases = bases if strand == 0 else reverse_complement_ids(bases)
        # the token in each row is the base at that forward index (complemented on the reverse strand)
        want = bases[idx[real]] if strand == 0 else reverse_complement_ids(bases)[len(bases) - 1 - idx[real]]
        assert np.array_equal(rows[real], want)
        assert len(strand_bases) == 10


@pytest.mark.parametrize("framing", ["none", "sep", "cls_sep"])
@pytest.mark.parametrize("length", [50, 150])  # fits in one window / needs three
def test_rc_average_is_strand_symmetric_under_every_framing(tiny, framing, length):
    """A sequence's RC-averaged row i equals its reverse complement's row L-1-i (was off by up to 1.45 with "sep")."""
    model = HyenaDNA(HyenaDNAConfig(framing=framing, max_length=64, progress=False), model=tiny.model)
    seq = random_dna(length)
    a = model.get_embeddings([seq], rc_average=True)[0]
    b = model.get_embeddings([revcomp(seq)], rc_average=True)[0]
    assert a.shape == (length, 128)
    assert np.abs(a - b[::-1]).max() < 1e-5
    fwd, rev = model.get_embeddings([seq])[0], model.get_embeddings([revcomp(seq)])[0]
    assert np.abs(a - (fwd + rev[::-1]) / 2).max() < 1e-5


@pytest.mark.parametrize("framing", ["none", "cls_sep"])
def test_truncate_keeps_the_same_bases_on_both_strands(tiny, framing):
    """Truncation cuts the bases before framing and before reverse-complementing, so both strands average the same
    bases (the RC strand used to keep the other end of the sequence)."""
    model = HyenaDNA(HyenaDNAConfig(framing=framing, max_length=64, long_sequences="truncate"), model=tiny.model)
    seq = random_dna(200)
    kept = 64 - (2 if framing == "cls_sep" else 0)
    both = model.get_embeddings([seq], rc_average=True)[0]
    head = seq[:kept]
    want = (model.get_embeddings([head])[0] + model.get_embeddings([revcomp(head)])[0][::-1]) / 2
    assert both.shape == (kept, 128)
    assert np.abs(both - want).max() < 1e-5


def test_overlap_gives_each_window_left_context(tiny):
    seq = random_dna(3000)
    emb = tiny.get_embeddings([seq], overlap=200)
    spans = [(0, 1026, 0), (826, 1852, 200), (1652, 2678, 200), (1974, 3000, 704)]
    assert window_spans(3000, ContextPolicy(1026, overlap=200)) == spans
    for start, end, first_out in spans:
        alone = tiny.get_embeddings([seq[start:end]])[0]
        assert np.abs(emb[0, start + first_out : end] - alone[first_out:]).max() < 1e-5
    pooled = tiny.get_embeddings([seq], overlap=200, pooling="mean")[0]
    assert np.allclose(pooled, emb[0].mean(0), atol=1e-5)  # each base once in the mean, left context not again


def test_a_last_window_of_one_base_weighs_as_one_base(tiny):
    seq = random_dna(1027)
    per_base = tiny.get_embeddings([seq])[0]
    for how, want in (("mean", per_base.mean(0)), ("max", per_base.max(0)), ("last", per_base[-1])):
        assert np.allclose(tiny.get_embeddings([seq], pooling=how)[0], want, atol=1e-5), how


def test_pooling_happens_on_the_device_and_copies_only_pooled_rows(tiny, monkeypatch):
    """Pooled embeddings never bring per-token states to the host: only (N, D) crosses."""
    copied = []
    real = torch.Tensor.cpu

    def spy(self, *a, **k):
        copied.append(tuple(self.shape))
        return real(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "cpu", spy)
    tiny.get_embeddings([random_dna(300), random_dna(90)], pooling="mean")
    assert copied == [(2, 128)]


# -- layers -----------------------------------------------------------------------------------------------------------


def test_embeddings_from_any_layer():
    model = HyenaDNA(HyenaDNAConfig(model_path=FIXTURES / "deep_long", progress=False))  # 3 blocks
    backbone = model.model.backbone
    seqs = [random_dna(120), random_dna(45)]
    last = model.get_embeddings(seqs, pooling="mean")
    layers = model.get_embeddings(seqs, pooling="mean", layer=[0, 1, 2, 3])
    assert len(layers) == 4 and np.array_equal(layers[3], last)
    assert np.array_equal(model.get_embeddings(seqs, pooling="mean", layer=3), last)
    assert np.allclose(model.get_embeddings(seqs, pooling="mean", layer=-2), layers[2])

    ids = torch.from_numpy(model.process_data(seqs[:1]).ids[0]).long()[None]
    with torch.no_grad():
        x = backbone.embeddings(ids)
        assert np.allclose(layers[0][0], x[0].mean(0).numpy(), atol=1e-6)  # layer 0: the token embedding
        x, residual = backbone.layers[0](x, None)
        assert np.allclose(layers[1][0], (x + residual)[0].mean(0).numpy(), atol=1e-5)  # the residual stream
        out = model.model(ids, output_hidden_states=True)
    assert len(out.all_hidden_states) == 4
    assert torch.equal(out.all_hidden_states[-1], out.hidden_states)
    per_token = model.get_embeddings(seqs[:1], layer=[1, 2])
    for k in (1, 2):
        assert np.abs(per_token[k - 1][0] - out.all_hidden_states[k][0].numpy()).max() < 1e-5

    with pytest.raises(ValueError, match="layer 4: this model has layers 0"):
        model.get_embeddings(seqs, layer=4)


def test_low_memory_path_gives_the_same_layers():
    model = load_model(FIXTURES / "deep_long")
    ids = torch.randint(7, 11, (2, 700))
    with torch.no_grad():
        full = model.backbone(ids, layers=[0, 2, -1], low_memory=False)
        low = model.backbone(ids, layers=[0, 2, -1], low_memory=True)
        only = model.backbone(ids, layers=[1], low_memory=True)[0]
        stack_only = model.backbone(ids, layers=[1], low_memory=False)[0]
    for a, b in zip(full, low, strict=True):
        assert (a - b).abs().max() < 1e-4
    assert (only - stack_only).abs().max() < 1e-4


def test_embedding_cache_key_covers_every_setting(tmp_path, tiny):
    """Cached probe embeddings are keyed by every setting that changes them (precision, context and long-sequence
    mode used to collide)."""
    from hyenadna.probe import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    seqs = [random_dna(3000), random_dna(40)]
    first = cache.get(tiny, seqs, "task.train")
    assert np.array_equal(cache.get(tiny, seqs, "task.train"), first)
    for settings in ({"precision": "bf16"}, {"max_length": 512}, {"long_sequences": "truncate"}, {"overlap": 100}):
        other = HyenaDNA(HyenaDNAConfig(progress=False, **settings), model=tiny.model)
        got = cache.get(other, seqs, "task.train")
        assert np.array_equal(got, other.get_embeddings(seqs, pooling="mean")), settings
        assert not np.array_equal(got, first), settings
    assert np.array_equal(cache.get(tiny, seqs, "task.train", layer=1), tiny.get_embeddings(seqs, "mean", layer=1))


def test_ragged_per_base_output_equals_the_padded_rows(tiny):
    seqs = [random_dna(n) for n in (40, 3000, 7)]  # the middle one runs in windows
    data = tiny.process_data(seqs, names=["a", "b", "c"])
    for rc in (False, True):
        padded = tiny.get_embeddings(data, pooling=None, rc_average=rc, layer=[1, -1])
        ragged = tiny.get_embeddings(data, pooling=None, rc_average=rc, layer=[1, -1], ragged=True)
        for p, r in zip(padded, ragged, strict=True):
            assert [x.shape for x in r] == [(n, p.shape[-1]) for n in (40, 3000, 7)]
            for i, n in enumerate((40, 3000, 7)):
                assert np.array_equal(r[i], p[i, :n])
    with pytest.raises(ValueError, match="ragged=True gives per-base arrays: it needs pooling=None"):
        tiny.get_embeddings(data, pooling="mean", ragged=True)


def test_per_base_output_filled_on_disk_equals_the_one_in_memory(tiny, tmp_path, monkeypatch):
    """``allocate`` hands over the arrays to fill (memory-mapped files here), one a layer in order; they hold what
    the in-memory path returns, and no memory check refuses them, as they are on disk."""
    from hyenadna.data import pipeline

    data = tiny.process_data([random_dna(n) for n in (40, 3000, 7)], names=["a", "b", "c"])
    for rc in (False, True):
        want = tiny.get_embeddings(data, pooling=None, rc_average=rc, layer=[1, -1])
        paths = iter([tmp_path / f"{rc}_1.npy", tmp_path / f"{rc}_last.npy"])
        shapes = []

        def on_disk(shape, paths=paths, shapes=shapes):
            shapes.append(shape)
            return np.lib.format.open_memmap(next(paths), mode="w+", dtype=np.float32, shape=shape)

        monkeypatch.setattr(pipeline, "available_bytes", lambda device="cpu": 1)  # in memory, refused
        with pytest.raises(MemoryError):
            tiny.get_embeddings(data, pooling=None, rc_average=rc, layer=[1, -1])
        got = tiny.get_embeddings(data, pooling=None, rc_average=rc, layer=[1, -1], allocate=on_disk)
        monkeypatch.undo()
        assert shapes == [(3, 3000, tiny.embedding_dim)] * 2
        for name, w, g in zip(("1", "last"), want, got, strict=True):
            assert isinstance(g, np.memmap) and np.array_equal(g, w)
            g.flush()
            assert np.array_equal(np.load(tmp_path / f"{rc}_{name}.npy", mmap_mode="r"), w)
    with pytest.raises(ValueError, match=r"allocate gives the per-base .* it needs pooling=None, ragged=False"):
        tiny.get_embeddings(data, pooling=None, ragged=True, allocate=np.zeros)
    with pytest.raises(ValueError, match=r"allocate gave a float64 array of shape \(3, 3000, \d+\); float32"):
        tiny.get_embeddings(data, pooling=None, allocate=np.zeros)


def test_per_base_output_that_cannot_fit_is_refused_before_any_work(tiny, monkeypatch):
    from hyenadna.data import pipeline

    data = tiny.process_data([random_dna(2000), random_dna(10), random_dna(10)], names=["long", "s1", "s2"])
    dim = tiny.embedding_dim
    padded, ragged = 4 * dim * 3 * 2000, 4 * dim * 2020
    monkeypatch.setattr(pipeline, "available_bytes", lambda device="cpu": (padded + ragged) // 2)
    monkeypatch.setattr(tiny.model.backbone, "forward", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(MemoryError) as e:
        tiny.get_embeddings(data, pooling=None)
    assert str(e.value) == (
        f"per-base embeddings of 3 sequences (2,020 bases) take {padded / 1e9:.1f} GB as one array padded to the "
        f"longest (the longest, 'long', has 2,000), and {(padded + ragged) // 2 / 1e9:.1f} GB is available: pass "
        f"ragged=True for one array a sequence ({ragged / 1e9:.1f} GB), pool them (pooling='mean'), fill arrays on "
        "disk (allocate=, with numpy's open_memmap), or embed fewer or shorter sequences at a time"
    )
    monkeypatch.setattr(pipeline, "available_bytes", lambda device="cpu": ragged - 1)
    with pytest.raises(MemoryError, match=r"3 sequences \(2,020 bases\) take 0.0 GB \(the longest, 'long'"):
        tiny.get_embeddings(data, pooling=None, ragged=True)
    with pytest.raises(MemoryError, match=r"of 'long' \(2,000 bases\) \(2 layers\) take .* embed it in shorter"):
        tiny.get_embeddings(tiny.process_data([random_dna(2000)], names=["long"]), pooling=None, layer=[0, 1])


def test_no_sequences_give_empty_outputs(tiny):
    dim = tiny.embedding_dim
    for pooling in ("mean", "max", "last"):  # the pooled view named its width as -1, which 0 rows cannot infer
        assert tiny.get_embeddings([], pooling=pooling).shape == (0, dim)
        assert tiny.get_embeddings([], pooling=pooling, rc_average=True).shape == (0, dim)
    assert tiny.get_embeddings([], pooling=None).shape == (0, 0, dim)
    assert tiny.get_embeddings([], pooling=None, ragged=True) == []
    assert [e.shape for e in tiny.get_embeddings([], pooling="mean", layer=[0, -1])] == [(0, dim), (0, dim)]


def test_errors_name_a_sequence_once_and_need_a_layer(tiny):
    from hyenadna.tokenizer import InvalidCharacterError

    with pytest.raises(ValueError, match=r"^sequence 0 has 5000 tokens, more than the context"):
        tiny.get_embeddings(["A" * 5000], long_sequences="error")  # its default name is its index: not "0 (0)"
    with pytest.raises(ValueError, match=r"^sequence 1 \(b\) is empty"):
        tiny.process_data(["ACGT", ""], names=["a", "b"])
    with pytest.raises(InvalidCharacterError, match=r"^sequence 1, position 3: invalid character 'X'"):
        tiny.process_data(["ACGT", "ACXT"])
    with pytest.raises(ValueError, match=r"^layer=\[\]: name at least one layer, 0 \(embeddings\) to 2"):
        tiny.get_embeddings(["ACGT"], layer=[])  # was max()'s "arg is an empty sequence"


def test_on_batch_counts_each_input_base_once(tiny):
    data = tiny.process_data([random_dna(6000), random_dna(40)])  # windows in two batches of 4, and a short one
    for rc in (False, True):
        seen = []
        tiny.get_embeddings(data, pooling="mean", rc_average=rc, on_batch=seen.append)
        assert sum(seen) == 6040 and len(seen) > 1
