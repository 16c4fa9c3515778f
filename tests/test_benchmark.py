"""Task loading (ours and NT-style), the benchmark runner and its report, fine-tune and predict commands."""

from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest

from hyenadna.benchmark.kmer import kmer_frequencies
from hyenadna.benchmark.runner import BenchmarkConfig, run_benchmark, run_finetune
from hyenadna.benchmark.tasks import discover_tasks, load_task
from hyenadna.cli import main
from tests.conftest import FIXTURES, SHARED, held_by_another_process


def gc_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        p = [0.3, 0.2, 0.2, 0.3] if label == 0 else [0.15, 0.35, 0.35, 0.15]
        rows.append({"sequence": "".join(rng.choice(list("ACGT"), 60, p=p)), "label": label, "name": f"s{i}"})
    return pd.DataFrame(rows)


@pytest.fixture
def tasks_dir(tmp_path):
    ours = tmp_path / "tasks" / "gc_task"
    ours.mkdir(parents=True)
    gc_frame(60, 0).to_csv(ours / "train.csv.gz", index=False)
    gc_frame(30, 1).to_csv(ours / "test.csv.gz", index=False)
    baseline = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.4321, "mcc": 0.1234}
    (ours / "task.json").write_text(
        json.dumps(
            {
                "name": "gc_task",
                "metric": "F1",
                "label_names": ["at", "gc"],
                "kmer_logistic_regression_baseline_test": baseline,
            }
        )
    )
    nt = tmp_path / "tasks" / "promoter_tata"  # NT-style: parquet, no task.json
    nt.mkdir()
    gc_frame(60, 2)[["sequence", "label"]].to_parquet(nt / "train-00000-of-00001.parquet")
    gc_frame(30, 3)[["sequence", "label"]].to_parquet(nt / "test-00000-of-00001.parquet")
    return tmp_path / "tasks"


def test_task_loaders(tasks_dir):
    ours, nt = discover_tasks(tasks_dir)
    assert (ours.name, ours.metric, ours.label_names) == ("gc_task", "f1", ["at", "gc"])
    assert (nt.name, nt.metric, nt.num_classes) == ("promoter_tata", "f1", 2)
    assert len(nt.train) == 60 and set(nt.train.columns) == {"sequence", "label", "name"}
    assert load_task(SHARED / "benchmarks" / "splice_sites_all").metric == "accuracy"
    sub = ours.subsample(20, 10)
    assert len(sub.train) == 20 and sub.train["label"].sum() == 10


def test_task_labels_may_be_names_and_bad_rows_are_named(tmp_path):
    """Text labels are class names (numbered as scikit-learn's LabelEncoder, or by task.json's label_names); a
    missing sequence or label, a label that is not a whole number, or a bad base is named by its file and row."""
    task = tmp_path / "names"
    task.mkdir()
    train, test = gc_frame(20, 0), gc_frame(10, 1)
    for df in (train, test):
        df["label"] = np.where(df["label"] == 1, "gc_rich", "at_rich")
    train.to_csv(task / "train.csv.gz", index=False)
    test.to_parquet(task / "test.parquet")
    loaded = load_task(task)
    assert loaded.label_names == ["at_rich", "gc_rich"] and loaded.train["label"].tolist() == [0, 1] * 10
    (task / "task.json").write_text(json.dumps({"label_names": ["gc_rich", "at_rich"]}))
    assert load_task(task).test["label"].tolist() == [1, 0] * 5
    (task / "task.json").write_text(json.dumps({"label_names": ["gc_rich", "other"]}))
    with pytest.raises(ValueError, match=r"task\.json: label\(s\) \['at_rich'\] are not among"):
        load_task(task)
    (task / "task.json").unlink()
    for change, message in (
        (("sequence", None), r"train\.csv\.gz, row 4: no sequence \(1 of 20 rows lack one\)"),
        (("label", None), r"train\.csv\.gz, row 4: no label"),
        (
            ("label", 0.5),
            r"train\.csv\.gz, row 4: label 0\.5 is neither a class index \(0, 1, \.\.\.\) nor a class name",
        ),
        (("label", -1), r"row 4: label -1 is neither a class index"),
        (("sequence", "ACG-T"), r"train\.csv\.gz, row 4: sequence 3 \(s3\), position 4: invalid character '-'"),
    ):
        bad = gc_frame(20, 0)
        bad[change[0]] = bad[change[0]].astype(object)
        bad.loc[3, change[0]] = change[1]
        bad.to_csv(task / "train.csv.gz", index=False)
        with pytest.raises(ValueError, match=message):
            load_task(task)
    empty = gc_frame(10, 1)
    empty.loc[2, "sequence"] = " "
    empty.to_parquet(task / "test.parquet")
    gc_frame(20, 0).to_csv(task / "train.csv.gz", index=False)
    with pytest.raises(ValueError, match=r"test\.parquet, row 3: an empty sequence"):
        load_task(task)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([0] * 20, "every training label is class 0: a classifier needs two or more"),
        ([0] * 19 + [1], "class 1 has 1 training row; the stratified validation split needs 2 or more of each class"),
        ([0, 1] * 5, "10 training rows leave 1 for validation, fewer than the 2 classes: give 11 rows or more"),
    ],
)
def test_a_task_the_benchmark_cannot_split_is_refused_in_our_words(tmp_path, capsys, labels, message):
    task = tmp_path / "small"
    task.mkdir()
    train = gc_frame(len(labels), 0).assign(label=labels)
    train.to_csv(task / "train.csv.gz", index=False)
    gc_frame(10, 1).to_csv(task / "test.csv.gz", index=False)
    assert main(["benchmark", "--tasks", str(task), "--modes", "kmer", "--out", str(tmp_path / "out")]) == 1
    assert f"hyenadna benchmark: error: small: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "-1"], "argument --seeds: -1 is less than 0"),  # was scikit-learn's random_state error
        (["--seeds", "--modes", "kmer"], "argument --seeds: expected at least one argument"),  # was an IndexError
        (["--modes"], "argument --modes: expected at least one argument"),  # ran nothing, wrote an empty table
        (["--seeds", "5000000000"], "argument --seeds: 5000000000 is greater than 2**32 - 1"),
        (["--finetune-lrs", "0"], "argument --finetune-lrs: 0 is not greater than 0"),
        (["--scratch-lrs", "-0.001"], "argument --scratch-lrs: -0.001 is not greater than 0"),
    ],
)
def test_benchmark_arguments_that_name_no_run_are_refused(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--tasks-dir", str(tmp_path), "--out", str(tmp_path / "out"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert main(["benchmark", "--tasks-dir", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 1
    assert "none: no such folder of task folders" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0", "0"], "seeds names 0 more than once"),  # ran twice, reported n=1 and a profile of [0, 0]
        (["--modes", "kmer", "kmer"], "modes names kmer more than once"),
        (["--tasks", "a", "b", "a"], "tasks names a more than once"),
        (["--finetune-lrs", "1e-4", "0.0001"], "finetune_lrs names 0.0001 more than once"),
    ],
)
def test_a_benchmark_value_given_twice_is_refused(tmp_path, capsys, args, message):
    assert main(["benchmark", "--tasks-dir", str(tmp_path), "--out", str(tmp_path / "out"), *args]) == 1
    assert f"hyenadna benchmark: error: {message}: give each once" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_report_with_no_saved_run_is_refused_not_written_empty(tasks_dir, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["benchmark", "--tasks-dir", str(tasks_dir), "--out", str(out), "--modes", "kmer"]
    assert main([*base, "--report-only"]) == 1  # wrote a table of headers and no rows
    assert "no saved run to report for these tasks, modes and seeds (run the benchmark without --report-only" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    assert main([*base, "--seeds", "0"]) == 0
    assert main([*base, "--seeds", "1", "--report-only"]) == 1
    assert "its 2 saved run(s) are of other tasks, seeds, modes or options" in capsys.readouterr().err
    assert main([*base, "--seeds", "0", "--report-only"]) == 0


def test_kmer_frequencies():
    f = kmer_frequencies(["AAAC", "ACNAC"], 2)
    assert f.shape == (2, 16)
    assert f[0, 0] == pytest.approx(2 / 3) and f[0, 1] == pytest.approx(1 / 3)  # AA, AA, AC
    assert f[1, 1] == pytest.approx(1.0)  # AC twice; k-mers touching N are skipped


def test_benchmark_runs_reports_and_resumes(tasks_dir, tmp_path):
    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir),
        out_dir=str(tmp_path / "out"),
        seeds=[0, 1],
        epochs=1,
        scratch_epochs=1,
        scratch_lrs=[1e-3, 3e-3],
        batch_size=16,
        model_path=str(FIXTURES / "tiny"),
        probes=["logreg"],
    )
    lines = []
    summary = run_benchmark(cfg, log=lines.append)
    row = summary["tasks"]["gc_task"]["modes"]
    assert set(row) == {"kmer", "probe", "finetune", "scratch"}
    # a line per trained epoch, before its run's line: runs last up to an hour, and the log is all a user sees
    epochs = [m for m in lines if m.startswith("    gc_task scratch seed 0: lr ")]
    assert [m.split(": lr ")[1].split(":")[0] for m in epochs] == ["0.001 epoch 1/1", "0.003 epoch 1/1"]
    assert all("validation mcc" in m and "bases/s)" in m for m in epochs)
    assert lines.index(epochs[-1]) < next(i for i, m in enumerate(lines) if "gc_task" in m and "scratch   seed 0" in m)
    assert row["kmer"]["metrics"]["f1"]["mean"] > 0.8
    assert row["probe"]["seeds"] == [0, 1]
    assert len(row["finetune"]["selected_epochs"]) == 2 and "selected_epochs" not in row["probe"]
    # each learning rate of the grid is tried; the kept one has the best validation MCC, and only it is tested
    for mode, lrs in (("finetune", cfg.finetune_lrs), ("scratch", cfg.scratch_lrs)):
        run = json.loads((tmp_path / "out" / "runs" / "gc_task" / mode / "seed0.json").read_text())
        assert [g["lr"] for g in run["lr_grid"]] == lrs
        assert run["val_mcc"] == max(g["val_mcc"] for g in run["lr_grid"])
        assert run["selected"]["lr"] == next(g["lr"] for g in run["lr_grid"] if g["val_mcc"] == run["val_mcc"])
        assert run["history"][0]["epoch"] == (0 if mode == "finetune" else 1)  # LP-FT head vs random head
        # every rate's epochs are saved, so that the run can be replayed under another stopping rule
        kept = next(g for g in run["lr_grid"] if g["lr"] == run["selected"]["lr"])
        assert kept["history"] == run["history"] and all(g["history"][-1]["epoch"] >= 1 for g in run["lr_grid"])
        assert run["environment"]["kernels"]["fft_pow2_slack"] in (1.0, 1.05, 1.25)  # which kernels ran it
        assert run["environment"]["cpu"]  # on which CPU model: the kernels' rounding is the CPU's too
    table = (tmp_path / "out" / "results.md").read_text()
    assert table.splitlines()[0].startswith("Profile: full")
    assert table.splitlines()[2].startswith("| Dataset | Metric | k-mer LR baseline | HyenaDNA probing")
    assert "| gc_task | F1 |" in table and "| promoter_tata | F1 |" in table
    # the task file's full-data k-mer baseline is shown beside our columns, F1 and MCC; NT tasks have none
    gc_rows = [line for line in table.splitlines() if line.startswith("| gc_task |")]
    assert gc_rows[0].endswith("| 43.2 |") and gc_rows[1].endswith("| 12.3 |")
    assert next(line for line in table.splitlines() if line.startswith("| promoter_tata |")).endswith("| - |")
    assert (tmp_path / "out" / "results.png").stat().st_size > 5000
    assert (tmp_path / "out" / "results_vs_kmer.png").stat().st_size > 5000
    run = json.loads((tmp_path / "out" / "runs" / "gc_task" / "probe" / "seed0.json").read_text())
    assert set(run["test"]) == {"accuracy", "precision", "recall", "f1", "mcc", "predicted_classes"}
    # every run keeps its test predictions row by row, from which the report bootstraps the test rows' share
    test_rows = load_task(tasks_dir / "gc_task").test
    assert run["test_labels"] == "".join(map(str, test_rows["label"]))
    assert len(run["test_predictions"]) == len(test_rows)
    assert set(summary["tasks"]["gc_task"]["intervals"]) == {
        "probe-kmer",
        "finetune-kmer",
        "scratch-kmer",
        "finetune-scratch",
    }
    assert "] |" in next(line for line in table.splitlines() if line.startswith("| gc_task | +"))
    assert all("one_class_seeds" in m for m in row.values())
    # cached embeddings and finished runs are reused
    assert any((tmp_path / "out" / "embeddings").rglob("*.npy"))
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").rglob("*.json")}
    again = run_benchmark(cfg, log=lambda m: None)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").rglob("*.json")} == before
    assert again["tasks"] == summary["tasks"]
    # a changed recipe is never mixed with old runs: only the runs whose recipe changed run again
    messages = []
    run_benchmark(replace(cfg, scratch_lrs=[1e-3]), log=messages.append)
    changed = {p for p, t in before.items() if p.stat().st_mtime_ns != t}
    assert changed and all(p.parent.name == "scratch" for p in changed)
    assert len(changed) == len([p for p in before if p.parent.name == "scratch"])
    assert any("another recipe" in m for m in messages)
    run = json.loads((tmp_path / "out" / "runs" / "gc_task" / "scratch" / "seed0.json").read_text())
    assert run["recipe"]["lrs"] == [1e-3] and [g["lr"] for g in run["lr_grid"]] == [1e-3]


