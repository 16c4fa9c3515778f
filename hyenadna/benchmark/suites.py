"""Benchmark suites by name, fetched from the Hugging Face Hub into its cache (see ``hyenadna.hub``).

``nt``: the 18 Nucleotide Transformer downstream tasks, dataset repository
``InstaDeepAI/nucleotide_transformer_downstream_tasks``: one folder per task with ``train``/``test`` files, as
``.parquet`` (columns ``sequence``, ``label``, ``name``, ``task``) and, in every revision, ``.fna`` (FASTA whose
headers end in ``|<label>``). Parquet is preferred where a revision has it. Rows come in the model card's order, and
each task carries the published values of ``data/nt_published.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from hyenadna.benchmark.tasks import Task, load_task
from hyenadna.hub import HubFetcher, HubNotFound, HubOptions, NotCached


@dataclass(frozen=True)
class Suite:
    name: str
    repo: str
    tasks: tuple[str, ...]
    published_file: str | None = None
    formats: tuple[str, ...] = ("parquet", "fna")  # tried in this order, per task


DATA_DIR = Path(__file__).parent / "data"
# (column in the data file, title in the report)
PUBLISHED_COLUMNS = [
    ("nt_finetuned", "NT fine-tuned (published)"),
    ("gpt", "GPT (published)"),
    ("hyenadna_finetuned", "HyenaDNA fine-tuned (published)"),
    ("hyenadna_not_pretrained", "HyenaDNA not pretrained (published)"),
    ("helical_probing", "HyenaDNA probing, Helical (published)"),
]


def published_values(filename: str) -> dict[str, dict]:
    """Task -> {"metric": ..., column: fraction}, from a packaged data file (its comment lines give the sources)."""
    text = (DATA_DIR / filename).read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {
        r["task"]: {"metric": r["metric"], **{k: float(r[k]) / 100 for k, _ in PUBLISHED_COLUMNS if r.get(k)}}
        for r in rows
    }


def published_source(filename: str) -> str:
    text = (DATA_DIR / filename).read_text()
    return " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))


NT_TASKS = tuple(published_values("nt_published.csv"))
SUITES = {
    "nt": Suite("nt", "InstaDeepAI/nucleotide_transformer_downstream_tasks", NT_TASKS, "nt_published.csv"),
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {sorted(SUITES)}")
    return SUITES[name]


def fetch_suite(name: str, hub: HubOptions | None = None, tasks: list[str] | None = None, log=None) -> list[Path]:
    """Task folders of a suite in its order (all tasks, or the named ones), fetched into the Hub cache if need be."""
    suite = get_suite(name)
    if tasks:
        unknown = [t for t in tasks if t not in suite.tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown} in suite {name!r}; available: {list(suite.tasks)}")
    fetcher = HubFetcher(hub or HubOptions(), download_args={suite.repo: f"--dataset {suite.name}"})
    folders = []
    with fetcher.transaction(suite.repo, "dataset"):
        for task in tasks or suite.tasks:
            folders.append(_fetch_task(fetcher, suite, task))
            if log:
                log(f"{suite.repo}: {task} -> {folders[-1]}")
    return folders


def _fetch_task(fetcher: HubFetcher, suite: Suite, task: str) -> Path:
    not_cached: list[NotCached] = []
    for fmt in suite.formats:
        try:
            paths = [Path(fetcher.fetch(suite.repo, f"{task}/{split}.{fmt}", "dataset")) for split in ("train", "test")]
        except HubNotFound:
            continue
        except NotCached as e:  # offline: another format may be cached
            not_cached.append(e)
            continue
        return paths[0].parent
    if not_cached:
        raise not_cached[0]
    raise HubNotFound(
        f"{suite.repo}: task {task!r} has none of "
        + ", ".join(f"{task}/train.{f} + test.{f}" for f in suite.formats)
        + f" on {fetcher.hub.resolved_endpoint}",
        repo_type="dataset",
    )


def load_suite_tasks(name: str, folders: list[Path]) -> list[Task]:
    """The suite's tasks, each with the published metric and values of its row."""
    suite = get_suite(name)
    published = published_values(suite.published_file) if suite.published_file else {}
    out = []
    for folder in folders:
        task = load_task(folder)
        row = published.get(task.name)
        if row:
            task.metric = row["metric"]
            task.published = {k: v for k, v in row.items() if k != "metric"}
        out.append(task)
    return out
