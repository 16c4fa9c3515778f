"""``hyenadna benchmark``: modes {probe, finetune, scratch, kmer} x tasks x seeds, resumable, with a report.

Protocol for every mode: split train 90/10 with the seed, choose hyperparameters (or the early-stopping epoch) on the
validation part, score the test split once. Metrics are computed on the whole test set with scikit-learn.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from hyenadna.benchmark.bootstrap import decode_labels, encode_labels, paired_interval
from hyenadna.benchmark.kmer import kmer_frequencies, make_kmer_model
from hyenadna.benchmark.tasks import Task, discover_tasks, split_problem
from hyenadna.metrics import chance_mcc, classification_metrics
from hyenadna.training.patience import PATIENCE_FROM_VALIDATION
from hyenadna.utils.io import atomic_write_text, ignored_folder

MODES = ("probe", "finetune", "scratch", "kmer")


@dataclass
class BenchmarkConfig:
    tasks_dir: str | None  # a folder of task folders; None with task folder paths in ``tasks``, or with ``suite``
    out_dir: str
    tasks: list[str] | None = None  # task names under tasks_dir (or in the suite), or task folder paths
    suite: str | None = None  # a suite fetched from the Hub by name (``hyenadna.benchmark.suites``), e.g. "nt"
    revision: str | None = None  # Hub revision of the suite's dataset
    local_files_only: bool = False  # Hub: use the cache only (models and suites)
    model_revision: str | None = None  # Hub revision of a model named by model_name
    hub_layout: str = "auto"  # a published model's Hub repository: "auto", "hf" or "lightning"
    modes: list[str] = field(default_factory=lambda: list(MODES))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    model_name: str | None = None
    model_path: str | None = None
    device: str = "cpu"
    batch_size: int = 16
    max_train: int | None = None
    max_test: int | None = None
    epochs: int = 10
    patience: int = 3
    # learning rates tried per mode; the one with the best validation MCC is kept (the test split is scored once)
    finetune_lrs: list[float] = field(default_factory=lambda: [1e-4, 3e-4, 1e-3])
    # the not-pretrained model starts from random weights and gets twice the epochs; its grid is the same: at 3e-3
    # and at 1e-3 with many rows it collapsed to the prior, where 3e-4 and 1e-4 learnt (docs/benchmarks, ocr)
    scratch_lrs: list[float] = field(default_factory=lambda: [1e-4, 3e-4, 1e-3])
    scratch_epochs: int | None = None  # default: twice ``epochs``
    scratch_patience: int | None = None  # default: ``patience``
    # when the not-pretrained model's epochs start to count against patience (training/patience.py)
    scratch_patience_from: str = PATIENCE_FROM_VALIDATION
    rc_augment: bool = False
    rc_average: bool = False
    head_init: str = "probe"  # the pretrained model's head; the not-pretrained model always starts from a random head
    probes: list[str] = field(default_factory=lambda: ["logreg", "mlp"])
    profile: str = "full"
    # a fingerprint of the pretrained weights, set by run_benchmark: saved probe and fine-tuned runs are reused only
    # for the same weights, so a model whose name stays while its weights change is run again, never mixed in
    weights: str | None = None

    def __post_init__(self) -> None:
        # a value given twice would run twice and count twice in a mean and its sd (two identical seeds: sd 0)
        for name in ("tasks", "modes", "seeds", "finetune_lrs", "scratch_lrs", "probes"):
            values = getattr(self, name) or []
            twice = sorted({str(v) for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"{name} names {', '.join(twice)} more than once: give each once")

    @classmethod
    def quick(cls, **kw) -> BenchmarkConfig:
        base = {
            "seeds": [0, 1, 2],  # one seed cannot tell a few points from noise
            "max_train": 1000,
            "max_test": 1000,
            # the full profile's schedules: re-running the 1k table, up to 10 and 20 epochs (patience 3) ended 2 of 108
            # rates at their best epoch where 3 and 6 had ended 31, and kept models no worse on validation
            # (docs/benchmarks/quick-3seeds, by a rule written before the runs)
            "epochs": 10,
            "patience": 3,
            # two rates of each full grid: the ends for the pretrained model; for the random one, the rate that
            # learnt ocr from every row and the one that validation chose over 3e-3 in 61 of 81 quick runs
            "finetune_lrs": [1e-4, 1e-3],
            "scratch_lrs": [3e-4, 1e-3],
            "scratch_epochs": 20,
            "probes": ["logreg"],
            "profile": "quick",
        }
        return cls(**{**base, **kw})


def _scored(task: Task, pred: np.ndarray) -> dict:
    """Test-set metrics, with how many classes the model predicted at all (a model that predicts one class for every
    test row has learnt nothing, and the report flags it rather than average it in silently), and the predictions
    and labels row by row, from which the report bootstraps the test set's share of a difference between columns."""
    return {
        "test": {
            **classification_metrics(task.test["label"], pred, task.num_classes),
            "predicted_classes": len(np.unique(np.asarray(pred))),
        },
        "test_predictions": encode_labels(pred),
        "test_labels": encode_labels(task.test["label"]),
    }


