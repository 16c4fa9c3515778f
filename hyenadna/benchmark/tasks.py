"""Downstream tasks: our task folders (task.json + train/test csv.gz) and the Nucleotide Transformer downstream
tasks as distributed on Hugging Face (a folder with train/test parquet or csv, columns sequence,label, or FASTA
``.fna`` whose headers end in ``|<label>``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# The NT benchmark's metric convention: MCC for histone marks and enhancers, F1 for promoters and 2-class splice
# tasks, accuracy for splice_sites_all.
NT_METRICS = {"splice_sites_all": "accuracy"}


def nt_metric(name: str) -> str:
    if name in NT_METRICS:
        return NT_METRICS[name]
    if name.startswith(("promoter", "splice")):
        return "f1"
    return "mcc"


@dataclass
class Task:
    name: str
    train: pd.DataFrame  # columns sequence, label (int), name
    test: pd.DataFrame
    metric: str  # accuracy | f1 | mcc
    label_names: list[str] = field(default_factory=list)
    sequence_length: int | None = None
    source: str = ""
    # a published baseline's test scores on the full task (our task.json: k-mer logistic regression), for reference
    reference_baseline: dict | None = None
    # published results on this task (fractions by column of ``suites.PUBLISHED_COLUMNS``), shown beside ours
    published: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def subsample(self, max_train: int | None, max_test: int | None, seed: int = 0) -> Task:
        return Task(
            self.name,
            _stratified(self.train, max_train, seed),
            _stratified(self.test, max_test, seed + 1),
            self.metric,
            self.label_names,
            self.sequence_length,
            self.source,
            self.reference_baseline,
            self.published,
        )


def split_problem(labels: np.ndarray, validation_fraction: float = 0.1) -> str | None:
    """Why training rows cannot be split, stratified, into train and validation, each holding every class (as the
    benchmark splits them), or None."""
    classes, counts = np.unique(labels, return_counts=True)
    if classes.size < 2:
        return f"every training label is class {classes[0] if classes.size else '-'}: a classifier needs two or more"
    if counts.min() < 2:
        return (
            f"class {classes[np.argmin(counts)]} has 1 training row; the stratified validation split needs 2 or "
            "more of each class"
        )

    def fits(n: int) -> bool:  # scikit-learn's rule: both sides of the split hold a row of every class
        held_out = int(np.ceil(validation_fraction * n))
        return min(held_out, n - held_out) >= classes.size

    n = len(labels)
    if not fits(n):
        need = next(m for m in range(n + 1, 100 * n + 100) if fits(m))
        return (
            f"{n} training rows leave {int(np.ceil(validation_fraction * n))} for validation, fewer than the "
            f"{classes.size} classes: give {need} rows or more"
        )
    return None


def _stratified(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or len(df) <= n:
        return df
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(df)), train_size=n, random_state=seed, stratify=df["label"])
    return df.iloc[np.sort(keep)].reset_index(drop=True)


def _read_fna(path: Path) -> pd.DataFrame:
    from hyenadna.data.fasta import FastaFormatError, read_fasta

    rows = []
    for rec in read_fasta(path):
        header = f"{rec.name} {rec.description}".strip()
        name, sep, label = header.rpartition("|")
        if not sep or not label.strip().lstrip("-").isdigit():
            raise FastaFormatError(f"{path}: record {rec.name!r}: the header must end in |<integer label>")
        rows.append((rec.sequence, int(label), name))
    return pd.DataFrame(rows, columns=["sequence", "label", "name"])


def _read_table(path: Path) -> pd.DataFrame:
    """A split's rows: sequence, label (class indices, or class names for ``load_task`` to number) and name. Every
    sequence is checked here, so a bad row is named by its file and row, not by its place after subsampling."""
    if path.suffix == ".fna":
        return _check_sequences(_read_fna(path), path)
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    cols = {c.lower(): c for c in df.columns}
    missing = {"sequence", "label"} - set(cols)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)} (have {list(df.columns)})")
    for what in ("sequence", "label"):  # before astype(str): a missing value must never become text
        empty = np.flatnonzero(df[cols[what]].isna().to_numpy())
        if empty.size:
            raise ValueError(f"{path}, row {empty[0] + 1}: no {what} ({empty.size:,} of {len(df):,} rows lack one)")
    out = pd.DataFrame({"sequence": df[cols["sequence"]].astype(str), "label": _labels(df[cols["label"]], path)})
    out["name"] = df[cols["name"]].astype(str) if "name" in cols else [f"{path.stem}:{i}" for i in range(len(df))]
    return _check_sequences(out, path)


def _labels(column: pd.Series, path: Path) -> pd.Series:
    """Whole numbers stay class indices; text labels are class names."""
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.isna().any():
        return column.astype(str)
    values = numbers.to_numpy()
    bad = np.flatnonzero((values != np.round(values)) | (values < 0))
    if bad.size:
        raise ValueError(
            f"{path}, row {bad[0] + 1}: label {column.iloc[bad[0]]} is neither a class index (0, 1, ...) nor a "
            "class name"
        )
    return numbers.astype(np.int64)


def _check_sequences(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    from hyenadna.tokenizer import CharacterTokenizer, InvalidCharacterError

    tokenizer = CharacterTokenizer()
    for i, (sequence, name) in enumerate(zip(df["sequence"], df["name"], strict=True)):
        try:
            if not tokenizer.encode_bases(sequence, i, name).size:
                raise ValueError(f"{path}, row {i + 1}: an empty sequence")
        except InvalidCharacterError as e:  # rows from 1 below the header, as the sequence readers count them
            raise ValueError(f"{path}, row {i + 1}: {e}") from None
    return df


def _number_classes(train: pd.DataFrame, test: pd.DataFrame, names: list[str], where: Path) -> list[str]:
    """Class names as indices, in place (``names`` from task.json, else sorted as scikit-learn's LabelEncoder);
    the names in index order."""
    if train["label"].dtype.kind in "iu" and test["label"].dtype.kind in "iu":
        n = int(max(train["label"].max(), test["label"].max()) + 1)
        return names or [str(i) for i in range(n)]
    names = names or sorted(set(train["label"].astype(str)) | set(test["label"].astype(str)))
    index = {name: i for i, name in enumerate(names)}
    for df in (train, test):
        labels = df["label"].astype(str)
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise ValueError(f"{where}: label(s) {unknown[:5]} are not among the task's label_names {names}")
        df["label"] = labels.map(index).astype(np.int64)
    return names


def _find_split(folder: Path, split: str) -> Path:
    patterns = (f"{split}.csv.gz", f"{split}.csv", f"{split}.parquet", f"{split}-*.parquet", f"{split}*.parquet")
    for pattern in (*patterns, f"{split}.fna"):
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    raise FileNotFoundError(
        f"{folder}: no {split} split ({split}.csv.gz, {split}.csv, {split}*.parquet or {split}.fna)"
    )


def load_task(folder: str | Path) -> Task:
    """A task folder: ours (with task.json) or an NT-style one (train/test files only; metric by NT convention)."""
    folder = Path(folder)
    train, test = _read_table(_find_split(folder, "train")), _read_table(_find_split(folder, "test"))
    meta_path = folder / "task.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        name, metric = meta.get("name", folder.name), meta.get("metric", "mcc").lower()
        labels = list(meta.get("label_names") or [])
        length = meta.get("sequence_length")
        baseline = meta.get("kmer_logistic_regression_baseline_test")
    else:
        name, metric, labels, length, baseline = folder.name, nt_metric(folder.name), [], None, None
    labels = _number_classes(train, test, labels, meta_path if meta_path.is_file() else folder)
    if metric not in ("accuracy", "f1", "mcc"):
        raise ValueError(f"{meta_path}: unknown metric {metric!r}")
    return Task(name, train, test, metric, labels, length, str(folder), baseline)


def is_task_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any(path.glob("train*"))


def discover_tasks(root: str | Path | None, names: list[str] | None = None) -> list[Task]:
    """Every task folder under ``root`` (a folder with a train split), or the named ones. A name may also be a task
    folder's path, which needs no ``root``."""
    if names and all(is_task_folder(n) for n in names):
        return [load_task(n) for n in names]
    if root is None:
        missing = [n for n in names or [] if not is_task_folder(n)]
        raise ValueError(f"no such task folder(s) {missing}; give task folder paths, or --tasks-dir with task names")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of task folders")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("train*")))
    if names:
        by_name = {p.name: p for p in folders}
        unknown = [n for n in names if n not in by_name and not is_task_folder(n)]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; available: {sorted(by_name)}")
        folders = [by_name.get(n, Path(n)) for n in names]
    if not folders:
        raise FileNotFoundError(f"{root}: no task folders (folders with a train split)")
    return [load_task(p) for p in folders]
