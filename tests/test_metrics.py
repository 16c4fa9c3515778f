"""Dataset-level metrics and the chance level the benchmark report flags against."""

from __future__ import annotations

import numpy as np
import pytest

from hyenadna.metrics import chance_mcc, classification_metrics


@pytest.mark.parametrize(
    ("classes", "n", "predicted"),
    [(2, 1000, [0.5, 0.5]), (2, 1000, [0.8, 0.2]), (2, 200, [0.3, 0.7]), (3, 1000, [0.6, 0.3, 0.1])],
)
def test_a_model_guessing_independently_of_the_labels_passes_the_chance_level_about_one_time_in_twenty(
    classes, n, predicted
):
    from sklearn.metrics import matthews_corrcoef

    rng = np.random.default_rng(classes * n)
    y = rng.integers(0, classes, n)
    mccs = np.array([matthews_corrcoef(y, rng.choice(classes, n, p=predicted)) for _ in range(1000)])
    assert 0.02 <= (mccs > chance_mcc(n, classes)).mean() <= 0.09  # one-sided 5%, an approximation


def test_a_model_that_learnt_is_above_the_chance_level():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    pred = np.where(rng.random(1000) < 0.6, y, 1 - y)  # right 60% of the time: MCC about 0.2
    assert classification_metrics(y, pred)["mcc"] > chance_mcc(1000, 2) == pytest.approx(0.052, abs=1e-3)