def _split(n: int, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return train_test_split(np.arange(n), test_size=0.1, random_state=seed, stratify=y)


def _primary(metrics: dict, task: Task) -> float:
    return metrics[task.metric]


def select_kmer(task: Task, seed: int) -> tuple[float, int, float]:
    """(best validation score, k, C) of the k-mer model on the seed's validation split; the test split is not read."""
    y = task.train["label"].to_numpy()
    tr, va = _split(len(y), y, seed)
    seqs = task.train["sequence"].tolist()
    best = None
    for k in (4, 6):
        X = kmer_frequencies(seqs, k)
        for C in (1e-5, 1e-4, 1e-3, 1e-2, 0.1):  # the grid of the task builder's baseline
            model = make_kmer_model(C, seed).fit(X[tr], y[tr])
            score = _primary(classification_metrics(y[va], model.predict(X[va]), task.num_classes), task)
            if best is None or score > best[0]:
                best = (score, k, C)
    return best


def run_kmer(task: Task, seed: int) -> dict:
    score, k, C = select_kmer(task, seed)
    model = make_kmer_model(C, seed).fit(kmer_frequencies(task.train["sequence"].tolist(), k), task.train["label"])
    pred = model.predict(kmer_frequencies(task.test["sequence"].tolist(), k))
    return {
        "selected": {"k": k, "C": C},
        "val_score": score,
        **_scored(task, pred),
    }


def run_probe(task: Task, seed: int, cfg: BenchmarkConfig, cache_dir: Path) -> dict:
    from hyenadna.probe import EmbeddingCache, make_probe
    from hyenadna.sdk import HyenaDNA, HyenaDNAConfig

    model = HyenaDNA(
        HyenaDNAConfig(
            model_name=cfg.model_name,
            model_path=cfg.model_path,
            device=cfg.device,
            batch_size=cfg.batch_size,
            rc_average=cfg.rc_average,
            progress=False,
        )
    )
    cache = EmbeddingCache(cache_dir)
    X = cache.get(model, task.train["sequence"].tolist(), f"{task.name}.train")
    X_test = cache.get(model, task.test["sequence"].tolist(), f"{task.name}.test")
    y = task.train["label"].to_numpy()
    tr, va = _split(len(y), y, seed)
    grid = {"logreg": [{"C": c} for c in (0.01, 0.1, 1.0)], "mlp": [{"alpha": a} for a in (1e-4, 1e-2)]}
    best = None
    for kind in cfg.probes:
        for params in grid[kind]:
            probe = make_probe(kind, seed, **params).fit(X[tr], y[tr])
            score = _primary(classification_metrics(y[va], probe.predict(X[va]), task.num_classes), task)
            if best is None or score > best[0]:
                best = (score, kind, params)
    score, kind, params = best
    probe = make_probe(kind, seed, **params).fit(X, y)
    return {
        "selected": {"probe": kind, **params},
        "val_score": score,
        "source": model.source,
        **_scored(task, probe.predict(X_test)),
    }


def run_finetune(
    task: Task, seed: int, cfg: BenchmarkConfig, pretrained: bool, log=None, checkpoints: Path | None = None
) -> dict:
    """Fine-tune at each learning rate of the mode's grid; keep the one whose best epoch scores the highest
    validation MCC and score only that model on test. The not-pretrained model is the same architecture, randomly
    initialised with the seed, with a random head (an LP-FT head on random features would be a probe, not training).
    ``log`` gets a line per epoch (a run takes up to an hour on one core). ``checkpoints``: a folder for each
    learning rate's training state, saved after every epoch, from which an interrupted run resumes exactly."""
    lrs = cfg.finetune_lrs if pretrained else cfg.scratch_lrs
    epochs, patience = (cfg.epochs, cfg.patience) if pretrained else scratch_schedule(vars(cfg))
    mode = "finetune" if pretrained else "scratch"
    y = task.train["label"].to_numpy()
    tr, va = _split(len(y), y, seed)
    seqs = task.train["sequence"].tolist()
    shape = None if pretrained else _pretrained_config(cfg)
    best, grid, resumed = None, [], []
    for lr in lrs:
        ft = _fine_tuning_model(task, seed, cfg, shape)
        state = None
        if checkpoints is not None:
            from hyenadna.training.finetune import read_checkpoint

            state = checkpoints / f"lr{lr:g}.pt"
            saved = read_checkpoint(state)
            if saved is not None:
                resumed.append({"lr": lr, "after_epoch": saved["epoch"], "seconds": saved["seconds"]})
                if log is not None:
                    done = "ended at" if saved["finished"] else "resumes after"
                    log(
                        f"    {task.name} {mode} seed {seed}: lr {lr:g} {done} epoch {saved['epoch']} "
                        f"({saved['seconds']:.0f} s of it saved)"
                    )

        def epoch_line(row: dict, lr: float = lr) -> None:
            log(
                f"    {task.name} {mode} seed {seed}: lr {lr:g} epoch {row['epoch']}/{epochs}: train loss "
                f"{row['train_loss']:.4f}, validation mcc {row['val_mcc']:.3f} ({row['seconds']:.0f} s, "
                f"{row['train_tokens_per_s']:,.0f} bases/s)"
            )

        history = ft.train(
            [seqs[i] for i in tr],
            y[tr],
            [seqs[i] for i in va],
            y[va],
            epochs=epochs,
            lr=lr,
            patience=patience,
            patience_from=PATIENCE_FROM_VALIDATION if pretrained else cfg.scratch_patience_from,
            rc_augment=cfg.rc_augment,
            rc_average=cfg.rc_average,
            head_init=cfg.head_init if pretrained else "random",
            seed=seed,
            progress=False,
            on_epoch=epoch_line if log is not None else None,
            checkpoint=state,
        )
        best_epoch = max(history, key=lambda h: h["val_mcc"])
        grid.append({"lr": lr, "epoch": best_epoch["epoch"], "val_mcc": best_epoch["val_mcc"], "history": history})
        if best is None or best_epoch["val_mcc"] > best[0]["val_mcc"]:
            best = (grid[-1], ft)
    chosen, ft = best
    pred, _ = ft.predict(task.test["sequence"].tolist(), rc_average=cfg.rc_average)
    return {
        **({"resumed": resumed} if resumed else {}),
        "selected": {"epoch": chosen["epoch"], "lr": chosen["lr"]},
        "val_mcc": chosen["val_mcc"],
        "history": chosen["history"],
        "lr_grid": grid,  # every rate's history, so that saved runs can be replayed under another stopping rule
        "source": ft.source if pretrained else f"random init (seed {seed})",
        **_scored(task, pred),
    }


def weights_fingerprint(model_path: str | Path) -> str:
    """The hash of every weight in a checkpoint, the one its cached embeddings are filed under."""
    from hyenadna.probe import model_fingerprint
    from hyenadna.sdk import HyenaDNAConfig, build_model

    return model_fingerprint(build_model(HyenaDNAConfig(model_path=str(model_path), progress=False))[0])


def _pretrained_config(cfg: BenchmarkConfig):
    from hyenadna.sdk import HyenaDNAConfig, build_model

    return build_model(HyenaDNAConfig(model_name=cfg.model_name, model_path=cfg.model_path))[0].config


def _fine_tuning_model(task: Task, seed: int, cfg: BenchmarkConfig, random_init_config=None):
    """The pretrained model with a new head, or (given its config) the same architecture initialised with the seed."""
    from hyenadna.finetune import HyenaDNAFineTuningModel
    from hyenadna.sdk import HyenaDNAConfig

    model = None
    if random_init_config is not None:
        from hyenadna.models.hyena_dna import HyenaDNALMHeadModel
        from hyenadna.utils.device import seeded

        with seeded(seed):
            model = HyenaDNALMHeadModel(random_init_config)
    config = HyenaDNAConfig(
        model_name=cfg.model_name,
        model_path=cfg.model_path,
        device=cfg.device,
        batch_size=cfg.batch_size,
        seed=seed,
        progress=False,
    )
    return HyenaDNAFineTuningModel(
        config,
        "classification",
        task.num_classes,
        label_names=task.label_names,
        model=model.to(config.device) if model is not None else None,
    )


def load_benchmark_tasks(cfg: BenchmarkConfig, log=print) -> list[Task]:
    """The tasks a config names: a Hub suite (fetched into the cache), task folders, or names under tasks_dir."""
    if cfg.suite:
        from hyenadna.benchmark.suites import fetch_suite, load_suite_tasks
        from hyenadna.hub import HubOptions

        hub = HubOptions(revision=cfg.revision, local_files_only=cfg.local_files_only)
        return load_suite_tasks(cfg.suite, fetch_suite(cfg.suite, hub, cfg.tasks, log=log))
    return discover_tasks(cfg.tasks_dir, cfg.tasks)


def run_recipe(cfg: BenchmarkConfig, mode: str) -> dict:
    """The settings that decide a run's result. A saved run is reused only when its recipe matches, so a changed
    grid or epoch count never mixes old runs into a new table."""
    recipe = {"max_train": cfg.max_train, "max_test": cfg.max_test}
    if mode in ("probe", "finetune", "scratch"):
        from hyenadna.hub import BUNDLED_MODEL  # no model named: the bundled one, before and after it is resolved

        recipe["model"] = cfg.model_name or (Path(cfg.model_path).name if cfg.model_path else BUNDLED_MODEL)
    if mode in ("probe", "finetune"):
        recipe["weights"] = cfg.weights
    if mode == "probe":
        recipe["probes"] = list(cfg.probes)
    if mode in ("finetune", "scratch"):
        # "patience_from": epochs count against patience from the first that beats chance (training/finetune.py)
        recipe.update(
            {"batch_size": cfg.batch_size, "patience": cfg.patience, "patience_from": PATIENCE_FROM_VALIDATION}
        )
        recipe.update({"rc_augment": cfg.rc_augment, "rc_average": cfg.rc_average})
    if mode == "finetune":
        recipe.update({"lrs": list(cfg.finetune_lrs), "epochs": cfg.epochs, "head_init": cfg.head_init})
    if mode == "scratch":
        epochs, patience = scratch_schedule(vars(cfg))
        recipe.update({"lrs": list(cfg.scratch_lrs), "epochs": epochs, "patience": patience})
        recipe["patience_from"] = cfg.scratch_patience_from
    return recipe


def saved_runs(folder: str | Path, mode: str) -> list[dict]:
    """Every saved run of ``mode`` in a benchmark output folder, task by task, seed by seed."""
    return [json.loads(p.read_text()) for p in sorted((Path(folder) / "runs").glob(f"*/{mode}/seed*.json"))]


def scratch_schedule(config: dict) -> tuple[int, int]:
    """The not-pretrained model's (epochs, patience) from a config's fields (``vars(cfg)``, or a results.json
    "config", older ones without the newer keys): unset, twice the epochs and the pretrained model's patience."""
    return config.get("scratch_epochs") or 2 * config.get("epochs", 0), config.get("scratch_patience") or config.get(
        "patience"
    )


def recipe_matches(run: dict, recipe: dict) -> bool:
    """Whether a saved run is what ``recipe`` produces. A run saved before early stopping waited for chance (its
    recipe has no "patience_from") still is where every learning rate of its grid reached a validation MCC above 0:
    the best epoch beat chance before each rate stopped, so every epoch it counted is one the new rule counts too,
    and the rates stopped, and chose, the same epochs. The others run again."""
    if run.get("recipe") == recipe:
        return True
    return _before_chance_rule(run.get("recipe"), recipe) and all(
        g["val_mcc"] > 0 for g in run.get("lr_grid", [{"val_mcc": 0.0}])
    )


def _before_chance_rule(saved: dict | None, recipe: dict) -> bool:
    """Whether ``saved`` is ``recipe`` as it was before early stopping waited for chance."""
    if saved is None or "patience_from" in saved or "patience_from" not in recipe:
        return False
    return {**saved, "patience_from": recipe["patience_from"]} == recipe


def _pending(cfg: BenchmarkConfig, tasks: list[Task], out: Path, log) -> tuple[list[tuple[Task, str, int]], dict]:
    """The runs not saved yet with this recipe, seed by seed (seed 0 of every task first: a partial table is whole),
    and the seconds of the saved ones per mode (for the ETA)."""
    subs = [task.subsample(cfg.max_train, cfg.max_test, seed=0) for task in tasks]
    problems = [f"{sub.name}: {p}" for sub in subs if (p := split_problem(sub.train["label"].to_numpy()))]
    if problems:  # before any run, in our words rather than scikit-learn's from inside a worker
        raise ValueError("; ".join(problems))
    jobs, saved = [], {mode: [] for mode in cfg.modes}
    for seed in cfg.seeds:
        for sub in subs:
            for mode in cfg.modes:
                path = _run_path(out, sub, mode, seed)
                if path.is_file():
                    run, recipe = json.loads(path.read_text()), run_recipe(cfg, mode)
                    if recipe_matches(run, recipe):
                        saved[mode].append(run["seconds"])
                        continue
                    why = "with another recipe"
                    if _before_chance_rule(run.get("recipe"), recipe):
                        why = "before early stopping waited for chance, and a learning rate stopped at chance"
                    log(f"{sub.name} {mode} seed {seed}: saved {why}; running it again")
                jobs.append((sub, mode, seed))
    return jobs, saved


class _Progress:
    """'[k/n]' before each finished run's line and an ETA after it: every pending run is expected to take the mean time
    of the finished runs of its mode (saved earlier with the same recipe, or finished in this call), shared among
    the workers. Modes take from seconds (k-mer) to tens of minutes (not pretrained), so no mean over all runs."""

    def __init__(self, jobs: list, seconds: dict[str, list[float]], workers: int):
        self.left = [mode for _, mode, _ in jobs]
        self.n, self.done, self.workers, self.elsewhere = len(jobs), 0, workers, 0
        self.seconds = {mode: list(v) for mode, v in seconds.items()}

    def line(self, res: dict) -> str:
        self.done += 1
        self.left.remove(res["mode"])
        if "elsewhere" in res:
            self.elsewhere += 1
            what = f"{res['task']:30s} {res['mode']:9s} seed {res['seed']}"
            return f"[{self.done}/{self.n}] {what}: left to the process running it ({res['elsewhere']})"
        self.seconds.setdefault(res["mode"], []).append(res["seconds"])
        text = f"[{self.done}/{self.n}] {_describe(res)}"
        known = [np.mean(self.seconds[m]) for m in self.left if self.seconds.get(m)]
        if self.left and len(known) == len(self.left):
            text += f"; ETA {_duration(sum(known) / self.workers)}"
        return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _describe(res: dict) -> str:
    scores = f"{res['metric']} {res['test'][res['metric']]:.3f}"
    if res["metric"] != "mcc":
        scores += f" mcc {res['test']['mcc']:.3f}"
    return f"{res['task']:30s} {res['mode']:9s} seed {res['seed']}: {scores} ({res['seconds']:.0f} s)"


def _run_one(cfg: BenchmarkConfig, out: Path, sub: Task, mode: str, seed: int, log=None) -> dict:
    """One task x mode x seed, saved atomically with its recipe, and returned. ``log`` gets the fine-tuning epochs
    (in a worker process: None, and they go to stderr, which the workers share with the parent).

    Several processes may share one ``out`` (the same command on several machines or GPUs, or started twice): each
    run is held by the process that runs it (``hold_folder`` on its folder under ``out/partial``), another process
    leaves it to that one (``{"elsewhere": who}``), and one that finds it saved meanwhile returns it as it is."""
    from hyenadna.utils.io import FolderInUseError, hold_folder

    folder = _partial_dir(out, cfg, sub, mode, seed)
    try:
        with hold_folder(folder, f"benchmark run ({sub.name} {mode} seed {seed})"):
            path = _run_path(out, sub, mode, seed)
            if path.is_file() and recipe_matches(run := json.loads(path.read_text()), run_recipe(cfg, mode)):
                return run  # saved by another process since this call listed its runs
            return _run_held(cfg, out, sub, mode, seed, log or _stderr, folder)
    except FolderInUseError as e:
        return {"task": sub.name, "mode": mode, "seed": seed, "elsewhere": e.holder or "another process"}


def _run_held(cfg: BenchmarkConfig, out: Path, sub: Task, mode: str, seed: int, log, folder: Path) -> dict:
    t0 = time.time()
    partial = folder if mode in ("finetune", "scratch") else None
    if mode == "kmer":
        res = run_kmer(sub, seed)
    elif mode == "probe":
        res = run_probe(sub, seed, cfg, out / "embeddings")
    else:
        res = run_finetune(sub, seed, cfg, pretrained=(mode == "finetune"), log=log, checkpoints=partial)
    # a resumed run's time includes the saved epochs' training: the ETA and the table's costs count all of it
    saved_seconds = sum(r["seconds"] for r in res.get("resumed", []))
    res.update(
        {
            "task": sub.name,
            "mode": mode,
            "seed": seed,
            "metric": sub.metric,
            "seconds": time.time() - t0 + saved_seconds,
            "n_train": len(sub.train),
            "n_test": len(sub.test),
            "recipe": run_recipe(cfg, mode),
            "environment": _environment(cfg, mode),
        }
    )
    atomic_write_text(_run_path(out, sub, mode, seed), json.dumps(res, indent=1))
    # the run is saved: its training states are spent (its lock file goes too, still held: a process that opened it
    # meanwhile is refused, and one that comes later finds the run saved)
    shutil.rmtree(folder, ignore_errors=True)
    return res


def _run_path(out: Path, sub: Task, mode: str, seed: int) -> Path:
    """Where a finished run is saved (the listing of pending runs, a process holding a run and the run itself)."""
    return out / "runs" / sub.name / mode / f"seed{seed}.json"


def _partial_dir(out: Path, cfg: BenchmarkConfig, sub: Task, mode: str, seed: int) -> Path:
    """Where a run's training states wait while it runs: under ``out/partial``, which git ignores (its own
    .gitignore), in a folder named by the recipe's hash, so a changed recipe never resumes another's state."""
    recipe = hashlib.sha256(json.dumps(run_recipe(cfg, mode), sort_keys=True).encode()).hexdigest()[:12]
    root = ignored_folder(out / "partial", "training states of unfinished benchmark runs")
    return root / sub.name / mode / f"seed{seed}-{recipe}"


def _tidy_partial(out: Path) -> None:
    """``out/partial`` removed once it holds no training state, only its .gitignore and empty folders (the k-mer and
    probe runs' folders there held nothing but their locks), so a run of those modes leaves no folder behind."""
    root = out / "partial"
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            with contextlib.suppress(OSError):  # not empty: a state to resume from, or another process's run
                path.rmdir()
    if [p.name for p in root.iterdir()] == [".gitignore"]:
        with contextlib.suppress(OSError):
            (root / ".gitignore").unlink()
            root.rmdir()


def _environment(cfg: BenchmarkConfig, mode: str) -> dict:
    """What ran a run, beside the recipe that decides it: a network's results move at float rounding with the
    kernels this machine chose (ops/autotune.py), and over a few epochs that can move a selected epoch, so a run
    says which ran it. Not part of the recipe: another machine's runs still count."""
    import torch

    import hyenadna

    env = {"hyenadna": hyenadna.__version__, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if mode != "kmer":
        from hyenadna.ops import autotune
        from hyenadna.utils.device import resolve_device

        device = resolve_device(cfg.device)
        if device.type == "cuda":  # which of a node's GPUs, and what kind
            env["device"] = f"{device} ({torch.cuda.get_device_name(device)})"
        env["kernels"] = asdict(autotune.tuning(cfg.device))
        env["cpu"] = f"{autotune.cpu_name()} ({autotune.cpu_features()})"
    return env


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def worker_devices(device: str, workers: int) -> list[str]:
    """Each benchmark worker's device. "cuda" (or "auto" where CUDA is) on a machine with several GPUs spreads the
    workers over them, worker k on cuda:(k mod the GPU count), instead of piling them all onto cuda:0; an explicit
    device ("cuda:1", "cpu") is every worker's."""
    import torch

    from hyenadna.utils.device import resolve_device

    dev = resolve_device(device)
    if dev.type != "cuda" or dev.index is not None:
        return [device] * workers
    return [f"cuda:{k % torch.cuda.device_count()}" for k in range(workers)]


_WORKER_DEVICE: str | None = None  # set in each worker process by _start_worker
_WARNINGS = None  # each worker's queue to the parent, for its warnings


def _forward_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A worker's warnings go to the parent, which shows them as its own (``hyenadna benchmark: warning: ...`` on the
    command line) instead of Python's two-line ``file.py:224: UserWarning`` form, with the source line, from the
    worker."""
    _WARNINGS.put((str(message), category, filename, lineno))


def _start_worker(threads: int, kernels, devices, warned) -> None:
    import queue
    import signal
    import threading
    import warnings

    import torch
    from tqdm import tqdm

    from hyenadna.ops import autotune

    global _WORKER_DEVICE, _WARNINGS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    # tqdm's default lock is a multiprocessing semaphore, for bars shared across fork; a spawned worker shares none,
    # and the pool's terminate() (on Ctrl-C) kills it before it unregisters the semaphore: "There appear to be 2
    # leaked semaphore objects to clean up at shutdown", printed by Python's resource tracker after our last line
    tqdm.set_lock(threading.RLock())
    _WARNINGS = warned
    warnings.showwarning = _forward_warning
    torch.set_num_threads(threads)
    autotune.use(kernels)
    try:
        _WORKER_DEVICE = devices.get(timeout=60)  # one per worker, in the order the pool starts them
    except queue.Empty:  # a worker the pool started in place of one that died: the configured device
        return
    if _WORKER_DEVICE.startswith("cuda"):
        torch.cuda.set_device(torch.device(_WORKER_DEVICE))  # where stray .cuda() calls and cuFFT plans go


def _run_star(args: tuple) -> dict:
    cfg, *job = args
    return _run_one(replace(cfg, device=_WORKER_DEVICE or cfg.device), *job)


def _relay_warnings(warned, stop) -> None:
    """Shows the workers' warnings in the parent as they come, until ``stop`` is set and none is left. It polls
    rather than waiting for an end marker: a worker the pool terminated mid-``put`` can leave the queue's write lock
    held, and the parent must not need it."""
    import queue
    import warnings

    while True:
        try:
            message, category, filename, lineno = warned.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        warnings.warn_explicit(message, category, filename, lineno)


def _run_pool(cfg: BenchmarkConfig, out: Path, jobs: list, workers: int, log, progress: _Progress) -> None:
    """Independent runs in ``workers`` processes, the CPU threads shared out among them. Runs are single-threaded
    most of their time (small batches, scikit-learn), so on a CPU several processes finish sooner than one."""
    import multiprocessing
    import threading

    import torch

    from hyenadna.ops import autotune

    threads = max(1, torch.get_num_threads() // workers)
    kernels = autotune.tuning_for_threads(threads, cfg.device)  # measured once, here, on a new machine
    context = multiprocessing.get_context("spawn")
    devices, warned = context.Queue(), context.Queue()
    assigned = worker_devices(cfg.device, workers)
    for device in assigned:
        devices.put(device)
    if len(set(assigned)) > 1:
        log(f"{workers} workers on {len(set(assigned))} GPUs: {', '.join(assigned)}")
    stop = threading.Event()
    relay = threading.Thread(target=_relay_warnings, args=(warned, stop), daemon=True)
    relay.start()
    pool = context.Pool(workers, initializer=_start_worker, initargs=(threads, kernels, devices, warned))
    try:
        for res in pool.imap_unordered(_run_star, [(cfg, out, *job) for job in jobs]):
            log(progress.line(res))
        pool.close()
    except BaseException:
        pool.terminate()  # a failed run or Ctrl-C stops the others; every finished run is already saved
        raise
    finally:
        pool.join()
        stop.set()
        relay.join()


def run_benchmark(cfg: BenchmarkConfig, log=print, report_only: bool = False, workers: int = 1) -> dict:
    """Run every task x mode x seed not saved yet with the same recipe, then write the report. ``report_only``
    writes the report from the runs saved so far and runs nothing (a partial table while other processes run);
    ``workers`` > 1 runs that many in parallel processes."""
    out = Path(cfg.out_dir)
    unknown = set(cfg.modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown mode(s) {sorted(unknown)}; choose from {MODES}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    tasks = load_benchmark_tasks(cfg, log)
    cfg = _with_weights(cfg, cfg.modes, local_only=report_only)  # a report fetches nothing
    t_all = time.time()
    jobs, saved = ([], {}) if report_only else _pending(cfg, tasks, out, log)
    workers = min(workers, max(1, len(jobs)))
    progress = _Progress(jobs, saved, workers)
    try:
        if workers > 1:
            _run_pool(cfg, out, jobs, workers, log, progress)
        else:
            for job in jobs:
                log(progress.line(_run_one(cfg, out, *job, log=log)))
    finally:
        _tidy_partial(out)
    if progress.elsewhere:
        log(
            f"{progress.elsewhere} run(s) were left to other processes working in {out}, and are missing from "
            "results.md until they are saved; the last process to end writes the whole table (or --report-only)"
        )
    if not report_only:
        cfg = _with_saved_modes(cfg, out, log)
    summary = summarise(out, tasks, cfg, log)
    if report_only and not summary["tasks"]:  # a table with no cell is no report: say why instead of writing one
        saved = len(list(out.glob("runs/*/*/seed*.json")))
        why = (
            f"its {saved} saved run(s) are of other tasks, seeds, modes or options: give the ones they were run with"
            if saved
            else "run the benchmark without --report-only first"
        )
        raise ValueError(f"{out}: no saved run to report for these tasks, modes and seeds ({why})")
    # the files hold only what the saved runs determine, so a later --report-only rewrites them unchanged; the
    # runs' own seconds are in the table, this call's wall time only in the returned summary
    atomic_write_text(out / "results.json", json.dumps(summary, indent=1))
    from hyenadna.benchmark.report import write_report

    write_report(summary, out)
    return {**summary, "wall_seconds_this_call": time.time() - t_all}


def _with_saved_modes(cfg: BenchmarkConfig, out: Path, log) -> BenchmarkConfig:
    """A call that runs some modes still writes the whole table: the other modes with runs saved in ``out`` are
    reported beside them, each run kept only where its recipe matches this call's (one mode re-run after the others
    used to leave a one-column results.md). The probe and fine-tune recipes hold the weights' fingerprint; where the
    weights are not on disk, those modes are left out and the line to report them is given."""
    saved = {p.parent.name for p in out.glob("runs/*/*/seed*.json")}
    others = [m for m in MODES if m in saved and m not in cfg.modes]
    if not others:
        return cfg
    try:
        cfg = _with_weights(cfg, others, local_only=True)
    except OSError:  # not on disk
        every = [m for m in MODES if m in saved or m in cfg.modes]
        left_out = [m for m in others if m != "kmer"]
        log(
            f"results.md leaves out the saved {' '.join(left_out)} runs: the weights of {cfg.model_name} are "
            f"not on disk, and this call fetches nothing it does not run; --report-only --modes {' '.join(every)} "
            "writes the whole table"
        )
        others = [m for m in others if m == "kmer"]
    return replace(cfg, modes=[m for m in MODES if m in cfg.modes or m in others])


def _with_weights(cfg: BenchmarkConfig, modes: list[str], local_only: bool) -> BenchmarkConfig:
    """``cfg`` with the model's weights found (fetched unless ``local_only``) where ``modes`` run a model, once, so
    every run reads the same files; and with their fingerprint where a mode's recipe holds it (probe, fine-tune)."""
    if cfg.model_path is None and set(modes) & {"probe", "finetune", "scratch"}:
        from hyenadna.hub import HubOptions, resolve_weights

        hub = HubOptions(cfg.model_revision, cfg.local_files_only or local_only, layout=cfg.hub_layout)
        cfg = replace(cfg, model_path=str(resolve_weights(cfg.model_name, None, hub)))
    if set(modes) & {"probe", "finetune"} and cfg.weights is None:
        cfg = replace(cfg, weights=weights_fingerprint(cfg.model_path))
    return cfg


