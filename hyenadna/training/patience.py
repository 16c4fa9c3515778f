"""Early stopping whose patience counts only once a classifier has left chance (torch-free: the CLI and the benchmark
scripts read it).

From random weights a classifier can sit at chance for epochs before it learns, and stopping it there keeps a model
that learnt nothing. "above chance": count from the first epoch whose validation MCC beats 0; on 100 validation rows
a model still at chance scores 0.1-0.2 now and then, which starts the count early. "training loss": count from the
first epoch whose training loss is 5% below the first epoch's, a signal that noise in the validation split cannot
fake.
"""

from __future__ import annotations

from dataclasses import dataclass

PATIENCE_FROM_VALIDATION, PATIENCE_FROM_LOSS = "above chance", "training loss"
PATIENCE_FROM = (PATIENCE_FROM_VALIDATION, PATIENCE_FROM_LOSS)
LEFT_CHANCE = 0.95  # the fraction of the first epoch's training loss below which a model has left chance


def check_patience_from(rule: str) -> None:
    if rule not in PATIENCE_FROM:
        raise ValueError(f"patience_from={rule!r}: choose one of {', '.join(PATIENCE_FROM)}")


def left_chance(train_loss: float, first_loss: float) -> bool:
    """Whether an epoch's training loss is 5% below the first epoch's: the model has left chance."""
    return train_loss <= LEFT_CHANCE * first_loss


@dataclass
class EarlyStopping:
    """The stopping state of one training run, one ``update`` per epoch. The training loop and the scripts that replay
    a saved run's history under another rule (``benchmarks/patience_rules.py``) share it, so the two cannot drift.

    ``best`` is kept signed so that higher is better (a regression's MSE enters negated); ``learning``: whether the
    model has left chance, after which epochs that do not beat ``best`` count against ``patience``. A regression (lower
    is better) has no chance level to wait for, so it starts with ``learning`` set."""

    patience: int
    count_from: str = PATIENCE_FROM_VALIDATION
    higher_is_better: bool = True
    best: float | None = None
    bad_epochs: int = 0
    learning: bool = False
    first_loss: float | None = None  # the first trained epoch's training loss

    def __post_init__(self) -> None:
        check_patience_from(self.count_from)
        self.learning = self.learning or not self.higher_is_better

    def start(self, score: float) -> None:
        """The score of the starting point (an LP-FT head, epoch 0), kept unless a trained epoch beats it. A head
        already above chance on pretrained features has left chance under either rule: there is no first training
        loss yet to wait for."""
        self.best = score if self.higher_is_better else -score
        self.learning = self.learning or score > 0

    def update(self, train_loss: float, score: float) -> tuple[bool, bool]:
        """One trained epoch's training loss and validation score; returns (it is the best so far, stop now)."""
        if self.first_loss is None:
            self.first_loss = train_loss
        if self.count_from == PATIENCE_FROM_LOSS:
            self.learning = self.learning or left_chance(train_loss, self.first_loss)
        signed = score if self.higher_is_better else -score
        if self.best is None or signed > self.best:
            self.best, self.bad_epochs = signed, 0
            self.learning = self.learning or (self.count_from == PATIENCE_FROM_VALIDATION and score > 0)
            return True, False
        if not self.learning:
            return False, False
        self.bad_epochs += 1
        return False, self.bad_epochs >= self.patience


def stop_epoch(history: list[dict], patience: int, count_from: str, key: str = "val_mcc") -> int | None:
    """The epoch after which ``count_from`` would have stopped a run with this per-epoch ``history`` (rows with
    ``epoch``, ``train_loss`` and ``key``; an epoch-0 start row is the starting point), or None if it would have
    trained past the history's end. Training does not depend on the rule, so a run's epochs are the same under
    either rule up to the first one that stops it."""
    stopper = EarlyStopping(patience, count_from, higher_is_better=key != "val_mse")
    for row in history:
        if row["epoch"] == 0:
            stopper.start(row[key])
        elif stopper.update(row["train_loss"], row[key])[1]:
            return row["epoch"]
    return None