def test_quick_profile_runs_three_seeds_and_trains_the_unpretrained_model_longer():
    cfg = BenchmarkConfig.quick(tasks_dir="t", out_dir="x")
    assert cfg.seeds == [0, 1, 2] and cfg.scratch_epochs == 2 * cfg.epochs and len(cfg.scratch_lrs) >= 2
    full = BenchmarkConfig(tasks_dir="t", out_dir="x")
    # the full profile's schedules: 3 and 6 epochs ended 31 of 108 rates at their best epoch (docs/benchmarks)
    assert (cfg.epochs, cfg.patience, cfg.scratch_epochs) == (full.epochs, full.patience, 2 * full.epochs)
    # each quick grid is part of its full grid, so a quick run's rate is one the full profile also tries
    assert set(cfg.finetune_lrs) < set(full.finetune_lrs) and set(cfg.scratch_lrs) < set(full.scratch_lrs)
    # random weights at 3e-3 collapsed to the prior in the quick tables; the grid stops below it
    assert max(cfg.scratch_lrs) <= 1e-3 and max(full.scratch_lrs) <= 1e-3


def test_a_model_that_predicts_one_class_is_flagged():
    from hyenadna.benchmark.report import _cell

    entry = {
        "metrics": {"mcc": {"mean": 0.0, "sd": 0.0}},
        "seeds": [0, 1, 2],
        "one_class_seeds": [0, 2],
        "selected_epochs": [1, 1, 1],
    }
    assert _cell(entry, "mcc") == "0.0 ± 0.0 ‡2/3"
    assert "‡" not in _cell({**entry, "one_class_seeds": []}, "mcc")


def test_a_model_not_above_chance_on_test_is_flagged(tasks_dir, tmp_path):
    """A seed whose test MCC is below the level a label-blind model passes one time in twenty is marked §, apart from
    the one-class seeds (‡), and stays in the mean."""
    from hyenadna.benchmark.report import markdown_table
    from hyenadna.benchmark.runner import run_recipe, summarise
    from hyenadna.metrics import chance_mcc

    cfg = BenchmarkConfig.quick(tasks_dir=str(tasks_dir), out_dir=str(tmp_path), modes=["kmer"])
    task = discover_tasks(tasks_dir, ["gc_task"])[0]
    level = chance_mcc(1000, 2)
    for seed, (mcc, classes) in enumerate([(0.3, 2), (level - 0.001, 2), (0.0, 1)]):
        test = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "mcc": mcc, "predicted_classes": classes}
        run = {"seed": seed, "recipe": run_recipe(cfg, "kmer"), "test": test, "seconds": 1.0, "n_train": 900,
               "n_test": 1000}  # fmt: skip
        path = tmp_path / "runs" / "gc_task" / "kmer" / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
    summary = summarise(tmp_path, [task], cfg, log=lambda *a: None)
    entry = summary["tasks"]["gc_task"]["modes"]["kmer"]
    assert entry["chance_seeds"] == [1] and entry["one_class_seeds"] == [2]
    table = markdown_table(summary)
    assert "‡1/3 §1/3" in table and "§ k/n: in k of n seeds the test MCC was not above chance" in table
    assert entry["metrics"]["mcc"]["mean"] == pytest.approx((0.3 + level - 0.001) / 3)  # averaged in, as they are


def test_fine_tune_then_predict_jsonl(tasks_dir, tmp_path, capsys, monkeypatch):
    model_dir = tmp_path / "ft"
    rc = main(
        [
            "fine-tune",
            str(tasks_dir / "gc_task"),
            "--out",
            str(model_dir),
            "--epochs",
            "1",
            "--model",
            str(FIXTURES / "tiny"),
        ]
    )
    assert rc == 0
    fasta = tmp_path / "q.fa"
    fasta.write_text(">q1\nGCGCGCGCGGCCGGCGCAT\n>q2\nATATATTATAATATTAAT\n")
    assert main(["predict", str(model_dir), str(fasta), "-o", str(tmp_path / "p.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert rows[0]["label"] in ("at", "gc") and sum(rows[0]["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    # the output's extension picks the format (a .tsv held JSON Lines): a table with a column per class, or JSON
    assert main(["predict", str(model_dir), str(fasta), "-o", str(tmp_path / "p.tsv")]) == 0
    table = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert list(table.columns) == ["id", "label", "label_index", "p_at", "p_gc"] and list(table["id"]) == ["q1", "q2"]
    assert table.loc[0, "p_" + rows[0]["label"]] == pytest.approx(rows[0]["probabilities"][rows[0]["label"]])
    assert main(["predict", str(model_dir), str(fasta), "-o", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text()) == rows
    assert main(["predict", str(model_dir), str(fasta), "-o", str(tmp_path / "p.parquet")]) == 1  # text, refused
    # --model, as every other command names its model (it was an unknown argument)
    assert main(["predict", "--model", str(model_dir), str(fasta), "-o", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text()) == rows
    assert main(["predict", str(model_dir), str(fasta), "--model", str(model_dir)]) == 1
    assert "two models named" in capsys.readouterr().err
    # sequences with no DNA, in two chunks: one warning for the run, not one a chunk
    gaps = tmp_path / "gaps.fa"
    gaps.write_text(">g1\nNNNN\n>q1\nGCGCGCGCGGCCGGCGCAT\n>g2\nNNNNNNNN\n")
    assert main(["predict", str(model_dir), str(gaps), "--chunk-size", "2", "-o", str(tmp_path / "g.jsonl")]) == 0
    err = capsys.readouterr().err
    assert err.count("hold no A, C, G or T") == 1 and "2 of 3 sequences" in err and "(the first, 'g1')" in err
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 3
    # rows stream to the output a chunk at a time (every row was held until the input ended)
    from hyenadna.cli import predict as predict_cli
    from hyenadna.finetune import HyenaDNAFineTuningModel

    calls, at_first_row = [], []
    predict, write = HyenaDNAFineTuningModel.predict, predict_cli.write_rows

    def counting(self, *a, **kw):
        calls.append(1)
        return predict(self, *a, **kw)

    def first_row_seen(rows, *a, **kw):
        rows = iter(rows)
        first = next(rows)
        at_first_row.append(len(calls))
        return write(itertools.chain([first], rows), *a, **kw)

    monkeypatch.setattr(HyenaDNAFineTuningModel, "predict", counting)
    monkeypatch.setattr(predict_cli, "write_rows", first_row_seen)
    out = tmp_path / "streamed.jsonl"
    assert main(["predict", str(model_dir), str(fasta), "--chunk-size", "1", "-o", str(out)]) == 0
    assert at_first_row == [1] and len(calls) == 2 and len(out.read_text().splitlines()) == 2
    # sequences longer than the model reads: one warning for the run (not one per chunk), naming the longest
    capsys.readouterr()
    fasta.write_text("".join(f">r{i}\n{'ACGT' * (300 if i % 2 else 10) + 'A' * i}\n" for i in range(10)))
    assert main(["predict", str(model_dir), str(fasta), "--chunk-size", "2", "-o", str(tmp_path / "p.jsonl")]) == 0
    warned = [x for x in capsys.readouterr().err.splitlines() if "bases the model reads" in x]
    assert warned == [
        "hyenadna predict: warning: 5 of 10 sequences are longer than the 1,026 bases the model reads; each is "
        "predicted from its first 1,026 (the longest, 'r9', has 1,209)"
    ]


def test_report_names_bundled_weights_without_the_install_path():
    from hyenadna.benchmark.report import _source_label
    from hyenadna.hub import BUNDLED_DIR

    assert _source_label(f"m from {BUNDLED_DIR}/m") == "m (bundled)"
    assert _source_label("m from /data/m") == "m from /data/m"


def _entry(seeds, values, metric="mcc"):
    return {"seeds": seeds, "metrics": {metric: {"mean": sum(values) / len(values), "sd": 0.0, "values": values}}}


def test_columns_are_compared_with_the_kmer_baseline_seed_by_seed():
    from hyenadna.benchmark.report import baseline_comparison, paired_difference

    row = {
        "metric": "mcc",
        "modes": {
            "kmer": _entry([0, 1, 2], [0.20, 0.30, 0.25]),
            "finetune": _entry([0, 1, 2], [0.25, 0.32, 0.24]),  # above k-mer by the mean, not in seed 2
            "scratch": _entry([0, 1], [0.10, 0.20]),  # only the seeds both have run are paired
        },
    }
    mean, sd, n, every = paired_difference(row, "finetune", "kmer", "mcc")
    assert (n, every) == (3, False) and mean == pytest.approx((0.05 + 0.02 - 0.01) / 3)
    assert sd == pytest.approx(np.std([0.05, 0.02, -0.01], ddof=1))
    assert paired_difference(row, "scratch", "kmer", "mcc")[:3] == pytest.approx((-0.1, 0.0, 2))
    assert paired_difference(row, "probe", "kmer", "mcc") is None
    other = {"metric": "mcc", "modes": {"kmer": _entry([0], [0.5]), "finetune": _entry([0], [0.6])}}
    lines = baseline_comparison({"tasks": {"a": row, "b": other}})
    text = "\n".join(lines)
    assert "| a | +2.0 ± 3.0 | -10.0 ± 0.0 | +13.5 ± 2.1 * |" in text
    assert "| b | +10.0 (n=1) | - | - |" in text  # one seed: no spread, never counted as "in every seed"
    assert "Fine-tuned beats the k-mer baseline on **2 of 2** tasks by the mean, 0 of them in every seed." in text
    assert "Not pretrained beats the k-mer baseline on **0 of 1** tasks" in text
    assert "beats not pretrained) on **1 of 1** tasks by the mean, 1 of them in every seed." in text
    one_seed = "\n".join(baseline_comparison({"tasks": {"b": other}}))
    assert "Fine-tuned beats the k-mer baseline on **1 of 1** tasks, in one seed (no spread: none counted clear)." in (
        one_seed
    )


@pytest.mark.parametrize("num_classes", [2, 3])
def test_bootstrapped_metrics_are_scikit_learns_on_the_resampled_rows(num_classes):
    from hyenadna.benchmark.bootstrap import confusion_counts, confusion_metrics
    from hyenadna.metrics import METRICS, classification_metrics

    rng = np.random.default_rng(num_classes)
    y = rng.integers(0, num_classes, 200)
    cases = [
        np.where(rng.random(200) < 0.7, y, rng.integers(0, num_classes, 200)),  # a fair model
        np.zeros(200, dtype=int),  # one class: zero-division and MCC's zero denominator
        (y + 1) % num_classes,  # never right
    ]
    weights = rng.multinomial(200, np.full(200, 1 / 200), size=5).astype(float)
    for pred in cases:
        for metric in METRICS:
            fast = confusion_metrics(confusion_counts(y, pred, num_classes, weights), metric)
            for draw, w in enumerate(weights):
                rows = np.repeat(np.arange(200), w.astype(int))  # the draw as a resampled test set
                want = classification_metrics(y[rows], pred[rows], num_classes)[metric]
                assert fast[draw] == pytest.approx(want, abs=1e-12), (metric, draw)


def test_paired_interval_is_the_test_rows_share_of_a_difference():
    from hyenadna.benchmark.bootstrap import decode_labels, encode_labels, paired_interval

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    weak = [np.where(rng.random(1000) < 0.6, y, 1 - y) for _ in range(3)]
    assert paired_interval(y, weak, weak, 2, "mcc") == (0.0, 0.0)  # the same predictions: nothing to resample
    fixed = [np.where(rng.random(1000) < 0.5, y, p) for p in weak]  # right on about half the rows weak gets wrong
    low, high = paired_interval(y, fixed, weak, 2, "f1")
    assert 0 < low < high and paired_interval(y, fixed, weak, 2, "f1") == (low, high)  # seeded: reproducible
    noise = [np.where(rng.random(1000) < 0.6, y, 1 - y) for _ in range(3)]  # as good as weak, other rows right
    low, high = paired_interval(y, noise, weak, 2, "mcc")
    assert low < 0 < high
    with pytest.raises(ValueError, match="one prediction per seed"):
        paired_interval(y, weak, weak[:2], 2, "mcc")
    assert encode_labels([0, 2, 1]) == "021" and encode_labels([3, 12]) == [3, 12]
    assert decode_labels("021").tolist() == [0, 2, 1] and decode_labels([3, 12]).tolist() == [3, 12]


def test_report_only_summarises_saved_runs_and_runs_nothing(tasks_dir, tmp_path):
    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir), out_dir=str(tmp_path / "out"), tasks=["gc_task"], seeds=[0, 1], modes=["kmer"]
    )
    run_benchmark(replace(cfg, seeds=[0]), log=lambda m: None)
    saved = sorted((tmp_path / "out" / "runs").rglob("*.json"))
    written = {p: p.read_bytes() for p in (tmp_path / "out").glob("results.*")}
    summary = run_benchmark(cfg, log=lambda m: None, report_only=True)
    assert sorted((tmp_path / "out" / "runs").rglob("*.json")) == saved  # seed 1 was not run
    entry = summary["tasks"]["gc_task"]["modes"]["kmer"]
    assert entry["seeds"] == [0] and len(entry["metrics"]["mcc"]["values"]) == 1
    assert "(n=1)" in (tmp_path / "out" / "results.md").read_text()  # one of the profile's two seeds
    assert not (tmp_path / "out" / "results_vs_kmer.png").exists()  # k-mer alone: nothing to compare
    # a report of the same runs rewrites the same files: no trace of the call that wrote them
    assert run_benchmark(replace(cfg, seeds=[0]), log=lambda m: None, report_only=True)["wall_seconds_this_call"] >= 0
    assert {p: p.read_bytes() for p in written} == written


def test_report_leaves_out_runs_saved_with_another_recipe(tasks_dir, tmp_path):
    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir), out_dir=str(tmp_path / "out"), tasks=["gc_task"], seeds=[0, 1], modes=["kmer"]
    )
    run_benchmark(replace(cfg, seeds=[0], max_train=40), log=lambda m: None)  # seed 0 on fewer training rows
    run_benchmark(replace(cfg, seeds=[1]), log=lambda m: None)
    messages = []
    summary = run_benchmark(cfg, log=messages.append, report_only=True)
    assert summary["tasks"]["gc_task"]["modes"]["kmer"]["seeds"] == [1]
    assert any("gc_task kmer seed(s) [0]: saved with another recipe; left out" in m for m in messages)
    saved = json.loads((tmp_path / "out" / "runs" / "gc_task" / "kmer" / "seed0.json").read_text())
    assert saved["recipe"]["max_train"] == 40  # left in place, not deleted or rewritten


def test_report_only_matches_runs_of_the_default_model(tasks_dir, tmp_path):
    # no model named: the runs resolve the bundled weights, the report does not, and both must name the same model
    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir), out_dir=str(tmp_path / "out"), tasks=["gc_task"], seeds=[0], modes=["probe"]
    )
    run_benchmark(cfg, log=lambda m: None)
    messages = []
    summary = run_benchmark(cfg, log=messages.append, report_only=True)
    assert summary["tasks"]["gc_task"]["modes"]["probe"]["seeds"] == [0]
    assert not any("another recipe" in m for m in messages)
    # a call running another mode alone still writes the whole table: the saved probe runs beside its own
    messages = []
    summary = run_benchmark(replace(cfg, modes=["kmer"]), log=messages.append)
    assert summary["tasks"]["gc_task"]["modes"]["probe"]["seeds"] == [0]
    assert summary["tasks"]["gc_task"]["modes"]["kmer"]["seeds"] == [0]
    assert sorted(summary["config"]["modes"]) == ["kmer", "probe"]
    assert "HyenaDNA probing" in (tmp_path / "out" / "results.md").read_text()
    assert not any("another recipe" in m or "leaves out" in m for m in messages)
    # ... as --report-only writes it from the same runs
    reported = run_benchmark(replace(cfg, modes=["kmer", "probe"]), log=messages.append, report_only=True)
    assert reported["tasks"] == summary["tasks"]


