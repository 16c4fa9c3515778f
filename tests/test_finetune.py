"""HyenaDNAFineTuningModel: the model card's fine-tuning API, its recipe, determinism and persistence."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel
from hyenadna.metrics import classification_metrics
from tests.conftest import FIXTURES


def gc_task(n: int, seed: int = 0, length: int = 100):
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        label = i % 2
        p = [0.3, 0.2, 0.2, 0.3] if label == 0 else [0.2, 0.3, 0.3, 0.2]
        seqs.append("".join(rng.choice(list("ACGT"), length, p=p)))
        labels.append(label)
    return seqs, labels


def make(**kw) -> HyenaDNAFineTuningModel:
    cfg = HyenaDNAConfig(model_path=FIXTURES / "tiny", batch_size=16, progress=False, **kw)
    return HyenaDNAFineTuningModel(cfg, "classification", 2)


def test_model_card_fine_tuning_usage_learns():
    train_sequences, train_labels = gc_task(200)
    ft = make()
    ft.train(ft.process_data(train_sequences), train_labels, epochs=4, lr=2e-3)
    test_sequences, test_labels = gc_task(80, seed=1)
    assert ft.evaluate(test_sequences, test_labels)["mcc"] > 0.6
    labels, probs = ft.predict(test_sequences)
    assert labels.shape == (80,) and probs.shape == (80, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_train_does_not_shadow_torch_train_eval():
    ft = make()
    ft.network.train()
    assert ft.network.training
    ft.network.eval()
    assert not ft.network.training


def test_deterministic_for_a_seed():
    """Two runs with one seed agree to the bit, and gradient checkpointing (memory for time) changes nothing."""
    seqs, labels = gc_task(64)
    a, b, c = make(), make(), make(gradient_checkpointing=True)
    for ft in (a, b, c):
        ft.train(seqs, labels, epochs=2, rc_augment=True, seed=5)
    assert np.array_equal(a.get_outputs(seqs[:8]), b.get_outputs(seqs[:8]))
    assert np.array_equal(a.get_outputs(seqs[:8]), c.get_outputs(seqs[:8]))
    assert a.history == b.history == c.history


def test_early_stopping_restores_the_best_epoch():
    seqs, labels = gc_task(96)
    val_seqs, val_labels = gc_task(40, seed=3)
    ft = make()
    history = ft.train(
        seqs, labels, validation_data=val_seqs, validation_labels=val_labels, epochs=8, patience=2, lr=3e-3, seed=1
    )
    scores = [h["val_mcc"] for h in history]
    best = int(np.argmax(scores))  # the first best epoch
    assert len(history) <= best + 1 + 2  # stopped within `patience` epochs of it (or ran out of epochs)
    assert ft.evaluate(val_seqs, val_labels)["mcc"] == pytest.approx(scores[best], abs=1e-12)  # its weights are back


def test_frozen_backbone_only_trains_the_head():
    seqs, labels = gc_task(48)
    ft = make()
    ft.freeze_backbone = True
    before = {k: v.clone() for k, v in ft.network.backbone.state_dict().items()}
    ft.train(seqs, labels, epochs=1)
    after = ft.network.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_rc_test_time_averaging_is_strand_symmetric():
    seqs, labels = gc_task(32)
    ft = make()
    ft.train(seqs, labels, epochs=1)
    from hyenadna.tokenizer import reverse_complement_ids

    rc = [ft.tokenizer.decode(reverse_complement_ids(ft.tokenizer.encode_bases(s))) for s in seqs[:4]]
    assert np.allclose(ft.get_outputs(seqs[:4], rc_average=True), ft.get_outputs(rc, rc_average=True), atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    seqs, labels = gc_task(32)
    ft = make()
    ft.label_names = ["at_rich", "gc_rich"]
    ft.train(seqs, labels, epochs=1)
    ft.save(tmp_path / "ft")
    again = HyenaDNAFineTuningModel.load(tmp_path / "ft")
    assert again.label_names == ["at_rich", "gc_rich"]
    assert np.array_equal(again.get_outputs(seqs[:6]), ft.get_outputs(seqs[:6]))


def test_regression_head():
    seqs, _ = gc_task(64)
    target = [s.count("G") + s.count("C") for s in seqs]
    target = (np.array(target) - np.mean(target)) / np.std(target)
    cfg = HyenaDNAConfig(model_path=FIXTURES / "tiny", batch_size=16, progress=False)
    ft = HyenaDNAFineTuningModel(cfg, "regression", 1)
    ft.train(seqs, target, epochs=2, lr=2e-3)
    assert ft.predict(seqs).shape == (64,)


def test_bad_labels_are_clear_errors():
    ft = make()
    with pytest.raises(ValueError, match=r"label 2 of sequence 1 is outside 0\.\.1"):
        ft.train(["ACGT", "ACGA"], [0, 2])
    with pytest.raises(ValueError, match="3 labels for 2 sequences"):
        ft.train(["ACGT", "ACGA"], [0, 1, 1])
    with pytest.raises(ValueError, match="head="):
        HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny"), "ranking", 2)
    for missing, shown in ((None, "None"), (np.nan, "nan"), (pd.NA, "<NA>")):
        with pytest.raises(ValueError, match=f"the label of sequence 1 is missing \\({shown}\\)"):
            ft.train(["ACGT", "ACGA", "ACGG"], np.array(["a", missing, "b"], dtype=object))
    with pytest.raises(ValueError, match=r"the label of sequence 2 is missing \(nan\)"):  # a float column with a gap
        ft.train(["ACGT", "ACGA", "ACGG"], [0.0, 1.0, np.nan])
    with pytest.raises(ValueError, match=r"one class a sequence; got an array of shape \(2, 2\) \(one-hot\? give its"):
        ft.train(["ACGT", "ACGA"], np.eye(2))
    # regression targets: numbers, finite, as many a sequence as the head has outputs (not numpy's or
    # scikit-learn's errors, the latter only after an epoch of training)
    regressor = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny"), "regression", 1)
    seqs = ["ACGT", "ACGA", "ACGG"]
    for labels, message in (
        ([1.0, np.nan, 2.0], "regression labels are finite numbers: sequence 1 has nan"),
        ([np.inf, 1.0, 2.0], "regression labels are finite numbers: sequence 0 has inf"),
        (["1.5", "a", "2"], "regression labels are numbers: sequence 1 has 'a'"),
        (np.ones((3, 2)), r"the labels have 2 value\(s\) a sequence, and the head 1"),
    ):
        with pytest.raises(ValueError, match=message):
            regressor.train(seqs, labels)
    # no sequences: our words, not scikit-learn's split or metric errors
    with pytest.raises(ValueError, match="no training sequences: train_data is empty"):
        ft.train([], [])
    with pytest.raises(ValueError, match="no sequences to evaluate: data is empty"):
        ft.evaluate([], [])
    assert ft.get_outputs([]).shape == (0, 2)
    # one class learns nothing; a class with no training row can never be predicted
    with pytest.raises(ValueError, match="every training label is class 0: a classifier needs training rows of at"):
        ft.train(["ACGT", "ACGA", "ACGG"], [0, 0, 0])
    three = HyenaDNAFineTuningModel(ft.config, "classification", 3, label_names=["a", "b", "c"])
    with pytest.warns(UserWarning, match="no training row has class c, so the model cannot learn to predict it"):
        three.train(*gc_task(16), epochs=1)


def test_inference_on_an_untrained_head_warns_once(tmp_path):
    seqs, labels = gc_task(64)
    ft = make()
    with pytest.warns(UserWarning, match="this classification head has not been trained: its outputs come from random"):
        ft.predict(seqs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ft.get_outputs(seqs)  # told once a model
        ft.train(seqs, labels, validation_data=seqs, validation_labels=labels, epochs=1)
        ft.predict(seqs)
        ft.save(tmp_path / "trained")
        HyenaDNAFineTuningModel.load(tmp_path / "trained").predict(seqs)
    untrained = make()
    untrained.save(tmp_path / "untrained")  # saved untrained, loaded untrained
    with pytest.warns(UserWarning, match="has not been trained"):
        HyenaDNAFineTuningModel.load(tmp_path / "untrained").evaluate(seqs, labels)


def test_load_takes_auto_device_and_run_options_but_not_what_the_save_fixes(tmp_path):
    """load(device="auto") crashed inside torch (`hyenadna predict --device auto` too), and nothing but the device
    and batch size could be chosen for a loaded model."""
    seqs, labels = gc_task(32)
    ft = make()
    ft.train(seqs, labels, validation_data=seqs, validation_labels=labels, epochs=1)
    ft.save(tmp_path / "m")
    loaded = HyenaDNAFineTuningModel.load(tmp_path / "m", device="auto", precision="fp32", progress=False)
    assert loaded.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert loaded.config.progress is False
    assert np.allclose(loaded.get_outputs(seqs), ft.get_outputs(seqs), atol=1e-5)
    with pytest.raises(ValueError, match="framing, max_length: fixed by the saved model"):
        HyenaDNAFineTuningModel.load(tmp_path / "m", framing="sep", max_length=10)
    with pytest.raises(ValueError, match="device='gpu': give 'auto', 'cpu'"):
        HyenaDNAFineTuningModel.load(tmp_path / "m", device="gpu")


def test_training_arguments_that_would_be_ignored_or_fail_inside_are_refused():
    """validation_labels alone were ignored, validation_data alone failed with "len() of unsized object",
    validation_fraction=0 with scikit-learn's words, and head_init="probe" was ignored by a regressor."""
    seqs, labels = gc_task(16)
    ft = make()
    for kw, message in (
        ({"validation_labels": labels}, "validation_labels was given alone: give validation_data and"),
        ({"validation_data": seqs}, "validation_data was given alone: give validation_data and"),
        ({"validation_fraction": 0}, "validation_fraction=0: the share of train held out, between 0 and 1"),
        ({"validation_fraction": 1.0}, "validation_fraction=1.0: the share of train held out"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            ft.train(seqs, labels, epochs=1, **kw)
    regressor = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny"), "regression", 1)
    with pytest.raises(ValueError, match="head_init='probe' fits a logistic regression: it is for a classification"):
        regressor.train(seqs, np.arange(16.0), head_init="probe", epochs=1)


def test_boolean_labels_are_classes_0_and_1():
    """A True/False column (a pandas comparison, say) is a binary task, as scikit-learn reads it."""
    seqs, labels = gc_task(32)
    as_bool = make()
    as_bool.train(seqs, np.array(labels) == 1, epochs=1, seed=0)
    as_int = make()
    as_int.train(seqs, labels, epochs=1, seed=0)
    assert np.array_equal(as_bool.get_outputs(seqs), as_int.get_outputs(seqs))
    assert as_bool.evaluate(seqs, pd.Series(np.array(labels) == 1)) == as_int.evaluate(seqs, labels)


def test_class_names_as_labels(tmp_path):
    seqs, labels = gc_task(64)
    names = np.array(["gc_rich" if y else "at_rich" for y in labels])
    ft = make()
    ft.train(seqs, names, epochs=1, lr=2e-3, seed=0)
    assert ft.label_names == ["at_rich", "gc_rich"]  # sorted, as scikit-learn's LabelEncoder orders them
    by_index = make()
    by_index.train(seqs, labels, epochs=1, lr=2e-3, seed=0)
    assert np.array_equal(ft.get_outputs(seqs[:8]), by_index.get_outputs(seqs[:8]))  # the same indices, trained alike
    assert ft.evaluate(seqs, names) == ft.evaluate(seqs, labels)
    ft.save(tmp_path / "ft")
    assert HyenaDNAFineTuningModel.load(tmp_path / "ft").label_names == ["at_rich", "gc_rich"]
    with pytest.raises(ValueError, match=r"label 'cpg' of sequence 1 is not a class name: at_rich, gc_rich"):
        ft.evaluate(seqs[:2], ["at_rich", "cpg"])
    # names given in the head's order are kept; a set of names that does not match the head is refused
    given = HyenaDNAFineTuningModel(ft.config, "classification", 2, label_names=["gc_rich", "at_rich"])
    assert list(given._labels(["at_rich", "gc_rich"], 2)) == [1, 0]
    assert list(given._labels(np.array([1, 0], dtype=object), 2)) == [1, 0]  # indices in an object column
    with pytest.raises(ValueError, match=r"the labels name 3 classes \(a, b, c\) and the head has 2: give label_names"):
        make().train(["ACGT", "ACGA", "ACGG"], ["a", "b", "c"], epochs=1)


def test_metrics_are_dataset_level_sklearn():
    y = np.array([0, 1, 1, 0, 1, 1])
    p = np.array([0, 1, 0, 0, 1, 1])
    m = classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(5 / 6) and m["precision"] == 1.0 and m["recall"] == 0.75
    multi = classification_metrics([0, 1, 2, 2], [0, 2, 2, 2], 3)
    assert multi["f1"] == pytest.approx((1 + 0 + 0.8) / 3)


@pytest.mark.parametrize("classes", [2, 3])
def test_probe_head_init_reproduces_the_logistic_regression(classes):
    from hyenadna.probe import make_probe
    from hyenadna.sdk import HyenaDNA

    seqs, _ = gc_task(90)
    labels = np.arange(90) % classes
    cfg = HyenaDNAConfig(model_path=FIXTURES / "tiny", batch_size=16, progress=False)
    ft = HyenaDNAFineTuningModel(cfg, "classification", classes)
    # epochs=0: only the head initialisation runs; the validation split is given so all 90 sequences fit the probe
    ft.train(seqs, labels, seqs[:9], labels[:9], epochs=0, head_init="probe", seed=0)
    feats = HyenaDNA(cfg).get_embeddings(seqs, pooling="mean")
    probe = make_probe("logreg", 0, C=0.1).fit(feats, labels)
    expected = probe.predict_proba(feats)
    _, probs = ft.predict(seqs)
    assert np.abs(probs - expected).max() < 1e-3
    random_head = HyenaDNAFineTuningModel(cfg, "classification", classes)
    random_head.train(seqs, labels, seqs[:9], labels[:9], epochs=0, head_init="random", seed=0)
    assert np.abs(random_head.predict(seqs)[1] - expected).max() > 1e-2


def test_bucketed_batches_cover_every_sequence_once_in_similar_lengths():
    from hyenadna.training.finetune import bucketed_batches as _bucketed_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 800, 1000)
    batches = _bucketed_batches(lengths, 16, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert len(batches) == -(-1000 // 16)
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 60  # a random batch of 16 spans ~700
    again = _bucketed_batches(lengths, 16, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_precision_is_honoured_in_training_and_inference():
    """config.precision="bf16" runs fine-tuning and prediction under bf16 autocast (it used to be ignored)."""
    seqs, labels = gc_task(48)
    fp32, bf16 = make(), make(precision="bf16")
    bf16.network.load_state_dict(fp32.network.state_dict())
    a, b = fp32.get_outputs(seqs[:8]), bf16.get_outputs(seqs[:8])
    assert not np.array_equal(a, b)  # the autocast really ran
    assert np.abs(a - b).max() < 0.05 * max(1.0, np.abs(a).max())
    calls = []
    real = torch.autocast.__init__

    def spy(self, device_type, dtype=None, enabled=True, *args, **kw):
        calls.append((dtype, enabled))
        return real(self, device_type, dtype, enabled, *args, **kw)

    torch.autocast.__init__ = spy
    try:
        bf16.train(seqs, labels, epochs=1, seed=2)
    finally:
        torch.autocast.__init__ = real
    assert (torch.bfloat16, True) in calls
    assert len(bf16.history) == 1 and np.isfinite(bf16.history[0]["train_loss"])


class _Constant(torch.nn.Module):
    """Two logits from one bias: enough network for ``fine_tune``'s loop, whose validation is scripted here."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(2))

    def forward(self, input_ids, mask):
        return self.bias.expand(len(input_ids), 2)


def _scripted_run(scores, patience=2, start=None, key="mcc"):
    from hyenadna.tokenizer import BatchEncoding
    from hyenadna.training.finetune import Recipe, fine_tune

    script = iter(scores)

    def make_batch(idx, flips):
        ids = torch.zeros(len(idx), 4, dtype=torch.long)
        return BatchEncoding(ids, torch.ones_like(ids, dtype=torch.bool), torch.full((len(idx),), 4))

    history = fine_tune(
        _Constant(),
        np.full(8, 4),
        make_batch,
        lambda out, idx: torch.nn.functional.cross_entropy(out, torch.zeros(len(idx), dtype=torch.long)),
        lambda: {key: next(script)},
        key,
        Recipe(epochs=len(scores), patience=patience),
        batch_size=4,
        start=None if start is None else lambda: start,
        progress=False,
    )
    return [h[f"val_{key}"] for h in history if h["epoch"] > 0]


def test_early_stopping_waits_until_validation_beats_chance():
    # from random weights a classifier can sit at chance (MCC 0) for epochs before it learns: those do not count
    assert _scripted_run([0.0, 0.0, 0.0, -0.1, 0.2, 0.3, 0.1]) == [0.0, 0.0, 0.0, -0.1, 0.2, 0.3, 0.1]
    # once an epoch has beaten chance, patience counts as before, also epochs that fall back to chance
    assert _scripted_run([0.0, 0.1, 0.0, 0.0, 0.5]) == [0.0, 0.1, 0.0, 0.0]
    # a start above chance (an LP-FT head) counts from the first epoch; one at chance waits as a random head does
    assert _scripted_run([0.0, 0.0, 0.5], start={"mcc": 0.2}) == [0.0, 0.0]
    assert _scripted_run([0.0, 0.0, 0.5], start={"mcc": 0.0}) == [0.0, 0.0, 0.5]
    # a regression (lower mse is better) has no chance level to wait for
    assert _scripted_run([1.0, 2.0, 2.0, 0.5], key="mse") == [1.0, 2.0, 2.0]


def _scripted_losses(losses, scores, patience_from, patience=2):
    """Training loss and validation MCC scripted epoch by epoch (two batches an epoch); the epochs that ran."""
    from hyenadna.tokenizer import BatchEncoding
    from hyenadna.training.finetune import Recipe, fine_tune

    script, calls = iter(scores), []

    def make_batch(idx, flips):
        ids = torch.zeros(len(idx), 4, dtype=torch.long)
        return BatchEncoding(ids, torch.ones_like(ids, dtype=torch.bool), torch.full((len(idx),), 4))

    def loss_fn(out, idx):
        calls.append(None)
        return out.sum() * 0 + losses[(len(calls) - 1) // 2]

    recipe = Recipe(epochs=len(scores), patience=patience, patience_from=patience_from)
    history = fine_tune(
        _Constant(), np.full(8, 4), make_batch, loss_fn, lambda: {"mcc": next(script)}, "mcc", recipe, 4,
        progress=False,
    )  # fmt: skip
    return [h["epoch"] for h in history]


def test_patience_can_wait_for_the_training_loss_to_leave_chance():
    # a model at chance (loss ln 2) with a lucky validation score at epoch 2: counted from it, patience 2 ends the
    # run at epoch 4, before the loss falls; counted from the loss, the run goes on until it learns and then stalls
    losses = [0.693, 0.695, 0.69, 0.692, 0.60, 0.50, 0.45, 0.44, 0.44]
    scores = [0.0, 0.2, 0.0, 0.05, 0.1, 0.3, 0.35, 0.3, 0.3]
    assert _scripted_losses(losses, scores, "above chance") == [1, 2, 3, 4]
    assert _scripted_losses(losses, scores, "training loss") == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    # the epoch that leaves chance (0.60 <= 0.95 x 0.693) counts: with no gain from there, patience 2 ends at epoch 6
    flat = [0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert _scripted_losses(losses, flat, "training loss") == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="patience_from"):
        _scripted_losses(losses, scores, "validation loss")


@pytest.mark.parametrize("rule", ["above chance", "training loss"])
def test_replaying_a_saved_history_stops_where_training_stopped(rule):
    # benchmarks/patience_rules.py replays saved runs under either rule: the replay must stop where the loop does
    from hyenadna.training.patience import stop_epoch

    rng = np.random.default_rng(7)
    stops = set()
    for _ in range(12):
        losses = (0.693 * np.cumprod(rng.uniform(0.9, 1.02, 10))).tolist()
        scores = np.round(rng.uniform(-0.1, 0.4, 10), 2).tolist()
        ran = _scripted_losses(losses, scores, rule)
        history = [{"epoch": e, "train_loss": losses[e - 1], "val_mcc": scores[e - 1]} for e in ran]
        replayed = stop_epoch(history, 2, rule)
        if len(ran) < 10:
            assert replayed == len(ran)
        else:  # the last epoch either stopped the run or ended the schedule
            assert replayed in (10, None)
        stops.add(replayed)
    assert len(stops) > 2  # the scripts stop runs at several different epochs


def test_a_checkpoint_written_before_the_patience_rule_could_be_chosen_still_resumes():
    from dataclasses import asdict

    from hyenadna.training.finetune import Recipe, _identity_recipe

    old = {k: v for k, v in asdict(Recipe()).items() if k != "patience_from"}  # a recipe as checkpoints held it
    assert _identity_recipe(Recipe()) == old
    assert _identity_recipe(Recipe(patience_from="training loss")) == {**old, "patience_from": "training loss"}


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("head_init", ["random", "probe"])
def test_interrupted_fine_tuning_resumes_exactly_from_its_checkpoint(tmp_path, head_init):
    from hyenadna.training.finetune import read_checkpoint

    seqs, labels = gc_task(40)
    args = dict(epochs=3, lr=2e-3, patience=3, rc_augment=True, seed=5, head_init=head_init)
    whole = make()
    whole.train(seqs, labels, **args)

    def kill_at_epoch_2(row):
        if row["epoch"] == 2:
            raise _Interrupted  # after epoch 2's training, before its checkpoint: epoch 2 runs again

    path = tmp_path / "state.pt"
    with pytest.raises(_Interrupted):
        make().train(seqs, labels, **args, checkpoint=path, on_epoch=kill_at_epoch_2)
    saved = read_checkpoint(path)
    assert saved["epoch"] == 1 and not saved["finished"] and saved["seconds"] > 0

    resumed, epochs_run = make(), []
    resumed._init_head_from_probe = None  # resuming must not fit the probe again: the checkpoint holds the head
    resumed.train(seqs, labels, **args, checkpoint=path, on_epoch=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == [2, 3]
    assert resumed.history == whole.history  # the dropout and shuffling RNGs, AdamW and the schedule went on as before
    assert np.array_equal(resumed.get_outputs(seqs[:8]), whole.get_outputs(seqs[:8]))
    assert read_checkpoint(path)["finished"]

    again, epochs_run = make(), []
    again.train(seqs, labels, **args, checkpoint=path, on_epoch=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == [] and again.history == whole.history
    assert np.array_equal(again.get_outputs(seqs[:8]), whole.get_outputs(seqs[:8]))

    with pytest.raises(ValueError, match=r"another training run.*lr 0\.002 there, 0\.001 here"):
        make().train(seqs, labels, **{**args, "lr": 1e-3}, checkpoint=path)
    # another model or head (here another seed's head), other data or another setting is another run as well
    with pytest.raises(ValueError, match=r"another training run \(the starting weights differ"):
        make(seed=1).train(seqs, labels, **args, checkpoint=path)
    with pytest.raises(ValueError, match=r"another training run \(the data differ\)"):
        make().train(seqs, 1 - np.asarray(labels), **args, checkpoint=path)
    other = "probe" if head_init == "random" else "random"
    with pytest.raises(ValueError, match=rf"head_init {head_init} there, {other} here"):
        make().train(seqs, labels, **{**args, "head_init": other}, checkpoint=path)
    # a checkpoint written before the weights and data were recorded is checked on what it recorded
    state = torch.load(path, weights_only=True)
    recorded = json.loads(state["identity"])
    state["identity"] = json.dumps({k: v for k, v in recorded.items() if k not in ("weights", "data", "head_init")})
    torch.save(state, path)
    make(seed=1).train(seqs, labels, **args, checkpoint=path)  # finished: returns at once
    with pytest.raises(ValueError, match=r"lr 0\.002 there, 0\.001 here"):
        make().train(seqs, labels, **{**args, "lr": 1e-3}, checkpoint=path)


def test_a_batch_that_would_not_fit_is_pointed_out_before_training(monkeypatch):
    """The longest sequences times batch_size, by the model's shape, against the memory available (faked here)."""
    import hyenadna.training.step_memory as step_memory_module

    seqs, labels = gc_task(20)
    monkeypatch.setattr(step_memory_module, "available_bytes", lambda device: 1000)
    ft = make()
    with pytest.warns(UserWarning, match=r"of 1,600 tokens needs about .* gradient_checkpointing=True \(about"):
        ft.train(seqs, labels, epochs=1)
    with pytest.warns(UserWarning, match="a smaller batch_size") as seen:
        make(gradient_checkpointing=True).train(seqs, labels, epochs=1)
    assert not any("gradient_checkpointing=True" in str(w.message) for w in seen)
    monkeypatch.setattr(step_memory_module, "available_bytes", lambda device: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "the validation split")  # 20 rows leave 2 for validation
        make().train(seqs, labels, epochs=1)


def test_the_step_memory_estimate_follows_the_precision(monkeypatch):
    """bf16 autocast keeps the projections' and MLP's activations in 16 bits (measured ~0.8x fp32's step): memory
    that fits a bf16 step but not an fp32 one warns for fp32 only."""
    import hyenadna.training.step_memory as step_memory_module
    from hyenadna.training.step_memory import FIT_SHARE, step_memory_bytes

    seqs, labels = gc_task(20)
    shape = make().lm.config
    fp32, bf16 = (step_memory_bytes(shape, 1_600, False, p) for p in ("fp32", "bf16"))
    assert bf16 < 0.85 * fp32
    monkeypatch.setattr(step_memory_module, "available_bytes", lambda device: (fp32 + bf16) / 2 / FIT_SHARE)
    with pytest.warns(UserWarning, match="of 1,600 tokens needs about"):
        make().train(seqs, labels, epochs=1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        make(precision="bf16").train(seqs, labels, epochs=1)
    assert not any("needs about" in str(w.message) for w in seen)


def test_sequences_longer_than_the_context_are_truncated_with_a_warning():
    """Training says once that it reads the first bases of long sequences (not once per validation pass), and so does
    every prediction: a long sequence's answer is that of its first ``max_bases`` bases."""
    seqs, labels = gc_task(20)
    ft = make(max_length=64)
    n = ft.max_bases
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ft.train(seqs, labels, epochs=2)
    cut = [str(w.message) for w in seen if "bases the model reads" in str(w.message)]
    # the training split's 18: two of the 20 are held out for validation
    assert len(cut) == 1, cut
    assert cut[0].startswith(f"18 of 18 sequences are longer than the {n} bases the model reads; each is trained on")
    long = {"short": seqs[0][:40], "long": seqs[1]}
    for call in (lambda: ft.predict(long), lambda: ft.get_outputs(long), lambda: ft.evaluate(long, [0, 1])):
        with pytest.warns(
            UserWarning,
            match=rf"^1 of 2 sequences are longer than the {n} bases .* predicted from its "
            rf"first {n} \(the longest, 'long', has 100\)",
        ):
            call()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head = ft.get_outputs([seqs[1][:n]])
    with pytest.warns(UserWarning):
        assert np.array_equal(ft.get_outputs([seqs[1]]), head)


def test_a_sequence_with_no_dna_is_predicted_with_a_warning():
    """A gap of a genome (all N) still gets a prediction, from the head's bias and the model's reading of N: it says
    so, once a call, rather than answer in silence as if it were evidence."""
    seqs, labels = gc_task(20)
    ft = make()
    ft.train(seqs, labels, epochs=1)
    data = {"dna": seqs[0], "gap": "NNNNNNNN", "iupac": "RYKMN"}
    for call in (lambda: ft.predict(data), lambda: ft.get_outputs(data)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            call()
        said = [str(w.message) for w in seen if "hold no A, C, G or T" in str(w.message)]
        assert said == [
            "2 of 3 sequences hold no A, C, G or T (only N or IUPAC codes, read as N): their predictions read no DNA "
            "(the first, 'gap')"
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ft.predict({"dna": seqs[0], "some_n": "NNNNACGT"})


def test_training_reports_its_speed_each_epoch(capsys):
    """Long work shows progress: each epoch's line names its seconds and training bases/s."""
    seqs, labels = gc_task(48)
    make().train(seqs[:32], labels[:32], seqs[32:], labels[32:], epochs=2, progress=True)
    out = capsys.readouterr()
    lines = [x for x in (out.out + out.err).splitlines() if x.startswith("epoch ") and "train loss" in x]
    assert len(lines) == 2 and all(x.endswith("bases/s)") and " s, " in x for x in lines), lines


def test_a_validation_split_too_small_to_choose_an_epoch_is_named():
    """The model card's call on 20 rows leaves 2 for validation, whose MCC then flips between 0 and 1 from epoch to
    epoch; training says so, and names a class the validation rows lack."""
    ft = make()
    seqs, labels = gc_task(20)
    with pytest.warns(UserWarning, match=r"has only 2 rows \(a blind classifier's MCC on them has a standard error"):
        ft.train(ft.process_data(seqs), labels, epochs=1)
    with pytest.warns(UserWarning, match="no row of class 1"):
        ft.train(seqs, labels, seqs[:20:2], labels[:20:2], epochs=1)
    y = np.arange(60) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ft._check_validation(y, y)


def test_a_recipe_names_each_value_out_of_range():
    """lr=0 read "epochs 1 (>= 0), patience 3 (>= 1), lr 0 (> 0)", naming what was right too; grad_clip=0 (every
    gradient clipped to nothing) and NaN rates were accepted."""
    from hyenadna.training.finetune import Recipe

    with pytest.raises(ValueError, match=r"^lr=0 \(needs > 0\)$"):
        Recipe(epochs=1, lr=0)
    with pytest.raises(ValueError, match=r"^lr=nan \(needs > 0\), grad_clip=0 \(needs > 0\)$"):
        Recipe(lr=float("nan"), grad_clip=0)
    with pytest.raises(ValueError, match=r"weight_decay=-0.1 \(needs >= 0\), warmup_fraction=1.5 \(needs 0 to 1\)"):
        Recipe(weight_decay=-0.1, warmup_fraction=1.5)
    assert Recipe(epochs=0, warmup_fraction=0.0).epochs == 0


def test_saving_a_fine_tuned_model_onto_a_file_is_refused(tmp_path):
    from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel

    (tmp_path / "x.fa").write_text(">a\nACGT\n")
    model = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny"), "classification", 2)
    with pytest.raises(NotADirectoryError, match=r"x.fa is a file; a fine-tuned model is saved as a folder"):
        model.save(tmp_path / "x.fa")  # was "[Errno 20] Not a directory: 'x.fa/backbone'"
    assert (tmp_path / "x.fa").read_text() == ">a\nACGT\n"


def test_a_split_that_leaves_training_one_class_is_refused(tmp_path):
    """Two rows of two classes: the validation split took one, and a one-class model was trained (validation MCC 0)
    in silence; the check for one training class ran before the split only."""
    from hyenadna import HyenaDNAConfig, HyenaDNAFineTuningModel

    model = HyenaDNAFineTuningModel(HyenaDNAConfig(model_path=FIXTURES / "tiny"), "classification", 2)
    with pytest.raises(ValueError, match=r"after the validation split \(1 of 2 rows\), every training label is class"):
        model.train(["ACGTACGTAA", "GGGGCCCCTT"], [0, 1], epochs=1)
