"""Dataset-level metrics from scikit-learn: never averaged per batch."""

from __future__ import annotations

import numpy as np

METRICS = ("accuracy", "precision", "recall", "f1", "mcc")


def classification_metrics(y_true, y_pred, num_classes: int | None = None) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and MCC over the whole dataset. Binary tasks score the positive class (label
    1); multi-class tasks use macro averages and the multi-class MCC."""
    # imported here: scikit-learn (with scipy and pandas) costs ~2 s and ~100 MB, which embedding alone never needs
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = num_classes or int(max(y_true.max(initial=0), y_pred.max(initial=0)) + 1)
    kw = {"average": "binary", "pos_label": 1} if n <= 2 else {"average": "macro", "labels": list(range(n))}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0, **kw)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0, **kw)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0, **kw)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
    }


def chance_mcc(n: int, num_classes: int, z: float = 1.645) -> float:
    """The MCC that a classifier whose predictions are independent of the labels exceeds on ``n`` rows about 5% of
    the time (one-sided, ``z`` = 1.645). Under independence MCC is about normal with sd 1/sqrt((K-1) n): for two
    classes n MCC^2 is the chi-squared(1) statistic of the 2x2 table; for K classes the sd was checked by simulation
    (tests/test_metrics.py). A test MCC below it is not evidence that a model learnt anything."""
    return z / float(np.sqrt(max(num_classes - 1, 1) * n))


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    from sklearn.metrics import mean_squared_error, r2_score

    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    out = {"mse": float(mean_squared_error(y_true, y_pred)), "r2": float(r2_score(y_true, y_pred))}
    if y_true.ndim == 1 and np.std(y_true) > 0 and np.std(y_pred) > 0:
        out["pearson"] = float(np.corrcoef(y_true, y_pred)[0, 1])
    return out