def summarise(out: Path, tasks: list[Task], cfg: BenchmarkConfig, log=print) -> dict:
    """The table's numbers from the saved runs of this profile's seeds and recipe. A run saved with another recipe
    (another grid, epoch count or model) is left out and named, never averaged in: ``--report-only`` runs nothing
    that would replace it."""
    rows = {}
    for task in tasks:
        kept = {}
        for mode in cfg.modes:
            runs = [json.loads(p.read_text()) for p in sorted((out / "runs" / task.name / mode).glob("seed*.json"))]
            runs = sorted((r for r in runs if r["seed"] in cfg.seeds), key=lambda r: r["seed"])
            recipe = run_recipe(cfg, mode)
            other = [r["seed"] for r in runs if not recipe_matches(r, recipe)]
            if other:
                log(f"{task.name} {mode} seed(s) {other}: saved with another recipe; left out of the report")
                runs = [r for r in runs if r["seed"] not in other]
            if not runs:
                continue
            kept[mode] = runs
            metrics = {}
            for m in ("accuracy", "precision", "recall", "f1", "mcc"):
                v = np.array([r["test"][m] for r in runs])
                metrics[m] = {
                    "mean": float(v.mean()),
                    "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                    "values": [float(x) for x in v],  # per seed, in the order of "seeds": paired comparisons use them
                }
            row = rows.setdefault(task.name, {"metric": task.metric, "modes": {}})
            if task.published:
                row["published"] = task.published
            if task.reference_baseline:
                row["reference_kmer_full_train"] = {
                    m: task.reference_baseline[m] for m in ("accuracy", "precision", "recall", "f1", "mcc")
                }
            row["modes"][mode] = {
                "metrics": metrics,
                "seeds": [r["seed"] for r in runs],
                "seconds": float(sum(r["seconds"] for r in runs)),
                "n_train": runs[0]["n_train"],
                "n_test": runs[0]["n_test"],
                "source": runs[0].get("source", ""),
            }
            row["modes"][mode]["one_class_seeds"] = [r["seed"] for r in runs if r["test"].get("predicted_classes") == 1]
            # not above chance on test (one-class seeds have their own mark)
            level = chance_mcc(runs[0]["n_test"], task.num_classes)
            row["modes"][mode]["chance_seeds"] = [
                r["seed"] for r in runs if r["test"].get("predicted_classes") != 1 and r["test"]["mcc"] < level
            ]
            if mode in ("finetune", "scratch"):  # epoch 0 is the LP-FT probe head: no fine-tuned epoch beat it
                row["modes"][mode]["selected_epochs"] = [r["selected"]["epoch"] for r in runs]
                row["modes"][mode]["selected_lrs"] = [r["selected"]["lr"] for r in runs]
        if task.name in rows:
            intervals = row_bootstrap_intervals(kept, task.num_classes, task.metric)
            if intervals:
                rows[task.name]["intervals"] = intervals
    return {"config": asdict(cfg), "tasks": rows}


