"""How much of a difference between two benchmark columns is the test set's luck: a paired bootstrap over test rows.

Every column of a table is scored on the same test rows, and the seeds share them too, so the spread over seeds (the
report's ± sd) holds the training's noise and none of the test sample's: a 1,000-row test set moves F1 or MCC by a
point or two on its own. Resampling the rows (the same draw for both columns and every seed) and recomputing each
metric gives the interval of the seed-mean difference that another test set of this size could have shown.

The metrics are computed from resampled confusion matrices, all draws at once; ``confusion_metrics`` gives exactly
what ``hyenadna.metrics.classification_metrics`` (scikit-learn) gives on the same rows, and a test holds it to that.
"""

from __future__ import annotations

import numpy as np


def encode_labels(values) -> str | list[int]:
    """Class indices as one digit per row (a short line in a run's JSON), or a list where a class is above 9."""
    values = [int(v) for v in np.asarray(values).ravel()]
    return "".join(map(str, values)) if all(0 <= v <= 9 for v in values) else values


def decode_labels(encoded: str | list[int]) -> np.ndarray:
    return np.array([int(c) for c in encoded], dtype=np.int64)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, weights: np.ndarray) -> np.ndarray:
    """(draws, true class, predicted class) counts, each draw weighting row i by ``weights[draw, i]``."""
    k = max(num_classes, 2)
    cell = np.asarray(y_true) * k + np.asarray(y_pred)
    onehot = np.zeros((len(cell), k * k))
    onehot[np.arange(len(cell)), cell] = 1.0
    return (weights @ onehot).reshape(-1, k, k)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0, and its MCC of a constant predictor)."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den != 0)


def confusion_metrics(cm: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of each confusion matrix (draws, k, k): binary tasks score class 1, more classes take macro averages
    and the multi-class MCC, as ``classification_metrics`` does."""
    cm = np.asarray(cm, dtype=float)
    n = cm.sum(axis=(1, 2))
    diag = np.diagonal(cm, axis1=1, axis2=2)
    true, pred = cm.sum(axis=2), cm.sum(axis=1)  # per class: rows that are it, rows predicted as it
    if metric == "accuracy":
        return _ratio(diag.sum(axis=1), n)
    if metric == "mcc":
        num = diag.sum(axis=1) * n - (true * pred).sum(axis=1)
        den = np.sqrt((n**2 - (pred**2).sum(axis=1)) * (n**2 - (true**2).sum(axis=1)))
        return _ratio(num, den)
    if cm.shape[1] == 2:  # the positive class only
        diag, true, pred = diag[:, 1:], true[:, 1:], pred[:, 1:]
    per_class = {
        "precision": _ratio(diag, pred),
        "recall": _ratio(diag, true),
        "f1": _ratio(2 * diag, true + pred),
    }[metric]
    return per_class.mean(axis=1)


def paired_interval(
    y_true: np.ndarray,
    preds_a: list[np.ndarray],
    preds_b: list[np.ndarray],
    num_classes: int,
    metric: str,
    draws: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of mean over seeds of metric(a) - metric(b), test rows resampled with replacement.
    ``preds_a[i]`` and ``preds_b[i]`` are one seed's predictions of the two columns on the rows of ``y_true``."""
    if len(preds_a) != len(preds_b) or not preds_a:
        raise ValueError("one prediction per seed for each column, and at least one seed")
    n = len(y_true)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(float)
    diff = np.zeros(draws)
    for pa, pb in zip(preds_a, preds_b, strict=True):
        diff += confusion_metrics(confusion_counts(y_true, pa, num_classes, weights), metric)
        diff -= confusion_metrics(confusion_counts(y_true, pb, num_classes, weights), metric)
    diff /= len(preds_a)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(diff, [tail, 100 - tail])
    return float(low), float(high)