def test_a_call_of_one_mode_names_saved_runs_it_cannot_report(tasks_dir, tmp_path):
    # the probe runs of a Hub model that is not on disk: a k-mer call fetches nothing, and says how to report them
    out = tmp_path / "out"
    probe_run = out / "runs" / "gc_task" / "probe" / "seed0.json"
    probe_run.parent.mkdir(parents=True)
    probe_run.write_text("{}")
    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir),
        out_dir=str(out),
        tasks=["gc_task"],
        seeds=[0],
        modes=["kmer"],
        model_name="hyenadna-tiny-1k-seqlen-d256",
    )
    messages = []
    summary = run_benchmark(cfg, log=messages.append)
    assert list(summary["tasks"]["gc_task"]["modes"]) == ["kmer"]
    assert any("leaves out the saved probe runs" in m and "--modes probe kmer writes" in m for m in messages)


def test_runs_of_other_weights_under_the_same_name_are_run_again(tasks_dir, tmp_path):
    # a model folder (or bundled name) whose weights were retrained keeps its name: its old runs must not count
    import shutil

    from safetensors.torch import load_file, save_file

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(FIXTURES / "tiny" / name, model_dir / name)
    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir),
        out_dir=str(tmp_path / "out"),
        tasks=["gc_task"],
        seeds=[0],
        modes=["probe", "kmer"],
        model_path=str(model_dir),
    )
    run_benchmark(cfg, log=lambda m: None)
    path = tmp_path / "out" / "runs" / "gc_task" / "probe" / "seed0.json"
    first = json.loads(path.read_text())["recipe"]["weights"]
    messages = []
    run_benchmark(cfg, log=messages.append)
    assert not any("another recipe" in m for m in messages)  # same weights: reused

    weights = load_file(model_dir / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 0.01
    save_file(weights, model_dir / "model.safetensors")
    messages = []
    summary = run_benchmark(cfg, log=messages.append, report_only=True)
    assert "probe" not in summary["tasks"]["gc_task"]["modes"]  # the old weights' run is left out of the report
    assert summary["tasks"]["gc_task"]["modes"]["kmer"]["seeds"] == [0]  # the k-mer model has no weights to change
    assert any("gc_task probe seed(s) [0]: saved with another recipe; left out" in m for m in messages)
    messages = []
    run_benchmark(cfg, log=messages.append)
    assert any("gc_task probe seed 0: saved with another recipe; running it again" in m for m in messages)
    second = json.loads(path.read_text())["recipe"]["weights"]
    assert second != first and len(second) == 16


def test_parallel_workers_save_the_same_runs_as_one_process(tasks_dir, tmp_path, monkeypatch):
    import torch

    import hyenadna.benchmark.runner as runner

    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir),
        out_dir=str(tmp_path / "one"),
        seeds=[0, 1],
        modes=["kmer", "finetune"],
        epochs=1,
        finetune_lrs=[1e-3],
        model_path=str(FIXTURES / "tiny"),
    )
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run_benchmark(cfg, log=lambda m: None)
        torch.set_num_threads(2)  # shared out: one thread per worker, as above
        # the spawned workers import the module afresh: a run in this process would fail
        monkeypatch.setattr(runner, "_run_one", lambda *a: pytest.fail("ran in the parent process"))
        lines = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            two = run_benchmark(replace(cfg, out_dir=str(tmp_path / "two")), log=lines.append, workers=2)
    finally:
        torch.set_num_threads(threads)
    assert len(lines) == 8  # 2 tasks x 2 modes x 2 seeds, each logged as it finished
    # the workers' warnings reach the parent's (the validation split of 6 rows), where they showed as Python's
    # "file.py:224: UserWarning" lines on the workers' stderr, past the command line's own format
    small = [
        w for w in caught if "the validation split, which chooses the epoch kept, has only 6 rows" in str(w.message)
    ]
    assert len(small) == 4 and all(w.category is UserWarning and w.filename.endswith("runner.py") for w in small)
    for name in ("gc_task", "promoter_tata"):
        for mode in ("kmer", "finetune"):
            for seed in (0, 1):
                a, b = (
                    json.loads((tmp_path / d / "runs" / name / mode / f"seed{seed}.json").read_text())
                    for d in ("one", "two")
                )
                assert a["test"] == b["test"] and a["selected"] == b["selected"] and a["recipe"] == b["recipe"]
    assert (
        one["tasks"]["gc_task"]["modes"]["finetune"]["metrics"]
        == two["tasks"]["gc_task"]["modes"]["finetune"]["metrics"]
    )


def test_progress_counts_runs_and_estimates_the_rest_by_mode():
    from hyenadna.benchmark.runner import _Progress

    jobs = [("t", "kmer", 0), ("t", "scratch", 0), ("t", "kmer", 1), ("t", "scratch", 1)]
    progress = _Progress(jobs, {"kmer": [10.0], "scratch": []}, workers=2)

    def res(mode, seconds):
        return {"task": "t", "mode": mode, "seed": 0, "metric": "mcc", "test": {"mcc": 0.5}, "seconds": seconds}

    first = progress.line(res("kmer", 20.0))
    assert first.startswith("[1/4] t ") and "ETA" not in first  # no scratch run timed yet: no guess
    assert first.count("mcc 0.500") == 1  # the task's metric, and MCC beside it only when it is another
    f1_task = {**res("kmer", 1.0), "metric": "f1", "test": {"f1": 0.7, "mcc": 0.4}}
    assert "f1 0.700 mcc 0.400 (1 s)" in _Progress(jobs, {}, workers=1).line(f1_task)
    second = progress.line(res("scratch", 3000.0))
    assert second.startswith("[2/4]") and second.endswith("; ETA 25 min")  # (15 s + 3000 s) / 2 workers
    progress.line(res("kmer", 15.0))
    assert "ETA" not in progress.line(res("scratch", 10.0))  # the last run: nothing left