def row_bootstrap_intervals(runs: dict[str, list[dict]], num_classes: int, metric: str) -> dict[str, list[float]]:
    """{"column-baseline": [low, high]}: each report comparison's ``paired_runs_interval`` on ``metric``."""
    from hyenadna.benchmark.report import COMPARISONS

    out = {}
    for column, baseline, _ in COMPARISONS:
        interval = paired_runs_interval(runs.get(column, []), runs.get(baseline, []), num_classes, metric)
        if interval is not None:
            out[f"{column}-{baseline}"] = list(interval)
    return out


def paired_runs_interval(
    runs_a: list[dict], runs_b: list[dict], num_classes: int, metric: str
) -> tuple[float, float] | None:
    """The 95% interval, over resampled test rows, of the seed-mean difference a - b on ``metric`` over the seeds
    both have run. None unless every one of those runs saved its test predictions, on the same rows (runs saved
    before predictions were kept have none), so that the interval is about the mean a table shows."""
    a, b = ({r["seed"]: r for r in runs} for runs in (runs_a, runs_b))
    pairs = [(a[s], b[s]) for s in sorted(set(a) & set(b))]
    if not pairs or not all("test_predictions" in r for pair in pairs for r in pair):
        return None
    if len({str(r["test_labels"]) for pair in pairs for r in pair}) != 1:
        return None
    y = decode_labels(pairs[0][0]["test_labels"])
    preds_a, preds_b = ([decode_labels(r["test_predictions"]) for r in side] for side in zip(*pairs, strict=True))
    return paired_interval(y, preds_a, preds_b, num_classes, metric)
