"""The model card's ``HyenaDNAFineTuningModel``: a facade over the data path, the fine-tuning loop
(``hyenadna.training.finetune``) and persistence, for sequence classification or regression.

The validation split is made from train with a seed when none is given; test-time RC averaging is an option of
predict/evaluate; ``config.precision`` ("fp32" or "bf16") applies to training and inference alike.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor

from hyenadna.data.pipeline import ContextPolicy, fit_bases, iter_batches, plan_chunks
from hyenadna.metrics import chance_mcc, classification_metrics, regression_metrics
from hyenadna.models.hyena_dna import HyenaDNALMHeadModel, load_model
from hyenadna.pooling import POOLINGS, masked_pool
from hyenadna.sdk import HyenaDNAConfig, TokenizedSequences, build_model, tokenize_data
from hyenadna.tokenizer import A, CharacterTokenizer, T, pad_batch, reverse_complement_ids
from hyenadna.training.finetune import Recipe, SequenceModel, fine_tune, set_head_from_probe
from hyenadna.training.patience import PATIENCE_FROM_VALIDATION
from hyenadna.training.step_memory import KEPT_FREED_MEMORY_FACTOR, step_memory
from hyenadna.utils import memory
from hyenadna.utils.device import resolve_device, seeded
from hyenadna.utils.io import atomic_path, atomic_write_text
from hyenadna.utils.precision import autocast, parse_dtype

if TYPE_CHECKING:
    import pandas as pd

    from hyenadna.ism import IsmResult

HEADS = ("classification", "regression")
# fewer validation rows than this get a warning: a blind binary classifier's MCC on 50 rows has a standard error
# of 0.14 (metrics.chance_mcc)
MIN_VALIDATION_ROWS = 50


def target_score(outputs: np.ndarray | Tensor, target: int, classification: bool) -> Tensor:
    """Per row: a classifier's log-odds of class ``target`` from its logits, log p - log(1 - p), or a regressor's
    output ``target``; float64, from numpy outputs or from a tensor that carries gradients. What the mutagenesis
    maps and the variant effects of a fine-tuned model measure."""
    z = torch.as_tensor(outputs).double()
    if not classification:
        return z[:, target]
    others = torch.cat([z[:, :target], z[:, target + 1 :]], dim=1)
    return z[:, target] - torch.logsumexp(others, dim=1)


def cut_message(n_cut: int, n: int, max_bases: int, longest: str, length: int, use: str) -> str:
    """The warning for sequences longer than a fine-tuned model reads."""
    return (
        f"{n_cut:,} of {n:,} sequences are longer than the {max_bases:,} bases the model reads; each is {use} its "
        f"first {max_bases:,} (the longest, {longest!r}, has {length:,})"
    )


def no_dna_message(n_empty: int, n: int, name: str) -> str:
    """The warning for sequences that hold no base the model can read as DNA."""
    return (
        f"{n_empty:,} of {n:,} sequences hold no A, C, G or T (only N or IUPAC codes, read as N): their predictions "
        f"read no DNA (the first, {name!r})"
    )


def without_dna(data: TokenizedSequences) -> list[int]:
    """The indices of the sequences that hold no A, C, G or T."""
    return [k for k, ids in enumerate(data.ids) if not np.any((ids >= A) & (ids <= T))]


class HyenaDNAFineTuningModel:
    """A HyenaDNA backbone with a classification or regression head.

    >>> ft = HyenaDNAFineTuningModel(HyenaDNAConfig(device="cpu", batch_size=10), "classification", 2)  # doctest: +SKIP
    >>> ft.train(ft.process_data(train_sequences), train_labels)  # doctest: +SKIP

    The network is held, not inherited, so ``train(...)`` here never shadows PyTorch's ``Module.train()``:
    ``ft.network.train()`` / ``ft.network.eval()`` still work as usual.
    """

    def __init__(
        self,
        config: HyenaDNAConfig | None = None,
        head: str = "classification",
        output_size: int = 2,
        pooling: str | None = None,
        freeze_backbone: bool = False,
        label_names: list[str] | None = None,
        model: HyenaDNALMHeadModel | None = None,
    ):
        if head not in HEADS:
            raise ValueError(f"head={head!r}: choose one of {HEADS}")
        if output_size < 1 or (head == "classification" and output_size < 2):
            raise ValueError(f"output_size={output_size}: a classifier needs at least 2 classes")
        # fine-tuning meets many lengths, and oneDNN would keep a primitive for each (utils/memory.py): bound its
        # caches now, before the first forward pass (which may measure the kernel choices) makes oneDNN read them
        memory.bound_onednn_caches()
        self.config = config or HyenaDNAConfig()
        self.head_type = head
        self.output_size = output_size
        self.pooling = pooling or self.config.pooling or "mean"
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}: choose one of {POOLINGS}")
        self.freeze_backbone = freeze_backbone
        self.label_names = label_names
        if model is None:
            self.lm, self.source = build_model(self.config)
        else:
            self.lm, self.source = model, "given model"
            if self.config.gradient_checkpointing:  # a given model keeps its own settings unless the config asks
                model.gradient_checkpointing()
            if self.config.sequence_chunked:
                model.sequence_chunked()
        self.device = next(self.lm.parameters()).device
        self.tokenizer = CharacterTokenizer(self.config.framing, self.config.iupac_policy, self.config.n_to_pad)
        with seeded(self.config.seed):
            self.network = SequenceModel(self.lm.backbone, output_size, self.pooling).to(self.device)
        self.history: list[dict] = []
        self.head_trained = False  # by train() or as loaded; until then outputs come from a random head
        self._warned_untrained = False
        # the training rows' lengths in bases (min, median, max): the window a variant is scored in by default
        self.train_lengths: dict[str, int] | None = None

    @property
    def context_length(self) -> int:
        return self.config.max_length or self.lm.config.l_max

    @property
    def max_bases(self) -> int:
        """The most bases it reads of one sequence: the context less its framing tokens."""
        return self.context_length - len(self.tokenizer.prefix) - len(self.tokenizer.suffix)

    @property
    def input_length(self) -> int | None:
        """The length (bases) of the sequences it was trained on, their median; None for a model saved before
        training lengths were recorded."""
        return None if self.train_lengths is None else int(self.train_lengths["median"])

    def process_data(self, data: Any, names: list[str] | None = None) -> TokenizedSequences:
        return tokenize_data(self.tokenizer, data, names)

    # ---- batching -----------------------------------------------------------------------------------------------

    def _framed(self, base: np.ndarray, rc: bool) -> np.ndarray:
        """Bases cut to the context before framing and reverse-complementing (the data path's ``truncate``), so both
        strands hold the same bases and the framing survives."""
        base = fit_bases(base, self.tokenizer, ContextPolicy(self.context_length, "truncate"))
        return self.tokenizer.frame(reverse_complement_ids(base) if rc else base)

    def _warn_if_cut(self, data: TokenizedSequences, use: str, stacklevel: int = 3) -> None:
        """The model reads at most ``max_bases`` of a sequence (its first ones): say so, rather than answer in silence
        for bases it never read."""
        lengths = data.lengths
        too_long = np.flatnonzero(lengths > self.max_bases)
        if too_long.size:
            k = too_long[np.argmax(lengths[too_long])]
            message = cut_message(too_long.size, len(data), self.max_bases, data.names[k], int(lengths[k]), use)
            warnings.warn(message, stacklevel=stacklevel)

    def _warn_if_no_dna(self, data: TokenizedSequences, stacklevel: int = 3) -> None:
        """A sequence of N (a gap in a genome) still gets a prediction, from the head's bias and the model's reading
        of N: say so, rather than answer in silence as if it were evidence."""
        empty = without_dna(data)
        if empty:
            warnings.warn(no_dna_message(len(empty), len(data), data.names[empty[0]]), stacklevel=stacklevel)

    def _check_lengths(self, data: TokenizedSequences) -> int:
        """Warn about sequences longer than the context; the longest framed length a batch will have."""
        self._warn_if_cut(data, "trained on", stacklevel=4)
        framing = len(self.tokenizer.prefix) + len(self.tokenizer.suffix)
        return min(int(data.lengths.max()) + framing if len(data) else 0, self.context_length)

    def _class_names(self, indices: list[int]) -> str:
        return ", ".join(self.label_names[i] if self.label_names else str(i) for i in indices)

    def _check_classes(self, y: np.ndarray) -> None:
        """A classifier trained on one class learns nothing (refused); a class with no training row can never be
        predicted (a warning: a test set may still hold it)."""
        present = np.unique(y).tolist()
        if len(present) < 2:
            raise ValueError(
                f"every training label is class {self._class_names(present)}: a classifier needs training rows of "
                "at least two classes"
            )
        absent = sorted(set(range(self.output_size)) - set(present))
        if absent:
            warnings.warn(
                f"no training row has class {self._class_names(absent)}, so the model cannot learn to predict it",
                stacklevel=3,
            )

    def _check_validation(self, y: np.ndarray, y_val: np.ndarray) -> None:
        """Warn when the validation rows, which choose the kept epoch, are too few to tell epochs apart: an MCC on n
        rows moves by about 1/sqrt(n) from sampling alone."""
        n = len(y_val)
        problems = []
        if n < MIN_VALIDATION_ROWS:
            classifier = self.head_type == "classification"
            sd = chance_mcc(max(n, 1), self.output_size, z=1.0)
            spread = f" (a blind classifier's MCC on them has a standard error of {sd:.2f})"
            problems.append(f"only {n} rows" + (spread if classifier else ""))
        if self.head_type == "classification":
            missing = sorted(set(np.unique(y).tolist()) - set(np.unique(y_val).tolist()))
            if missing:
                problems.append(f"no row of class {self._class_names(missing)}")
        if problems:
            warnings.warn(
                f"the validation split, which chooses the epoch kept, has {' and '.join(problems)}: train on more "
                "rows, or give a validation set of its own (validation_data) or a larger validation_fraction",
                stacklevel=3,
            )

    def _check_step_memory(self, longest: int) -> bool:
        """Warn before training when a batch of the longest sequences would not fit in the memory available (on the
        CPU the kernel kills the process without a word), naming what lowers it (``training/step_memory.py``).
        Returns whether the memory the steps free can be kept between them (``KEPT_FREED_MEMORY_FACTOR`` times a
        step's, where it is known)."""
        if self.freeze_backbone or not longest:
            return True
        execution = self.lm.backbone.execution
        recompute, chunked = execution.gradient_checkpointing, execution.sequence_chunked
        tokens = longest * self.config.batch_size
        est = step_memory(self.lm.config, tokens, self.device, recompute, 1, self.config.precision, chunked)
        if est is None or est.fits():
            return est is None or est.fits(KEPT_FREED_MEMORY_FACTOR)
        fixes = (
            []
            if recompute or chunked
            else [f"gradient_checkpointing=True (about {est.need_checkpointed / 1e9:.1f} GB)"]
        )
        fixes += [] if chunked else [f"sequence_chunked=True (about {est.need_chunked / 1e9:.1f} GB)"]
        warnings.warn(
            f"{est.describe()}: training may be killed. Less memory: "
            + "; ".join([*fixes, "a smaller batch_size, or a shorter max_length"]),
            stacklevel=3,
        )
        return False

    def _labels(self, labels: Any, n: int) -> np.ndarray:
        y = np.asarray(labels)
        if len(y) != n:
            raise ValueError(f"{len(y)} labels for {n} sequences")
        if self.head_type == "classification":
            if y.ndim != 1:
                raise ValueError(
                    f"classification labels are one class a sequence; got an array of shape {y.shape}"
                    + (" (one-hot? give its argmax along axis 1)" if y.ndim == 2 else "")
                )
            if y.dtype.kind == "b" or (y.dtype.kind == "O" and all(isinstance(v, (bool, np.bool_)) for v in y)):
                y = y.astype(np.int64)  # False / True are classes 0 and 1, as scikit-learn orders them
            if y.dtype.kind == "O" and all(isinstance(v, (int, np.integer)) for v in y):
                y = y.astype(np.int64)  # integers in an object column (pandas) are indices, not names
            if y.dtype.kind == "O":
                missing = next((i for i, v in enumerate(y) if _is_missing(v)), None)
                if missing is not None:
                    raise ValueError(f"the label of sequence {missing} is missing ({y[missing]})")
            if y.dtype.kind in "USO" and n:
                y = self._indices_of_names(y)
            elif not np.issubdtype(y.dtype, np.integer):
                missing = np.flatnonzero(np.isnan(y)) if np.issubdtype(y.dtype, np.floating) else []
                if len(missing):
                    raise ValueError(f"the label of sequence {missing[0]} is missing ({y[missing[0]]})")
                if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                    y = y.astype(np.int64)
                else:
                    raise ValueError(
                        "classification labels must be integer class indices 0..output_size-1, or class names"
                    )
            bad = np.flatnonzero((y < 0) | (y >= self.output_size))
            if bad.size:
                raise ValueError(f"label {y[bad[0]]} of sequence {bad[0]} is outside 0..{self.output_size - 1}")
            return y.astype(np.int64)
        try:
            y = y.astype(np.float32)
        except (TypeError, ValueError):
            bad = next(i for i, v in enumerate(y.reshape(n, -1)) if not _is_number(v))
            raise ValueError(f"regression labels are numbers: sequence {bad} has {str(y[bad])!r}") from None
        per_sequence = y.size // max(n, 1)
        if per_sequence != self.output_size:
            raise ValueError(f"the labels have {per_sequence} value(s) a sequence, and the head {self.output_size}")
        y = y.reshape(n, -1) if self.output_size > 1 else y.reshape(n)
        bad = np.flatnonzero(~np.isfinite(y.reshape(n, -1)).all(axis=1))
        if bad.size:
            raise ValueError(f"regression labels are finite numbers: sequence {bad[0]} has {y[bad[0]]}")
        return y

    def _indices_of_names(self, y: np.ndarray) -> np.ndarray:
        """Class names as indices into ``label_names``, which the first names seen set in sorted order (as
        scikit-learn's ``LabelEncoder``) where none were given; predictions and a saved model then carry the names."""
        names = [str(v) for v in y]
        if self.label_names is None:
            found = sorted(set(names))
            if len(found) != self.output_size:
                raise ValueError(
                    f"the labels name {len(found)} classes ({', '.join(found[:5])}{', ...' if len(found) > 5 else ''})"
                    f" and the head has {self.output_size}: give label_names, in the head's order, when some class "
                    "has no row here"
                )
            self.label_names = found
        index = {str(name): i for i, name in enumerate(self.label_names)}
        unknown = next((i for i, v in enumerate(names) if v not in index), None)
        if unknown is not None:
            raise ValueError(
                f"label {names[unknown]!r} of sequence {unknown} is not a class name: {', '.join(map(str, index))}"
            )
        return np.array([index[v] for v in names], dtype=np.int64)

    # ---- training -------------------------------------------------------------------------------------------------

    def train(
        self,
        train_data: Any,
        train_labels: Any,
        validation_data: Any = None,
        validation_labels: Any = None,
        epochs: int = 10,
        lr: float = 6e-4,
        weight_decay: float = 0.1,
        warmup_fraction: float = 0.1,
        grad_clip: float = 1.0,
        patience: int = 3,
        patience_from: str = PATIENCE_FROM_VALIDATION,
        validation_fraction: float = 0.1,
        rc_augment: bool = False,
        rc_average: bool = False,
        head_init: str = "random",
        seed: int | None = None,
        progress: bool | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        checkpoint: str | Path | None = None,
        keep_freed_memory: bool | None = None,
    ) -> list[dict]:
        """Fit the head (and the backbone unless frozen). Early-stops on the validation metric (MCC for
        classification, MSE for regression) and restores the best epoch's weights. Returns the per-epoch history.
        A classifier's epochs count against ``patience`` from the first whose validation MCC beats chance (above 0):
        from random weights it can sit at chance for epochs before it learns. ``patience_from="training loss"``
        counts from the first whose training loss is 5% below the first epoch's instead, which a lucky score on a
        small validation split cannot start.

        ``head_init="random"`` starts from an N(0, 0.02) head. ``"probe"`` (classification) first fits the head as a
        logistic regression on the frozen, pooled features of the training split, then fine-tunes everything (LP-FT,
        Kumar et al. 2022), which helps when there are few epochs. The probe is scored on validation as epoch 0, so
        early stopping keeps it when no fine-tuned epoch beats it (its weights are large where features vary little,
        and with a high learning rate or a weak backbone the first epochs can undo it).
        Batches are drawn from length buckets, so variable-length tasks waste little compute on padding.
        ``on_epoch(row)`` receives each trained epoch's history row as it ends, with its seconds and tokens/s.
        ``checkpoint``: a file that receives the training state after every epoch; when it exists, training resumes
        from it exactly (the same data and arguments, checked), and once training has ended it holds the kept weights,
        so a second call returns at once.
        ``keep_freed_memory``: on the CPU, each step reuses the memory the last one freed instead of faulting in fresh
        pages (``utils/memory.py``; the same results, faster steps). None (the default) keeps it unless 2.5x a step's
        memory would not fit."""
        seed = self.config.seed if seed is None else seed
        recipe = Recipe(epochs, lr, weight_decay, warmup_fraction, grad_clip, patience, rc_augment, seed, patience_from)
        if head_init not in ("probe", "random"):
            raise ValueError(f"head_init={head_init!r}: choose 'probe' or 'random'")
        if head_init == "probe" and self.head_type != "classification":  # it was ignored
            raise ValueError("head_init='probe' fits a logistic regression: it is for a classification head")
        if (validation_data is None) != (validation_labels is None):  # labels alone were ignored, data alone failed
            given = "validation_data" if validation_labels is None else "validation_labels"
            raise ValueError(f"{given} was given alone: give validation_data and validation_labels together")
        if validation_data is None and not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction={validation_fraction}: the share of train held out, between 0 and 1")
        train = self.process_data(train_data)
        if not len(train):
            raise ValueError("no training sequences: train_data is empty")
        y = self._labels(train_labels, len(train))
        if self.head_type == "classification":
            self._check_classes(y)
        lengths = train.lengths
        self.train_lengths = {k: int(f(lengths)) for k, f in (("min", np.min), ("median", np.median), ("max", np.max))}
        if validation_data is None:
            train, y, val, y_val = _split(train, y, validation_fraction, seed, self.head_type == "classification")
            if self.head_type == "classification" and len(np.unique(y)) < 2:  # a class's rows all went to validation
                raise ValueError(
                    f"after the validation split ({len(val)} of {len(val) + len(train)} rows), every training label is "
                    f"class {self._class_names(np.unique(y).tolist())}: give more rows of each class, or a validation "
                    "set of its own (validation_data)"
                )
        else:
            val = self.process_data(validation_data)
            y_val = self._labels(validation_labels, len(val))
            self._warn_if_cut(val, "validated on")
        self._check_validation(y, y_val)
        kept_fits = self._check_step_memory(self._check_lengths(train))
        keep = kept_fits if keep_freed_memory is None else keep_freed_memory
        for p in self.network.backbone.parameters():
            p.requires_grad_(not self.freeze_backbone)
        key = "mcc" if self.head_type == "classification" else "mse"
        start = None
        if head_init == "probe" and self.head_type == "classification":

            def start() -> dict[str, float]:  # not called when resuming: the checkpoint holds the head
                self._init_head_from_probe(train, y, seed)
                return self._scores(val, y_val, rc_average)

        def make_batch(idx: np.ndarray, flips: np.ndarray):
            return pad_batch([self._framed(train.ids[i], f) for i, f in zip(idx, flips, strict=True)])

        def loss_fn(out: Tensor, idx: np.ndarray) -> Tensor:
            target = torch.from_numpy(y[idx]).to(self.device)
            if self.head_type == "classification":
                return F.cross_entropy(out, target)
            return F.mse_loss(out.squeeze(-1) if self.output_size == 1 else out, target)

        self.history = fine_tune(
            self.network,
            np.array([len(x) for x in train.ids]),
            make_batch,
            loss_fn,
            lambda: self._scores(val, y_val, rc_average),
            key,
            recipe,
            self.config.batch_size,
            self.config.precision,
            start,
            progress if progress is not None else self.config.progress,
            on_epoch,
            checkpoint,
            None
            if checkpoint is None
            else {
                "data": _data_digest(train, y, val, y_val),
                "head_init": head_init,
                "rc_average": rc_average,
                "frozen_backbone": self.freeze_backbone,
                "pooling": self.pooling,
            },
            keep_freed_memory=keep,
        )
        self.head_trained = True
        return self.history

    def _batches(self, data: TokenizedSequences, strands: int = 1):
        """(chunks, padded batch) from the data path: bases cut to the context, length-bucketed batches."""
        chunks = plan_chunks(data.ids, self.tokenizer, ContextPolicy(self.context_length, "truncate"), strands)
        return iter_batches(chunks, self.config.batch_size, self.device)

    @torch.no_grad()
    def _init_head_from_probe(self, train: TokenizedSequences, y: np.ndarray, seed: int) -> None:
        """Set the linear head to a logistic regression fitted on the frozen pooled features (scaler folded in)."""
        if len(np.unique(y)) < 2:
            return
        set_head_from_probe(self.network.head, self._pooled_features(train), y, seed)

    @torch.no_grad()
    def _pooled_features(self, data: TokenizedSequences) -> np.ndarray:
        """The backbone's pooled features of each sequence, (N, d_model) float32 in input order, as the head reads
        them (the network is left in eval mode)."""
        self.network.eval()
        feats = np.zeros((len(data), self.network.head.in_features), dtype=np.float32)
        for batch, enc in self._batches(data):
            with autocast(self.device, self.config.precision):
                pooled = masked_pool(self.network.backbone(enc.input_ids), enc.attention_mask, self.pooling)
            feats[[c.seq for c in batch]] = pooled.float().cpu().numpy()
        return feats

    # ---- inference ------------------------------------------------------------------------------------------------

    def _warn_if_untrained(self) -> None:
        """Once a model: inference on a random head is almost always a forgotten train() or load()."""
        if not self.head_trained and not self._warned_untrained:
            self._warned_untrained = True
            warnings.warn(
                f"this {self.head_type} head has not been trained: its outputs come from random weights (train() "
                "it first, or load() a fine-tuned model)",
                stacklevel=3,
            )

    def get_outputs(self, data: Any, rc_average: bool = False) -> np.ndarray:
        """Logits (classification) or values (regression), (N, output_size), in input order. A sequence longer than
        ``max_bases`` is read from its first ``max_bases`` bases, with a warning."""
        self._warn_if_untrained()
        data = self.process_data(data)
        self._warn_if_cut(data, "predicted from")
        self._warn_if_no_dna(data)
        return self._outputs(data, rc_average)

    @torch.no_grad()
    def _outputs(self, data: TokenizedSequences, rc_average: bool) -> np.ndarray:
        was_training = self.network.training
        self.network.eval()
        strands = 2 if rc_average else 1
        out = np.zeros((len(data), self.output_size), dtype=np.float32)
        for batch, enc in self._batches(data, strands):
            with autocast(self.device, self.config.precision):
                logits = self.network(enc.input_ids, enc.attention_mask)
            np.add.at(out, [c.seq for c in batch], logits.float().cpu().numpy() / strands)
        self.network.train(was_training)
        return out

    def predict(self, data: Any, rc_average: bool = False) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Classification: (labels, class probabilities). Regression: the predicted values."""
        self._warn_if_untrained()
        data = self.process_data(data)
        self._warn_if_cut(data, "predicted from")
        self._warn_if_no_dna(data)
        return self._predictions(self._outputs(data, rc_average))

    def _predictions(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        if self.head_type == "regression":
            return outputs[:, 0] if self.output_size == 1 else outputs
        probs = torch.softmax(torch.from_numpy(outputs), dim=-1).numpy()
        return probs.argmax(1), probs

    def mutagenesis(
        self,
        sequence: str,
        target: int | None = None,
        rc_average: bool = False,
        method: str = "exact",
        strand: str = "+",
    ) -> IsmResult:
        """In-silico mutagenesis of this model's prediction for ``sequence``: every substitution scored by how it moves
        a classifier's log-odds of class ``target`` (default: the class predicted for ``sequence``) or a regressor's
        output ``target`` (``hyenadna.ism.classifier_mutagenesis``; ``method="gradient"``: a first-order estimate
        from one backward pass; ``strand="-"``: the model reads the reverse complement, the map stays on ``sequence``).
        ``.effect`` is (length, 4) over A, C, G, T, ``.importance`` one value per position; ``hyenadna.ism.plot_ism``
        draws both."""
        from hyenadna.ism import classifier_mutagenesis

        self._warn_if_untrained()
        return classifier_mutagenesis(self, sequence, target, rc_average, method=method, strand=strand)

    def variant_effects(
        self,
        vcf: str | Path,
        genome: str | Path,
        window: int | None = None,
        target: int | None = None,
        rc_average: bool = False,
        regions: str | Path | None = None,
    ) -> pd.DataFrame:
        """How each VCF allele moves this model's prediction: one row per (variant, ALT allele), in VCF order. The
        model reads ``window`` bases of ``genome`` with the variant at their middle (default: as long as the
        sequences it was trained on), once as the reference and once with the allele; or, with ``regions`` (a BED
        file with strands), each region that holds the variant, as it was trained to read such regions (a promoter
        window on its gene's strand), one row per (allele, region). A classifier gives the log-odds of class
        ``target`` (default: the class it predicts for the reference window) on both and ``delta_log_odds``, that
        class's probability on both and the class predicted for each; a regressor ``delta_value``. Alleles that
        cannot be scored keep a ``status`` (``hyenadna.vep.classifier_variant_blocks``)."""
        from hyenadna.vep import classifier_variant_effects, classifier_vep_columns, effects_table

        self._warn_if_untrained()
        rows = list(classifier_variant_effects(self, vcf, genome, window, target, rc_average, regions))
        return effects_table(rows, classifier_vep_columns(self.head_type == "classification", regions is not None))

    def check_target(self, target: int) -> None:
        """The index of one of its outputs (a class, or a regression output), else a ValueError."""
        if not 0 <= target < self.output_size:
            raise ValueError(f"target {target}: the model has outputs 0 to {self.output_size - 1}")

    def evaluate(self, data: Any, labels: Any, rc_average: bool = False) -> dict[str, float]:
        self._warn_if_untrained()
        data = self.process_data(data)
        if not len(data):
            raise ValueError("no sequences to evaluate: data is empty")
        y = self._labels(labels, len(data))
        self._warn_if_cut(data, "predicted from")
        return self._scores(data, y, rc_average)

    def _scores(self, data: TokenizedSequences, y: np.ndarray, rc_average: bool) -> dict[str, float]:
        predictions = self._predictions(self._outputs(data, rc_average))
        if self.head_type == "classification":
            return classification_metrics(y, predictions[0], self.output_size)
        return regression_metrics(y, predictions)

    # ---- persistence ----------------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """``backbone/`` (save_pretrained layout) + ``head.safetensors`` + ``finetune.json``."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"{directory} is a file; a fine-tuned model is saved as a folder")
        self.lm.save_pretrained(directory / "backbone")
        head = {k: v.detach().cpu().contiguous() for k, v in self.network.head.state_dict().items()}
        with atomic_path(directory / "head.safetensors") as tmp:
            save_file(head, tmp)
        meta = {
            "head": self.head_type,
            "output_size": self.output_size,
            "pooling": self.pooling,
            "label_names": self.label_names,
            "framing": self.config.framing,
            "iupac_policy": self.config.iupac_policy,
            "n_to_pad": self.config.n_to_pad,
            "max_length": self.context_length,
            "history": self.history,
            "train_lengths": self.train_lengths,
            "head_trained": self.head_trained,
        }
        atomic_write_text(directory / "finetune.json", json.dumps(meta, indent=1))
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, device: str = "cpu", batch_size: int = 8, **options: Any
    ) -> HyenaDNAFineTuningModel:
        """A model ``save`` wrote. ``device``: "cpu", "cuda[:N]", "mps" or "auto"; ``options``: other
        ``HyenaDNAConfig`` fields for running it (``precision``, ``dtype``, ``progress``, ...); those the saved
        model fixes (its tokenization and context) are refused."""
        directory = Path(directory)
        meta_path = directory / "finetune.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{directory}: not a fine-tuned model (finetune.json is missing)")
        fixed = sorted(set(options) & set(_FIXED_BY_SAVE))
        if fixed:
            raise ValueError(f"{', '.join(fixed)}: fixed by the saved model, which was trained with its own")
        meta = json.loads(meta_path.read_text())
        device = str(resolve_device(device))  # "auto" and a missing CUDA, as everywhere else
        config = HyenaDNAConfig(
            model_path=directory / "backbone",
            device=device,
            batch_size=batch_size,
            framing=meta["framing"],
            iupac_policy=meta["iupac_policy"],
            n_to_pad=meta["n_to_pad"],
            max_length=meta["max_length"],
            **options,
        )
        lm = load_model(directory / "backbone", device=device, dtype=parse_dtype(config.dtype))
        ft = cls(config, meta["head"], meta["output_size"], meta["pooling"], label_names=meta["label_names"], model=lm)
        ft.network.head.load_state_dict(load_file(directory / "head.safetensors"))
        ft.history = meta.get("history", [])
        ft.train_lengths = meta.get("train_lengths")
        ft.head_trained = meta.get("head_trained", True)  # saves from before the flag were of trained models
        ft.network.eval()
        return ft


# HyenaDNAConfig fields a saved fine-tuned model sets itself
_FIXED_BY_SAVE = (
    "model_name",
    "model_path",
    "pretrained",
    "framing",
    "iupac_policy",
    "n_to_pad",
    "max_length",
    "model_overrides",
    "pooling",
)


def _is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA (whose comparisons are neither true nor false)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:
        return True


def _is_number(values: Any) -> bool:
    try:
        np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        return False
    return True


def _split(data: TokenizedSequences, y: np.ndarray, fraction: float, seed: int, stratify: bool):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data))
    strat = y if stratify and np.bincount(y).min(initial=0) >= 2 else None
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strat)
    pick = lambda ii: TokenizedSequences([data.ids[i] for i in ii], [data.names[i] for i in ii])  # noqa: E731
    return pick(tr), y[tr], pick(va), y[va]


def _data_digest(*parts: TokenizedSequences | np.ndarray) -> str:
    """A short hash of the training and validation tokens and labels: a checkpoint resumes only on the same data."""
    h = hashlib.sha256()
    for part in parts:
        for a in part.ids if isinstance(part, TokenizedSequences) else [part]:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype}:{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]