def test_ctrl_c_stops_the_workers_cleanly(tasks_dir, tmp_path):
    """Ctrl-C during a run with --workers: exit 130, the workers' warnings in the command line's format, and no
    "There appear to be 2 leaked semaphore objects" from Python's resource tracker (tqdm's lock in each worker, a
    semaphore the terminated workers never unregistered)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    args = ["--tasks-dir", str(tasks_dir), "--tasks", "gc_task", "--modes", "finetune", "--seeds", "0", "1"]
    args += ["--epochs", "200", "--patience", "200", "--finetune-lrs", "1e-3", "--workers", "2"]
    cmd = [sys.executable, "-m", "hyenadna.cli", "benchmark", *args, "--model", str(FIXTURES / "tiny")]
    proc = subprocess.Popen([*cmd, "--out", str(out), "--threads", "2"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("partial/gc_task/finetune/*/*"))) < 2:
        time.sleep(0.1)  # both workers are training (each saves its state after an epoch)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err and "leaked" not in err, err
    assert "hyenadna benchmark: warning: the validation split" in err and "UserWarning" not in err, err


def test_workers_spread_over_a_nodes_gpus(monkeypatch):
    """--workers N --device cuda: worker k on cuda:(k mod GPUs), not all on cuda:0; an explicit device is kept."""
    import torch

    from hyenadna.benchmark.runner import worker_devices

    assert worker_devices("cpu", 3) == ["cpu"] * 3
    if not torch.cuda.is_available():
        assert worker_devices("auto", 2) == ["auto"] * 2  # a CPU machine: nothing to spread
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert worker_devices("cuda", 5) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]
    assert worker_devices("auto", 2) == ["cuda:0", "cuda:1"]
    assert worker_devices("cuda:2", 3) == ["cuda:2"] * 3


def test_compare_models_pairs_two_tables_seed_by_seed(tmp_path):
    """benchmarks/compare_models.py: model B minus model A per column, paired by seed, and a refusal to pair tables
    whose k-mer columns (the same rows in both) differ."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("compare_models", REPO / "benchmarks" / "compare_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def mode(values):
        return {"seeds": [0, 1, 2], "metrics": {"mcc": {"mean": sum(values) / 3, "values": values}}}

    def table(finetune, kmer=(0.1, 0.2, 0.3)):
        return {"tasks": {"t": {"metric": "mcc", "modes": {"kmer": mode(list(kmer)), "finetune": mode(finetune)}}}}

    text = mod.compare(table([0.30, 0.40, 0.50]), table([0.32, 0.43, 0.49]), ("1k", "16k"))
    assert "| t | mcc | 40.0 / 41.3 / +1.3 ± 2.1 |" in text  # differences +2, +3, -1 points
    assert "16k ahead of 1k on 1 of 1 tasks by the mean (0 in every seed; behind in every seed on 0)" in text
    text = mod.compare(table([0.3, 0.4, 0.5]), table([0.2, 0.3, 0.4]), ("a", "b"))
    assert "-10.0 ± 0.0 −" in text and "behind in every seed on 1" in text
    mod.plot(table([0.3, 0.4, 0.5]), table([0.2, 0.3, 0.4]), ("a", "b"), tmp_path / "vs.png")
    assert (tmp_path / "vs.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="k-mer column differs"):
        mod.compare(table([0.3, 0.4, 0.5]), table([0.3, 0.4, 0.5], kmer=(0.1, 0.2, 0.4)), ("a", "b"))
    # one column only: the others are left out of the table
    both = {"seeds": [0, 1, 2], "metrics": {"mcc": {"mean": 0.2, "values": [0.1, 0.2, 0.3]}}}
    a, b = table([0.3, 0.4, 0.5]), table([0.2, 0.3, 0.4])
    for t in (a, b):
        t["tasks"]["t"]["modes"]["scratch"] = both
    assert "fine-tuned" in mod.compare(a, b, ("a", "b")) and "not pretrained" in mod.compare(a, b, ("a", "b"))
    text = mod.compare(a, b, ("a", "b"), columns=("scratch",))
    assert "fine-tuned" not in text and "| t | mcc | 20.0 / 20.0 / +0.0 ± 0.0 |" in text
    # a table with fewer seeds: both means are over the seeds both have run, as the difference is
    b["tasks"]["t"]["modes"]["scratch"] = {"seeds": [0, 1], "metrics": {"mcc": {"mean": 0.2, "values": [0.1, 0.3]}}}
    assert "| t | mcc | 15.0 / 20.0 / +5.0 ± 7.1 (n=2) |" in mod.compare(a, b, ("a", "b"), columns=("scratch",))
    # ... and one whose k-mer column has run fewer seeds (a partial re-run) pairs on those seeds
    b["tasks"]["t"]["modes"]["kmer"] = {"seeds": [0, 1], "metrics": {"mcc": {"mean": 0.15, "values": [0.1, 0.2]}}}
    assert "(n=2)" in mod.compare(a, b, ("a", "b"), columns=("scratch",))
    one_seed = {"seeds": [0], "metrics": {"mcc": {"mean": 0.15, "values": [0.15]}}}
    assert "| t | mcc | 10.0 / 15.0 / +5.0 (n=1) |" in mod.compare(a, {"tasks": {"t": {**b["tasks"]["t"], "modes": {
        "scratch": one_seed}}}}, ("a", "b"), columns=("scratch",))  # fmt: skip
    b["tasks"]["t"]["modes"]["kmer"]["metrics"]["mcc"]["values"] = [0.1, 0.25]
    with pytest.raises(ValueError, match="k-mer column differs"):
        mod.compare(a, b, ("a", "b"), columns=("scratch",))
    b["tasks"]["t"]["modes"]["kmer"] = a["tasks"]["t"]["modes"]["kmer"]
    # a column whose recipe differs (the not-pretrained grid) is left out by default, named, and compared on request
    a["config"] = {"scratch_lrs": [0.001, 0.003], "finetune_lrs": [0.0001, 0.001]}
    b["config"] = {"scratch_lrs": [0.0003, 0.001], "finetune_lrs": [0.0001, 0.001]}
    text = mod.compare(a, b, ("a", "b"))
    assert "fine-tuned: a / b" in text and "not pretrained: a / b" not in text
    assert "not pretrained: left out, its recipes differ (scratch_lrs [0.001, 0.003] against [0.0003, 0.001])" in text
    text = mod.compare(a, b, ("a", "b"), columns=("scratch",))
    assert "not pretrained: a / b" in text and "not pretrained: the recipes differ (scratch_lrs" in text
    # the not-pretrained epochs and patience compare as the runs used them, however the table asked for them
    asked = {"epochs": 3, "patience": 2, "scratch_epochs": 20, "scratch_patience": 3}
    assert not mod.recipe_differences({"config": asked}, {"config": {"epochs": 3, "patience": 3, "scratch_epochs": 20}},
                                      "scratch")  # fmt: skip
    assert not mod.recipe_differences({"config": {"epochs": 3, "patience": 2}}, {"config": {"epochs": 3, "patience": 2,
                                      "scratch_epochs": 6}}, "scratch")  # fmt: skip
    assert mod.recipe_differences({"config": {"epochs": 3, "patience": 2}}, {"config": asked}, "scratch") == {
        "scratch_epochs": (6, 20), "scratch_patience": (2, 3)}  # fmt: skip
    assert mod.recipe_differences({"config": {"epochs": 3, "patience": 2}}, {"config": asked}, "finetune") == {}


def test_scratch_diagnosis_reproduces_the_benchmarks_not_pretrained_run(tasks_dir, tmp_path, monkeypatch):
    """benchmarks/scratch_diagnosis.py trains the not-pretrained model on the benchmark's rows, seed and validation
    split: with the recipe's rate and epochs it gives the benchmark run's own history, epoch for epoch."""
    import importlib.util
    import sys

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("scratch_diagnosis", REPO / "benchmarks" / "scratch_diagnosis.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "diag.json"
    argv = ["scratch_diagnosis.py", "--task", "gc_task", "--tasks-dir", str(tasks_dir), "--model",
            "hyenadna-tiny-1k-d256-grch37", "--seed", "1", "--lr", "1e-3", "--epochs", "2", "--batch-size", "8",
            "--threads", "1", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    mod.main()
    diag = json.loads(out.read_text())
    assert set(diag["random_feature_probe"]) == {"0.01", "0.1", "1.0"}
    (run,) = diag["runs"]
    assert [h["epoch"] for h in run["history"]] == [1, 2]  # no early stopping: every epoch runs

    cfg = BenchmarkConfig.quick(
        out_dir=tmp_path / "bench", tasks_dir=tasks_dir, model_name="hyenadna-tiny-1k-d256-grch37", batch_size=8,
        scratch_lrs=[1e-3], scratch_epochs=2, patience=2,
    )  # fmt: skip
    task = discover_tasks(tasks_dir, ["gc_task"])[0].subsample(cfg.max_train, cfg.max_test, seed=0)
    bench = run_finetune(task, 1, cfg, pretrained=False)
    for ours, theirs in zip(run["history"], bench["history"], strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6)
        assert ours["val_mcc"] == pytest.approx(theirs["val_mcc"], abs=1e-9)


def test_scratch_diagnosis_max_train_kmer_reference_and_plot(tasks_dir, tmp_path, monkeypatch):
    """--max-train picks the rows (0: every row), --kmer keeps the k-mer model's validation score only, a run with
    no rate trains nothing, and --plot draws the saved runs."""
    import importlib.util
    import sys

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("scratch_diagnosis", REPO / "benchmarks" / "scratch_diagnosis.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = ["scratch_diagnosis.py", "--task", "gc_task", "--tasks-dir", str(tasks_dir), "--model",
            "hyenadna-tiny-1k-d256-grch37", "--no-probe"]  # fmt: skip
    for rows, want in (("40", 40), ("0", 60)):
        out = tmp_path / f"diag{rows}.json"
        monkeypatch.setattr(sys, "argv", [*base, "--max-train", rows, "--kmer", "--lr", "--out", str(out)])
        mod.main()
        diag = json.loads(out.read_text())
        assert diag["train_rows"] + diag["val_rows"] == want and diag["runs"] == []
        assert set(diag["kmer"]) == {"val_score", "metric", "selected"} and diag["kmer"]["metric"] == "f1"
    trained = tmp_path / "trained.json"
    monkeypatch.setattr(
        sys, "argv", [*base, "--max-train", "40", "--lr", "1e-3", "--epochs", "1", "--out", str(trained)]
    )
    mod.main()
    assert [h["epoch"] for h in json.loads(trained.read_text())["runs"][0]["history"]] == [1]
    monkeypatch.setattr(sys, "argv", ["scratch_diagnosis.py", "--plot", str(tmp_path / "c.png"), str(trained)])
    mod.main()
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_long_range_copy_scores_each_half_and_learns_a_copy_in_reach(tmp_path):
    """benchmarks/long_range_copy.py: the copy half starts exactly ``lag`` tokens in, and the training loop learns a
    copy within the short convolution's reach (lag 2), while the random half stays at chance."""
    import importlib.util
    import math
    from types import SimpleNamespace

    import torch

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("long_range_copy", REPO / "benchmarks" / "long_range_copy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    lag = 5
    ids = mod.copy_batch(np.random.default_rng(0), 3, lag)
    assert ids.shape == (3, 2 * lag) and torch.equal(ids[:, :lag], ids[:, lag:])

    def oracle(inputs):  # uniform over the 4 bases, except certain of the base lag back wherever there is one
        logits = torch.full((*inputs.shape, 16), -1e9)
        logits[..., 7:11] = 0.0
        for t in range(lag - 1, inputs.shape[1]):
            logits[:, t, :] = -1e9
            logits[torch.arange(len(inputs)), t, ids[:, t + 1 - lag]] = 0.0
        return SimpleNamespace(logits=logits)

    first, copy = mod.half_nlls(oracle, ids, lag)
    assert first.item() == pytest.approx(math.log(4)) and copy.item() == pytest.approx(0.0, abs=1e-6)

    run = mod.train_copy(2, steps=60, tokens_per_step=1024, l_max=66, lr=3e-3, eval_every=30)
    assert [h["step"] for h in run["history"]] == [30, 60]
    assert run["history"][-1]["copy_nll"] < 0.5 < 1.3 < run["history"][-1]["first_half_nll"]  # 0.05 when written
    row = mod.table([run]).splitlines()[-1]
    assert row.startswith("| 66 | 2 | 5 | 256 x 3 | 60 | - / - / - |") and "| 30 |" in row  # below 1.3 at step 30

    # geometric filter bands (HyenaConfig.filter_geometric_bands) after the published ones, named in the table, as
    # are the runs of commit 37fabb7, whose 16 geometric bands replaced the published ones
    run = mod.train_copy(2, steps=2, tokens_per_step=64, l_max=66, eval_every=2, geometric_bands=3)
    assert run["geometric_bands"] == 3 and "| 66 | 2 | 5 + 3 geometric |" in mod.table([run])
    old = {**run, "emb_dim": 33, "bands": "geometric"}
    del old["geometric_bands"]
    assert "| 33 (t + 16 geometric, no linear) |" in mod.table([old])


def test_runs_saved_before_early_stopping_waited_for_chance_are_kept_only_where_it_never_applied(tasks_dir, tmp_path):
    from hyenadna.benchmark.runner import _pending, recipe_matches, run_recipe

    cfg = BenchmarkConfig.quick(tasks_dir=str(tasks_dir), out_dir=str(tmp_path / "out"), tasks=["gc_task"])
    cfg = replace(cfg, modes=["scratch"], seeds=[0, 1])
    recipe = run_recipe(cfg, "scratch")
    old = {k: v for k, v in recipe.items() if k != "patience_from"}
    grids = {  # seed 0: every rate beat chance, so the rule never applied; seed 1: one rate stopped at chance
        0: [{"lr": 3e-4, "val_mcc": 0.2}, {"lr": 1e-3, "val_mcc": 0.01}],
        1: [{"lr": 3e-4, "val_mcc": 0.2}, {"lr": 1e-3, "val_mcc": 0.0}],
    }
    for seed, grid in grids.items():
        path = tmp_path / "out" / "runs" / "gc_task" / "scratch" / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"recipe": old, "lr_grid": grid, "seconds": 1.0}))
    messages = []
    jobs, _ = _pending(cfg, discover_tasks(tasks_dir, ["gc_task"]), tmp_path / "out", messages.append)
    assert [(task.name, mode, seed) for task, mode, seed in jobs] == [("gc_task", "scratch", 1)]
    assert messages == [
        "gc_task scratch seed 1: saved before early stopping waited for chance, and a learning rate stopped at "
        "chance; running it again"
    ]
    assert recipe_matches({"recipe": recipe, "lr_grid": grids[1]}, recipe)  # saved under the rule: kept as it is
    assert not recipe_matches({"recipe": {**old, "patience": 6}, "lr_grid": grids[0]}, recipe)  # another recipe
    assert not recipe_matches({"recipe": old}, recipe)


def test_the_not_pretrained_model_can_stop_on_its_own_patience(tasks_dir, tmp_path, monkeypatch):
    """--scratch-patience changes the not-pretrained runs' recipe and stopping only; unset, their recipe is what it
    was, so runs saved before the option existed are kept."""
    from hyenadna.benchmark.report import markdown_table
    from hyenadna.benchmark.runner import run_recipe
    from hyenadna.finetune import HyenaDNAFineTuningModel

    cfg = BenchmarkConfig.quick(  # the quick profile's earlier schedules, where the two patiences differ
        tasks_dir=str(tasks_dir), out_dir=str(tmp_path), model_path=str(FIXTURES / "tiny"), epochs=3, patience=2,
        scratch_epochs=6,
    )  # fmt: skip
    own = replace(cfg, scratch_epochs=20, scratch_patience=3)
    assert run_recipe(cfg, "scratch")["patience"] == cfg.patience == 2
    assert run_recipe(replace(cfg, scratch_patience=cfg.patience), "scratch") == run_recipe(cfg, "scratch")
    assert run_recipe(own, "scratch")["patience"] == 3 and run_recipe(own, "scratch")["epochs"] == 20
    assert run_recipe(own, "finetune") == run_recipe(cfg, "finetune")

    seen = []

    def train(self, *args, epochs, lr, patience, **kw):
        seen.append((epochs, patience))
        return [{"epoch": 1, "train_loss": 0.7, "val_mcc": 0.0}]

    monkeypatch.setattr(HyenaDNAFineTuningModel, "train", train)
    monkeypatch.setattr(HyenaDNAFineTuningModel, "predict", lambda self, seqs, **kw: (np.zeros(len(seqs), int), None))
    task = discover_tasks(tasks_dir, ["gc_task"])[0]
    run_finetune(task, 0, replace(own, finetune_lrs=[1e-4], scratch_lrs=[1e-3]), pretrained=False)
    run_finetune(task, 0, replace(own, finetune_lrs=[1e-4], scratch_lrs=[1e-3]), pretrained=True)
    assert seen == [(20, 3), (cfg.epochs, 2)]

    summary = {"config": asdict(own), "tasks": {}}
    assert "(not pretrained, random head, up to 20 epochs, patience 3)" in markdown_table(summary)
    assert "up to 6 epochs))" in markdown_table({"config": asdict(cfg), "tasks": {}})


def test_the_not_pretrained_model_can_count_patience_from_its_training_loss(tasks_dir, tmp_path, monkeypatch):
    """--scratch-patience-from "training loss" reaches the not-pretrained runs' training and recipe only; runs saved
    under the default rule are not reused for it, and the report and the table comparison say which rule ran."""
    import importlib.util

    from hyenadna.benchmark.report import markdown_table
    from hyenadna.benchmark.runner import recipe_matches, run_recipe
    from hyenadna.finetune import HyenaDNAFineTuningModel
    from hyenadna.training.patience import PATIENCE_FROM
    from tests.conftest import REPO

    cfg = BenchmarkConfig.quick(tasks_dir=str(tasks_dir), out_dir=str(tmp_path), model_path=str(FIXTURES / "tiny"))
    loss = replace(cfg, scratch_patience_from="training loss")
    assert run_recipe(cfg, "scratch")["patience_from"] == "above chance"
    assert run_recipe(loss, "scratch")["patience_from"] == "training loss"
    assert run_recipe(loss, "finetune") == run_recipe(cfg, "finetune")
    assert not recipe_matches({"recipe": run_recipe(cfg, "scratch")}, run_recipe(loss, "scratch"))

    seen = []

    def train(self, *args, patience_from, **kw):
        seen.append(patience_from)
        return [{"epoch": 1, "train_loss": 0.7, "val_mcc": 0.0}]

    monkeypatch.setattr(HyenaDNAFineTuningModel, "train", train)
    monkeypatch.setattr(HyenaDNAFineTuningModel, "predict", lambda self, seqs, **kw: (np.zeros(len(seqs), int), None))
    task = discover_tasks(tasks_dir, ["gc_task"])[0]
    for pretrained in (False, True):
        run_finetune(task, 0, replace(loss, finetune_lrs=[1e-4], scratch_lrs=[1e-3]), pretrained=pretrained)
    assert seen == ["training loss", "above chance"]

    assert "5% below the first's" in markdown_table({"config": asdict(loss), "tasks": {}})
    assert "below the first's" not in markdown_table({"config": asdict(cfg), "tasks": {}})
    spec = importlib.util.spec_from_file_location("compare_models", REPO / "benchmarks" / "compare_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    older = {k: v for k, v in asdict(cfg).items() if k != "scratch_patience_from"}  # tables before the option
    assert not mod.recipe_differences({"config": older}, {"config": asdict(cfg)}, "scratch")
    assert mod.recipe_differences({"config": older}, {"config": asdict(loss)}, "scratch") == {
        "scratch_patience_from": ("above chance", "training loss")
    }
    assert set(PATIENCE_FROM) == {"above chance", "training loss"}  # the CLI's choices


def test_an_interrupted_run_resumes_from_its_last_epoch_and_ends_as_an_uninterrupted_one(tasks_dir, tmp_path):
    """Runs last up to an hour: a killed one goes on from its learning rates' last epochs, with the same result."""

    class Killed(Exception):
        pass

    def cfg_for(out):
        return BenchmarkConfig(
            tasks_dir=str(tasks_dir),
            out_dir=str(out),
            tasks=["gc_task"],
            modes=["scratch"],
            seeds=[0],
            scratch_epochs=3,
            scratch_lrs=[1e-3, 3e-3],
            batch_size=16,
            model_path=str(FIXTURES / "tiny"),
        )

    run_benchmark(cfg_for(tmp_path / "whole"), log=lambda m: None)

    def kill(message):
        if "lr 0.003 epoch 2/3" in message:
            raise Killed  # the first rate has ended, the second has its epoch 1 saved

    out = tmp_path / "out"
    with pytest.raises(Killed):
        run_benchmark(cfg_for(out), log=kill)
    (partial,) = (out / "partial" / "gc_task" / "scratch").iterdir()
    assert sorted(p.name for p in partial.iterdir()) == ["lr0.001.pt", "lr0.003.pt"]
    assert (out / "partial" / ".gitignore").read_text().splitlines()[-1] == "*"  # never committed with the runs
    assert not (out / "runs").exists()

    lines = []
    run_benchmark(cfg_for(out), log=lines.append)
    whole, resumed = (
        json.loads((o / "runs/gc_task/scratch/seed0.json").read_text()) for o in (tmp_path / "whole", out)
    )
    saved = [m.split(": ", 1)[1].split(" (")[0] for m in lines if "s of it saved)" in m]
    assert saved == ["lr 0.001 ended at epoch 3", "lr 0.003 resumes after epoch 1"]
    assert [m.split(": lr ")[1].split(":")[0] for m in lines if "epoch" in m and "saved)" not in m] == [
        "0.003 epoch 2/3",
        "0.003 epoch 3/3",
    ]
    assert [(r["lr"], r["after_epoch"]) for r in resumed.pop("resumed")] == [(1e-3, 3), (3e-3, 1)]
    for run in (whole, resumed):
        del run["seconds"], run["environment"]
    assert resumed == whole
    assert not partial.exists()


def test_fine_tune_replaces_a_finished_model_only_when_asked_and_never_other_files(tasks_dir, tmp_path, capsys):
    """A second run into --out replaced the finished model in silence, and `--out .` wrote our README.md over the
    folder's own."""
    args = ["fine-tune", str(tasks_dir / "gc_task"), "--epochs", "1", "--model", str(FIXTURES / "tiny")]
    assert main([*args, "--out", str(tmp_path / "m")]) == 0
    before = (tmp_path / "m" / "head.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "m"), "--seed", "1"]) == 1
    assert "holds a fine-tuned model; pass --overwrite to replace it" in capsys.readouterr().err
    assert (tmp_path / "m" / "head.safetensors").read_bytes() == before
    assert main([*args, "--out", str(tmp_path / "m"), "--seed", "1", "--overwrite"]) == 0
    assert (tmp_path / "m" / "head.safetensors").read_bytes() != before
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "README.md").write_text("mine")
    assert main([*args, "--out", str(tmp_path / "own"), "--overwrite"]) == 1
    assert "holds other files (README.md, ...)" in capsys.readouterr().err
    assert (tmp_path / "own" / "README.md").read_text() == "mine"


def test_fine_tune_command_resumes_a_killed_run(tasks_dir, tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file

    from hyenadna.finetune import HyenaDNAFineTuningModel

    def fine_tune(out):
        args = ["fine-tune", str(tasks_dir / "gc_task"), "--out", str(out), "--epochs", "2", "--patience", "2"]
        return main([*args, "--model", str(FIXTURES / "tiny")])

    assert fine_tune(tmp_path / "whole") == 0

    class Killed(Exception):
        pass

    train = HyenaDNAFineTuningModel.train

    def killed_in_epoch_2(self, *args, **kw):
        def on_epoch(row):
            if row["epoch"] == 2:
                raise Killed

        return train(self, *args, **kw, on_epoch=on_epoch)

    monkeypatch.setattr(HyenaDNAFineTuningModel, "train", killed_in_epoch_2)
    with pytest.raises(Killed):
        fine_tune(tmp_path / "out")
    assert (tmp_path / "out" / "training_state.pt").exists()
    monkeypatch.setattr(HyenaDNAFineTuningModel, "train", train)
    capsys.readouterr()
    assert fine_tune(tmp_path / "out") == 0
    assert "resuming from" in capsys.readouterr().err
    assert not (tmp_path / "out" / "training_state.pt").exists()
    for part in ("backbone/model.safetensors", "head.safetensors"):
        whole, resumed = (load_file(str(d / part)) for d in (tmp_path / "whole", tmp_path / "out"))
        assert whole.keys() == resumed.keys() and all(whole[k].equal(resumed[k]) for k in whole)


def test_schedule_ends_counts_rates_the_schedule_cut_while_improving(tmp_path):
    """benchmarks/schedule_ends.py: a rate whose best validation epoch is the schedule's last counts as cut; one
    stopped early, or best before the end, does not; the selected rate's loss trend is read from its history."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("schedule_ends", REPO / "benchmarks" / "schedule_ends.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def run(task, seed, epochs, best, losses):
        history = [{"epoch": i + 1, "train_loss": x} for i, x in enumerate(losses)]
        grid = [{"lr": lr, "epoch": e, "val_mcc": 0.1} for lr, e in zip((3e-4, 1e-3), best, strict=True)]
        return {"task": task, "seed": seed, "recipe": {"epochs": epochs}, "history": history, "lr_grid": grid,
                "selected": {"lr": 3e-4, "epoch": best[0]}}  # fmt: skip

    for i, r in enumerate([run("a", 0, 3, (3, 2), [0.7, 0.6, 0.5]), run("a", 1, 3, (1, 3), [0.7, 0.6, 0.65]),
                           run("b", 0, 3, (2, 2), [0.7, 0.6])]):  # fmt: skip
        path = tmp_path / "runs" / r["task"] / "scratch" / f"seed{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    assert [mod.schedule_end(r) for r in mod.load_runs(tmp_path, "scratch")][:2] == [
        {"rates": 2, "cut": 1, "selected_cut": True, "still_falling": True},
        {"rates": 2, "cut": 1, "selected_cut": False, "still_falling": False},  # loss rose in the last epoch
    ]
    lpft = run("a", 0, 2, (2, 1), [0.7, 0.6])
    lpft["history"].insert(0, {"epoch": 0, "train_loss": None})  # an LP-FT start: not a trained epoch
    assert mod.schedule_end(lpft)["still_falling"]
    text = mod.table({"x": mod.load_runs(tmp_path, "scratch")})
    assert "| a | 2 of 4 | 1 of 2 |" in text and "| b | 0 of 2 | 0 of 1 |" in text  # b stopped after 2 of 3
    assert "| all | **2 of 6** | **1 of 3** |" in text and "x: schedule of 3 epochs, 3 runs." in text
    assert "never left chance): x: 0 of 3." in text
    stuck = run("c", 0, 3, (1, 1), [0.70, 0.68, 0.69])  # never 5% below its first epoch: still at chance
    learnt = run("c", 1, 3, (3, 3), [0.70, 0.66, 0.60])
    assert mod.never_learned(stuck) and not mod.never_learned(learnt) and not mod.never_learned(lpft)
    assert "never left chance): y: 1 of 2 (c seed 0)." in mod.table({"y": [learnt, stuck]})
    assert "never left chance" not in mod.table({"y": [learnt, stuck]}, "finetune")  # pretrained: not from chance
    with pytest.raises(SystemExit, match="no saved finetune runs"):
        mod.load_runs(tmp_path, "finetune")


def test_schedule_rule_pairs_runs_and_reads_validation_not_test():
    """benchmarks/schedule_ends.py: the pre-written rule pairs runs by task and seed, counts the longer schedule's cut
    rates, and holds or fails on validation MCC alone, whichever way the test metric moves."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("schedule_ends", REPO / "benchmarks" / "schedule_ends.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def run(seed, epochs, best, val, test):
        grid = [{"lr": lr, "epoch": e, "val_mcc": val} for lr, e in zip((3e-4, 1e-3), best, strict=True)]
        return {"task": "a", "seed": seed, "recipe": {"epochs": epochs}, "lr_grid": grid, "val_mcc": val,
                "metric": "mcc", "test": {"mcc": test}}  # fmt: skip

    short = [run(0, 3, (3, 3), 0.30, 0.30), run(1, 3, (2, 3), 0.40, 0.30)]
    better_val = [run(0, 20, (9, 12), 0.36, 0.20), run(1, 20, (5, 7), 0.40, 0.25), run(2, 20, (4, 4), 0.9, 0.9)]
    text = mod.paired_validation(short, better_val)  # seed 2 has no shorter run: not paired, but its rates count
    assert "the 2 runs" in text and "higher in 1, equal in 1, lower in 0, mean +0.030" in text
    assert "test MCC moved the same way in 0 of 1" in text
    assert (
        "moved -10.0 to -5.0 points" in text
        and "schedule 0 of 6 (under a tenth)" in text
        and "Both hold so far" in text
    )
    assert "Both hold on all 2 runs of both arms." in mod.paired_validation(short, better_val[:2])  # every run in
    worse_val = [run(0, 20, (20, 12), 0.20, 0.60), run(1, 20, (5, 7), 0.40, 0.60)]
    text = mod.paired_validation(short, worse_val)
    assert "schedule 1 of 4 (not under a tenth)" in text and "lower on average" in text and "does not hold" in text
    assert mod.paired_validation(short, [run(5, 20, (1, 1), 0.5, 0.5)]) == "No run is in both folders.\n"


def test_backfill_adds_predictions_only_where_a_re_run_reproduces_the_saved_run(tasks_dir, tmp_path):
    """benchmarks/backfill_predictions.py: runs saved without predictions get the re-run's, byte for byte the ones a
    fresh run saves; a run whose re-run scores differently keeps none (they would belong to another model)."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("backfill", REPO / "benchmarks" / "backfill_predictions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    cfg = BenchmarkConfig(tasks_dir=str(tasks_dir), out_dir=str(out), seeds=[0, 1], modes=["kmer"], tasks=["gc_task"])
    run_benchmark(cfg, log=lambda m: None)
    paths = sorted(out.glob("runs/gc_task/kmer/seed*.json"))
    fresh = {p: json.loads(p.read_text()) for p in paths}
    for p, run in fresh.items():  # as saved before runs kept their predictions
        old = {k: v for k, v in run.items() if k not in ("test_predictions", "test_labels")}
        if p.name == "seed1.json":
            old["test"] = {**old["test"], "f1": old["test"]["f1"] - 0.01}  # not what a re-run gives
        p.write_text(json.dumps(old, indent=1))
    messages = []
    assert mod.backfill(out, ["kmer"], log=messages.append) == {"added": 1, "differ": 1, "had": 0, "elsewhere": 0}
    seed0, seed1 = (json.loads(p.read_text()) for p in paths)
    assert seed0["test_predictions"] == fresh[paths[0]]["test_predictions"]
    assert seed0["test_labels"] == fresh[paths[0]]["test_labels"] and "predictions_from" in seed0
    assert "test_predictions" not in seed1 and "seed1.json: the re-run's test metrics differ" in messages[0]
    assert mod.backfill(out, ["kmer"], log=messages.append) == {"added": 0, "differ": 1, "had": 1, "elsewhere": 0}


def test_backfill_re_runs_a_trained_runs_selected_rate_alone(tasks_dir, tmp_path):
    """benchmarks/backfill_predictions.py, trained modes: the selected learning rate re-run alone trains the model the
    grid kept (each rate starts from the seed's own weights, data order and schedule), so its predictions are the
    ones the full run saved; a run whose history the re-run does not repeat keeps none."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("backfill", REPO / "benchmarks" / "backfill_predictions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir), out_dir=str(out), seeds=[0, 1], modes=["finetune", "scratch"], tasks=["gc_task"],
        epochs=2, scratch_lrs=[1e-5, 3e-3], finetune_lrs=[1e-3, 1e-4], batch_size=16, model_path=str(FIXTURES / "tiny"),
    )  # fmt: skip
    run_benchmark(cfg, log=lambda m: None)
    paths = sorted(out.glob("runs/gc_task/*/seed*.json"))
    fresh = {p: json.loads(p.read_text()) for p in paths}
    assert any(r["selected"]["lr"] != r["lr_grid"][0]["lr"] for r in fresh.values())  # a rate after another's run
    tampered = out / "runs" / "gc_task" / "scratch" / "seed1.json"
    for p, run in fresh.items():
        old = {k: v for k, v in run.items() if k not in ("test_predictions", "test_labels")}
        if p == tampered:
            old["history"] = [{**old["history"][0], "val_mcc": old["history"][0]["val_mcc"] + 0.5}, *old["history"][1:]]
        p.write_text(json.dumps(old, indent=1))
    messages, work = [], tmp_path / "work"
    counts = mod.backfill(out, ["finetune", "scratch"], messages.append, work=work)
    assert counts == {"added": 3, "differ": 1, "had": 0, "elsewhere": 0}
    for p in paths:
        run = json.loads(p.read_text())
        if p == tampered:
            assert "test_predictions" not in run
        else:
            assert run["test_predictions"] == fresh[p]["test_predictions"] and "selected rate alone" in run[
                "predictions_from"]  # fmt: skip
    assert any(f"{tampered}: the re-run's training differs" in m for m in messages)
    # the re-runs stay in ``work``: a second backfill reads them back (a killed one resumes them) instead of training
    kept = paths[0]
    kept.write_text(json.dumps({k: v for k, v in json.loads(kept.read_text()).items() if k != "test_predictions"}))
    finished = {p: p.stat().st_mtime_ns for p in work.glob("*/runs/gc_task/*/seed*.json")}
    assert len(finished) == 4 and mod.backfill(out, ["finetune"], work=work)["added"] == 1
    assert json.loads(kept.read_text())["test_predictions"] == fresh[kept]["test_predictions"]
    assert {p: p.stat().st_mtime_ns for p in work.glob("*/runs/gc_task/*/seed*.json")} == finished  # not re-trained
    # a run saved on another CPU model is skipped: its float rounding was that CPU's (unless asked to try anyway)
    run = {k: v for k, v in json.loads(kept.read_text()).items() if k != "test_predictions"}
    kept.write_text(json.dumps({**run, "environment": {**run["environment"], "cpu": "AMD EPYC (family 23 model 1)"}}))
    messages = []
    assert mod.backfill(out, ["finetune"], messages.append, work=work) == {
        "added": 0, "differ": 0, "had": 1, "elsewhere": 1}  # fmt: skip
    assert "test_predictions" not in json.loads(kept.read_text())
    assert any("ran on AMD EPYC (family 23 model 1), this is" in m and "skipped" in m for m in messages)
    assert mod.backfill(out, ["finetune"], work=work, any_cpu=True)["added"] == 1


def test_compare_models_gives_the_test_rows_interval_where_both_tables_kept_predictions(tmp_path):
    import importlib.util

    from hyenadna.benchmark.bootstrap import encode_labels, paired_interval
    from hyenadna.metrics import classification_metrics
    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("compare_models", REPO / "benchmarks" / "compare_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    preds = {"a": [np.where(rng.random(400) < 0.6, y, 1 - y) for _ in range(3)]}
    preds["b"] = [np.where(rng.random(400) < 0.5, y, p) for p in preds["a"]]  # right where a was, and more
    tables = {}
    for side in ("a", "b"):
        values = [classification_metrics(y, p, 2)["mcc"] for p in preds[side]]
        mode = {"seeds": [0, 1, 2], "metrics": {"mcc": {"mean": float(np.mean(values)), "values": values}}}
        tables[side] = {"tasks": {"t": {"metric": "mcc", "modes": {"probe": mode}}}}
        for seed, p in enumerate(preds[side]):
            path = tmp_path / side / "runs" / "t" / "probe" / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            run = {"seed": seed, "test_predictions": encode_labels(p), "test_labels": encode_labels(y)}
            path.write_text(json.dumps(run))
    intervals = mod.row_intervals((tmp_path / "a", tmp_path / "b"), tables["a"], tables["b"])
    want = paired_interval(y, preds["b"], preds["a"], 2, "mcc")
    assert intervals == {("t", "probe"): want} and want[0] > 0
    text = mod.compare(tables["a"], tables["b"], ("a", "b"), intervals=intervals)
    assert f"[{100 * want[0]:+.1f}, {100 * want[1]:+.1f}] |" in text
    assert "the test rows' 95% interval above 0 on 1 and below on 0 of the 1 with one." in text
    (tmp_path / "a" / "runs" / "t" / "probe" / "seed2.json").write_text(json.dumps({"seed": 2}))  # saved before
    assert mod.row_intervals((tmp_path / "a", tmp_path / "b"), tables["a"], tables["b"]) == {}


def test_patience_rules_replays_saved_runs_under_another_rule():
    """benchmarks/patience_rules.py: a rate the other rule stops at the same epoch stands; one it stops earlier keeps
    the best of fewer epochs; one it would train past its saved epochs needs a run; one not saved leaves it open."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("patience_rules", REPO / "benchmarks" / "patience_rules.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def epochs(losses, scores):
        rows = zip(losses, scores, strict=True)
        return [{"epoch": i + 1, "train_loss": x, "val_mcc": s} for i, (x, s) in enumerate(rows)]

    # at chance (loss ~ln 2) with a lucky validation score at epoch 1: patience 2 from it stopped the run at epoch 3
    lucky = epochs([0.693, 0.692, 0.694], [0.2, 0.0, 0.1])
    # learning from epoch 2; best at 3, no gain after: stopped at epoch 5 under either rule
    learnt = epochs([0.693, 0.6, 0.5, 0.45, 0.44], [0.0, 0.1, 0.4, 0.3, 0.35])
    # the loss falling from epoch 2, validation above 0 only at epoch 4: counted from the loss, epochs 2-3 end it
    late = epochs([0.693, 0.6, 0.55, 0.5, 0.48, 0.47], [-0.1, -0.2, -0.15, 0.1, 0.05, 0.08])
    weak = epochs([0.693, 0.6, 0.5, 0.45, 0.44], [0.0, 0.01, 0.04, 0.03, 0.035])  # stopped at 5 under either rule

    def run(rates, selected):
        best = [max(h, key=lambda r: r["val_mcc"]) for _, h in rates]
        grid = [{"lr": lr, "epoch": b["epoch"], "val_mcc": b["val_mcc"], "history": h}
                for (lr, h), b in zip(rates, best, strict=True)]  # fmt: skip
        kept = next(g for g in grid if g["lr"] == selected)
        return {"task": "t", "seed": 0, "recipe": {"epochs": 20, "patience": 2}, "lr_grid": grid,
                "history": kept["history"], "selected": {"lr": selected, "epoch": kept["epoch"]},
                "val_mcc": kept["val_mcc"]}  # fmt: skip

    rule = "training loss"
    assert mod.stop_epoch(lucky, 2, "above chance") == 3 and mod.stop_epoch(late, 2, "above chance") == 6
    assert mod.stop_epoch(late, 2, rule) == 3 and mod.stop_epoch(lucky, 2, rule) is None
    assert mod.replay(run([(1e-3, learnt)], 1e-3), rule)["verdict"] == "unchanged"
    assert mod.replay(run([(1e-3, learnt), (3e-4, lucky)], 1e-3), rule)["verdict"] == "needs a run"
    assert mod.replay(run([(1e-3, learnt)], 1e-3), "above chance")["verdict"] == "unchanged"  # its own rule
    # the selected rate keeps its model when another stops earlier below it; the kept model moves when it was that one
    assert mod.replay(run([(1e-3, learnt), (3e-4, late)], 1e-3), rule)["verdict"] == "unchanged"
    moved = mod.replay(run([(1e-3, weak), (3e-4, late)], 3e-4), rule)
    assert moved["rates"] == [
        {"lr": 1e-3, "status": "same", "epoch": 3, "val_mcc": 0.04},
        {"lr": 3e-4, "status": "earlier", "epoch": 1, "val_mcc": -0.1},
    ]
    assert moved["verdict"] == "another kept model (validation MCC 0.040)"
    old = run([(1e-3, learnt), (3e-4, lucky)], 1e-3)
    del old["lr_grid"][1]["history"], old["lr_grid"][0]["history"]  # saved before every rate's epochs were kept
    assert [r["status"] for r in mod.replay(old, rule)["rates"]] == ["same", "not saved"]
    assert mod.replay(old, rule)["verdict"] == "undecided"
    # the re-run against the saved run: validation more than 0.1 higher and the kept epoch out of chance, in 4 of 5
    saved = [{**run([(3e-4, lucky)], 3e-4), "seed": i, "test": {"mcc": 0.0}, "metric": "mcc"} for i in range(5)]
    rerun = [{**run([(3e-4, learnt)], 3e-4), "seed": i, "test": {"mcc": 0.3}, "metric": "mcc"} for i in range(5)]
    assert mod.kept_left_chance(rerun[0]) and not mod.kept_left_chance(saved[0])
    assert "in 5 of 5 runs: 'training loss' becomes the default" in mod.paired(saved, rerun, rule)
    rerun[1:3] = [{**r, "history": saved[0]["history"], "selected": saved[0]["selected"]} for r in rerun[1:3]]
    assert "in 3 of 5 runs: 'training loss' does not become the default" in mod.paired(saved, rerun, rule)
    assert "2 runs: 1 unchanged, 1 needs a run." in mod.table(
        [mod.replay(run([(1e-3, learnt)], 1e-3), rule), mod.replay(run([(3e-4, lucky)], 3e-4), rule)], rule
    )


def test_zero_shot_splice_sites_name_donors_and_acceptors_in_the_transcripts_direction():
    """benchmarks/zero_shot_splice.py: on a minus-strand intron the donor is the genome's right end (AC, the reverse
    complement of GT) and the acceptor its left end (CT), the reverse of a plus-strand intron."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("zero_shot_splice", REPO / "benchmarks" / "zero_shot_splice.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.HELD_OUT = (0, 10_000)
    genome = list("A" * 10_000)
    genome[2100:2102], genome[2998:3000] = "GT", "AG"  # plus strand intron [2100, 3000)
    genome[5100:5102], genome[5998:6000] = "CT", "AC"  # minus strand intron [5100, 6000)
    txs = [
        {"gene": "p", "strand": "+", "exons": [(2000, 2100), (3000, 3100)]},
        {"gene": "m", "strand": "-", "exons": [(6000, 6100), (5000, 5100)]},  # 5' to 3': descending coordinates
    ]
    positives, introns, _ = mod.sites("".join(genome), txs)
    splice = positives["splice_dinucleotide"]
    assert {p: (v["site"], v["strand"]) for p, v in splice.items()} == {
        2100: ("donor", "+"), 2101: ("donor", "+"), 2998: ("acceptor", "+"), 2999: ("acceptor", "+"),
        5100: ("acceptor", "-"), 5101: ("acceptor", "-"), 5998: ("donor", "-"), 5999: ("donor", "-"),
    }  # fmt: skip
    assert sorted(positives["exon_boundary"]) == [2099, 3000, 5099, 6000] and len(introns) == 2


def test_zero_shot_markov_site_stats_score_the_sites_own_base():
    """benchmarks/zero_shot_splice.py --match-site matches the Markov log P of the site's own base given the bases
    before it: checked against the model's counts directly, and against scoring a window that ends at the site
    (an earlier version read the base after the site)."""
    import importlib.util

    from hyenadna.tokenizer import CharacterTokenizer
    from hyenadna.training.markov import MarkovModel
    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("zero_shot_splice", REPO / "benchmarks" / "zero_shot_splice.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    chrom = "".join(rng.choice(list("ACGT"), 2_000, p=[0.4, 0.1, 0.1, 0.4]))
    tok = CharacterTokenizer()
    markov = MarkovModel(2, 0.5).fit([tok.encode_bases(chrom).astype(np.int64)], False)
    positions = [100, 517, 1_234]
    mean, site = mod.markov_site_stats(markov, tok, chrom, positions, flank=16)
    code = {b: i for i, b in enumerate("ACGT")}
    for p, got, got_mean in zip(positions, site, mean, strict=True):
        ctx = code[chrom[p - 2]] * 4 + code[chrom[p - 1]]
        row = markov.counts[2][ctx]
        assert got == pytest.approx(np.log((row[code[chrom[p]]] + 0.5) / (row.sum() + 2.0)))
        ending = markov.log_probs(tok.encode_bases(chrom[p - 16 : p + 1])[None].astype(np.int64))
        assert got == pytest.approx(ending[0, -1])
        whole = markov.log_probs(tok.encode_bases(chrom[p - 16 : p + 17])[None].astype(np.int64))
        assert got_mean == pytest.approx(whole[0, 2:].mean())
    chrom_n = chrom[:500] + "N" + chrom[501:]
    assert np.isnan(mod.markov_site_stats(markov, tok, chrom_n, [510], flank=16)[1]).all()


def _benchmark_script(name: str):
    """A script of benchmarks/ loaded as a module, with that folder on the path for its sibling imports."""
    import importlib.util
    import sys

    from tests.conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return mod


def test_zero_shot_by_base_names_minus_strand_bases_as_the_transcript_reads_them(tmp_path):
    """benchmarks/zero_shot_by_base.py: a minus-strand acceptor's genome C is the transcript's G at -1, its T the A at
    -2 (and a donor's A the T at +2); each cell keeps a pair's positive and control together. Also the VCF reader
    behind zero_shot_splice.py --exclude (1-based POS to 0-based positions)."""
    import importlib.util

    import pandas as pd

    from tests.conftest import REPO

    mod = _benchmark_script("zero_shot_by_base")
    rows = [  # (pair, label, ref, site, intron strand)
        (0, 1, "A", "acceptor", "+"), (0, 0, "A", "acceptor", "+"),
        (1, 1, "C", "acceptor", "-"), (1, 0, "C", "acceptor", "-"),
        (2, 1, "T", "acceptor", "-"), (2, 0, "T", "acceptor", "-"),
        (3, 1, "A", "donor", "-"), (3, 0, "A", "donor", "-"),
    ]  # fmt: skip
    d = pd.DataFrame(rows, columns=["pair", "label", "ref", "site", "intron_strand"]).assign(
        **{"class": "splice_dinucleotide"}
    )
    got = {label: sorted(r["pair"].unique()) for label, r in mod.cells(d)}
    assert got == {
        "donor +2 (T), - strand intron": [3],
        "acceptor -2 (A), + strand intron": [0],
        "acceptor -2 (A), - strand intron": [2],
        "acceptor -1 (G), - strand intron": [1],
    }

    spec = importlib.util.spec_from_file_location("zero_shot_splice", REPO / "benchmarks" / "zero_shot_splice.py")
    splice = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(splice)
    vcf = tmp_path / "variants.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n20\t101\t.\tG\tA\n20\t101\t.\tG\tC\n20\t7\t.\tA\tT\n"
    )
    assert splice.vcf_positions(vcf) == {100, 6}


def test_zero_shot_shuffle_keeps_the_bases_before_the_site_and_their_composition():
    """benchmarks/zero_shot_shuffle.py: the shuffled context keeps its last ``keep`` bases in place and its base
    counts, and the same seed gives the same order (a site's three alleles see one shuffle)."""
    from collections import Counter

    mod = _benchmark_script("zero_shot_shuffle")
    ctx = "TTTTCCCCTTTCCCAG"
    out = mod.shuffled_context(ctx, 2, (0, 123))
    assert out.endswith("AG") and Counter(out) == Counter(ctx) and out != ctx
    assert out == mod.shuffled_context(ctx, 2, (0, 123)) and out != mod.shuffled_context(ctx, 2, (1, 123))


def test_zero_shot_composition_splits_the_gap_among_the_counts_that_make_it():
    """benchmarks/zero_shot_composition.py: a term that depends only on the T count before the site is all explained
    by the T count; the parts always sum to the gap; a term the label carries stays partly unexplained."""
    mod = _benchmark_script("zero_shot_composition")
    rng = np.random.default_rng(0)
    contexts, labels = [], []
    for k in range(400):
        label = k % 2
        p = [0.1, 0.3, 0.1, 0.5] if label else [0.25, 0.25, 0.25, 0.25]  # positives T-rich, as before an acceptor
        contexts.append("".join(rng.choice(list("ACGT"), 14, p=p)) + rng.choice(["AG", "TG"]))
        labels.append(label)
    labels = np.array(labels)
    refs, alts = ["A"] * 400, list(rng.choice(list("CGT"), 400))
    x, groups = mod.design(contexts, refs, alts, 2)
    assert groups[:4] == ["intercept", "C count", "G count", "T count"] and x.shape == (400, 4 + 1 + 2)
    t_count = np.array([c[:14].count("T") for c in contexts], dtype=float)
    parts = mod.explained_gap(x, groups, -0.05 * t_count, labels)
    assert parts["T count"] == pytest.approx(parts["gap"]) and parts["gap"] < -0.05
    assert abs(parts["unexplained"]) < 1e-9 and abs(parts["C count"]) < 1e-9
    noisy = -0.05 * t_count + 0.3 * labels + rng.normal(0, 0.01, 400)
    parts = mod.explained_gap(x, groups, noisy, labels)
    assert sum(v for k, v in parts.items() if k != "gap") == pytest.approx(parts["gap"])
    # the label's own +0.3: the counts, fitted without the label, absorb the part of it they correlate with, and
    # the rest stays unexplained
    assert 0.05 < parts["unexplained"] < 0.3
    # a term curved in the T count: the linear fit leaves part of its gap unexplained, the quadratic one none
    curved = -0.01 * t_count**2
    linear = mod.explained_gap(x, groups, curved, labels)
    xq, groups_q = mod.design(contexts, refs, alts, 2, fit="quadratic")
    assert groups_q.count("count curvature") == 6 and xq.shape == (400, x.shape[1] + 6)
    quadratic = mod.explained_gap(xq, groups_q, curved, labels)
    assert abs(linear["unexplained"]) > 1e-4 and abs(quadratic["unexplained"]) < 1e-9
    assert quadratic["count curvature"] != 0 and "count curvature" not in linear
    # each position one-hot: a term carried by the base at one position is all explained there, the T count's part
    # by T at every position, as the counts explain it
    at_3 = -0.2 * np.array([c[3] == "C" for c in contexts], dtype=float) - 0.05 * t_count
    xp, groups_p = mod.design(contexts, refs, alts, 2, fit="positions")
    assert groups_p.count("C by position") == 14 and "C count" not in groups_p
    by_position = mod.explained_gap(xp, groups_p, at_3, labels)
    t_gap = -0.05 * (t_count[labels == 1].mean() - t_count[labels == 0].mean())
    assert abs(by_position["unexplained"]) < 1e-9 and by_position["T by position"] == pytest.approx(t_gap)
    assert abs(mod.explained_gap(x, groups, at_3, labels)["unexplained"]) > 1e-4  # the counts cannot
    # the label as a feature: its share recovers the label's own +0.3 that the blind fit split with the counts, the
    # T count keeps its own part, and nothing is left unexplained
    xl, groups_l = mod.design(contexts, refs, alts, 2, labels=labels)
    assert groups_l[-1] == "label" and xl.shape == (400, x.shape[1] + 1)
    aware = mod.explained_gap(xl, groups_l, noisy, labels)
    assert aware["label"] == pytest.approx(0.3, abs=0.01) and abs(aware["unexplained"]) < 1e-9
    assert aware["T count"] == pytest.approx(t_gap, abs=0.01)


def test_zero_shot_composition_share_difference_is_paired():
    """--versus: the label share of term_a - term_b is term_a's share minus term_b's, on each resample as at the
    point, so the interval is the paired one; a difference only in the label's effect shows there in full."""
    mod = _benchmark_script("zero_shot_composition")
    rng = np.random.default_rng(1)
    n = 300
    labels = np.arange(n) % 2
    pairs = np.arange(n) // 2
    contexts = ["".join(rng.choice(list("ACGT"), 16, p=[0.2, 0.3, 0.1, 0.4] if lab else None)) for lab in labels]
    refs, alts = ["A"] * n, list(rng.choice(list("CGT"), n))
    x, groups = mod.design(contexts, refs, alts, 2, fit="positions", labels=labels)
    t_count = np.array([c[:14].count("T") for c in contexts], dtype=float)
    shared = -0.05 * t_count + rng.normal(0, 0.3, n)  # noise both scorers share, as two models of the same DNA
    term_a, term_b = shared + 0.2 * labels, shared + 0.1 * labels + rng.normal(0, 0.01, n)
    v, lo, hi = mod.share_difference(x, groups, term_a, term_b, labels, pairs)
    a = mod.gap_intervals(x, groups, term_a, labels, pairs)["label"]
    b = mod.gap_intervals(x, groups, term_b, labels, pairs)["label"]
    assert v == pytest.approx(a[0] - b[0]) and v == pytest.approx(0.1, abs=0.01)
    # paired: the shared noise cancels, so the difference is far tighter than either share's interval
    assert 0 < lo < hi and hi - lo < 0.2 * min(a[2] - a[1], b[2] - b[1])


def test_zero_shot_windows_pairs_two_runs_of_one_draw(tmp_path):
    """benchmarks/zero_shot_windows.py: two runs of the same draw are compared row for row, the change in AUROC has
    its interval over the same resampled pairs, and runs of different draws are refused."""
    import pandas as pd

    mod = _benchmark_script("zero_shot_windows")
    rng = np.random.default_rng(0)
    n = 400
    base = pd.DataFrame(
        {"pos": np.arange(n), "ref": "A", "alt": "C", "label": np.arange(n) % 2, "pair": np.arange(n) // 2}
    )
    base["site"] = np.where(np.arange(n) % 4 < 2, "donor", "acceptor")
    signal = base["label"].to_numpy() * 0.5 + rng.normal(0, 1, n)
    for name, score in (("short", rng.normal(0, 1, n)), ("long", signal)):
        (tmp_path / name).mkdir()
        base.assign(**{"minus_llr m": score}).to_csv(tmp_path / name / "scores.csv.gz", index=False)
    a, b = mod.paired_runs(tmp_path / "short", tmp_path / "long")
    lab, pairs = a["label"].to_numpy(), a["pair"].to_numpy()
    s, long_, d, lo, hi = mod.auroc_change(lab, a["minus_llr m"].to_numpy(), b["minus_llr m"].to_numpy(), pairs)
    assert d == pytest.approx(long_ - s) and 0 < lo < d < hi  # the longer run carries the label, the shorter not
    *_, d0, lo0, hi0 = mod.auroc_change(lab, a["minus_llr m"].to_numpy(), a["minus_llr m"].to_numpy(), pairs)
    assert d0 == lo0 == hi0 == 0  # a run against itself: no change in any resample
    (tmp_path / "other").mkdir()
    base.assign(pair=base["pair"][::-1].to_numpy(), **{"minus_llr m": signal}).to_csv(
        tmp_path / "other" / "scores.csv.gz", index=False
    )
    with pytest.raises(SystemExit, match="same matched pairs"):
        mod.paired_runs(tmp_path / "short", tmp_path / "other")


def test_zero_shot_composition_pools_draws_keeping_their_pairs_apart(monkeypatch, tmp_path):
    import pandas as pd

    mod = _benchmark_script("zero_shot_composition")
    draws = {
        "a": pd.DataFrame({"pos": [10, 20, 30, 40], "alt": ["A"] * 4, "pair": [5, 5, 9, 9], "label": [1, 0, 1, 0]}),
        "b": pd.DataFrame({"pos": [50, 60], "alt": ["C"] * 2, "pair": [5, 5], "label": [1, 0]}),
    }
    monkeypatch.setattr(mod, "plus_strand_acceptors", lambda path: (draws[path.name].copy(), "ACGT"))
    d, chrom = mod.pooled_acceptors([tmp_path / "a", tmp_path / "b"])
    assert d["pair"].tolist() == [0, 0, 1, 1, 2, 2] and chrom == "ACGT"  # b's pair 5 is not a's
    with pytest.raises(SystemExit, match="share an SNV"):
        mod.pooled_acceptors([tmp_path / "a", tmp_path / "a"])


@pytest.mark.parametrize(
    "flag, passed", [([], None), (["--no-keep-freed-memory"], False), (["--keep-freed-memory"], True)]
)
def test_fine_tune_command_passes_the_freed_memory_choice_on(tasks_dir, tmp_path, monkeypatch, flag, passed):
    from hyenadna.finetune import HyenaDNAFineTuningModel

    seen, train = [], HyenaDNAFineTuningModel.train

    def recorded(self, *args, **kw):
        seen.append(kw["keep_freed_memory"])
        return train(self, *args, **kw)

    monkeypatch.setattr(HyenaDNAFineTuningModel, "train", recorded)
    args = ["fine-tune", str(tasks_dir / "gc_task"), "--out", str(tmp_path / "o"), "--epochs", "1", *flag]
    assert main([*args, "--model", str(FIXTURES / "tiny")]) == 0
    assert seen == [passed]


def test_train_ab_times_a_whole_fine_tuning_run_in_each_checkout(tasks_dir, tmp_path, monkeypatch):
    """benchmarks/train_ab.py --finetune: each side is a fresh process of its checkout fine-tuning the bundled model;
    the same checkout on both sides gives the same test MCC, and the report records both."""
    import sys

    from tests.conftest import REPO

    mod = _benchmark_script("train_ab")
    out = tmp_path / "ab.json"
    args = [str(REPO), str(REPO), "--finetune", "gc_task", "--tasks-dir", str(tasks_dir), "--epochs", "1"]
    monkeypatch.setattr(sys, "argv", ["train_ab.py", *args, "--rounds", "1", "--threads", "1", "--out", str(out)])
    mod.main()
    (row,) = json.loads(out.read_text())["rounds"]
    assert row["before"] > 0 and row["after"] > 0 and row["before mcc"] == row["after mcc"]


def test_processes_sharing_an_out_folder_leave_each_other_their_runs(tasks_dir, tmp_path, monkeypatch):
    """The same benchmark started in several processes (array jobs on a cluster, or twice by mistake) into one --out:
    a run another process holds is left to it and said so, not run twice side by side (whose training states and
    saved files the two would overwrite), and a run saved meanwhile is taken as it is."""
    import hyenadna.benchmark.runner as runner

    cfg = BenchmarkConfig(
        tasks_dir=str(tasks_dir), out_dir=str(tmp_path / "out"), tasks=["gc_task"], seeds=[0, 1], modes=["kmer"]
    )
    sub = load_task(tasks_dir / "gc_task").subsample(None, None, seed=0)
    lines = []
    with held_by_another_process(runner._partial_dir(tmp_path / "out", cfg, sub, "kmer", 1)) as child:
        summary = run_benchmark(cfg, log=lines.append)
    assert summary["tasks"]["gc_task"]["modes"]["kmer"]["seeds"] == [0]
    assert any(f"kmer      seed 1: left to the process running it (process {child.pid} on " in x for x in lines)
    assert any("1 run(s) were left to other processes working in" in x for x in lines)
    assert not (tmp_path / "out" / "runs" / "gc_task" / "kmer" / "seed1.json").exists()
    summary = run_benchmark(cfg, log=lambda m: None)  # the holder is gone: this process runs it
    assert summary["tasks"]["gc_task"]["modes"]["kmer"]["seeds"] == [0, 1]
    assert not (tmp_path / "out" / "partial").exists()  # k-mer runs leave no folder of their locks
    saved = json.loads((tmp_path / "out" / "runs" / "gc_task" / "kmer" / "seed1.json").read_text())
    # listed as pending, then found saved by another process once held: returned, not run again
    monkeypatch.setattr(runner, "_run_held", lambda *a: pytest.fail("ran a saved run again"))
    assert runner._run_one(cfg, tmp_path / "out", sub, "kmer", 1) == saved
