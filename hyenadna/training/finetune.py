"""The fine-tuning loop behind ``HyenaDNAFineTuningModel``.

The recipe follows the paper and Caduceus, with an honest protocol: AdamW with the reference parameter groups, a
cosine schedule with warm-up, grad clip, early stopping on a validation split that restores the best epoch's weights
(and waits for a classifier to leave chance before it counts epochs), optional reverse-complement augmentation, and
batches drawn from length buckets. ``precision="bf16"`` runs the forward passes under bf16 autocast (the FFT
convolution and the residual stream stay fp32).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from hyenadna.models.hyena_dna import HyenaDNAModel
from hyenadna.pooling import masked_pool
from hyenadna.tokenizer import BatchEncoding
from hyenadna.training.optim import build_optimizer, cosine_lr
from hyenadna.training.patience import PATIENCE_FROM_VALIDATION, EarlyStopping, check_patience_from
from hyenadna.utils.device import rng_state, seeded, set_rng_state
from hyenadna.utils.io import atomic_path
from hyenadna.utils.memory import reuse_freed_memory, trim_if_grown
from hyenadna.utils.precision import autocast, grad_scaler


class SequenceModel(nn.Module):
    """Backbone -> mask-aware pooling -> linear head."""

    def __init__(self, backbone: HyenaDNAModel, output_size: int, pooling: str = "mean"):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.head = nn.Linear(backbone.config.d_model, output_size)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        return self.head(masked_pool(self.backbone(input_ids), mask, self.pooling).float())


@dataclass(frozen=True)
class Recipe:
    epochs: int = 10
    lr: float = 6e-4
    weight_decay: float = 0.1
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    patience: int = 3
    rc_augment: bool = False
    seed: int = 0
    patience_from: str = PATIENCE_FROM_VALIDATION  # when epochs start to count against patience (training/patience.py)

    def __post_init__(self) -> None:
        wrong = [
            f"{name}={value!r} (needs {need})"
            for name, value, ok, need in (
                ("epochs", self.epochs, self.epochs >= 0, ">= 0"),
                ("patience", self.patience, self.patience >= 1, ">= 1"),
                ("lr", self.lr, self.lr > 0, "> 0"),
                ("weight_decay", self.weight_decay, self.weight_decay >= 0, ">= 0"),
                ("warmup_fraction", self.warmup_fraction, 0 <= self.warmup_fraction <= 1, "0 to 1"),
                ("grad_clip", self.grad_clip, self.grad_clip > 0, "> 0"),
            )
            if not ok  # also catches NaN, which fails every comparison
        ]
        if wrong:
            raise ValueError(", ".join(wrong))
        check_patience_from(self.patience_from)


def _identity_recipe(recipe: Recipe) -> dict:
    """The recipe as a checkpoint's identity holds it; the default patience rule is left out, so that checkpoints
    written before the rule could be chosen still resume."""
    fields = asdict(recipe)
    if fields["patience_from"] == PATIENCE_FROM_VALIDATION:
        del fields["patience_from"]
    return fields


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar lengths: shuffle, sort within pools of 50 batches by length, cut, shuffle batches."""
    order = rng.permutation(len(lengths))
    pool = 50 * batch_size
    batches = []
    for p in range(0, len(order), pool):
        chunk = order[p : p + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def fine_tune(
    network: SequenceModel,
    lengths: np.ndarray,
    make_batch: Callable[[np.ndarray, np.ndarray], BatchEncoding],
    loss_fn: Callable[[Tensor, np.ndarray], Tensor],
    validate: Callable[[], dict[str, float]],
    key: str,
    recipe: Recipe,
    batch_size: int,
    precision: str = "fp32",
    start: Callable[[], dict[str, float]] | None = None,
    progress: bool | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    checkpoint: str | Path | None = None,
    run_identity: dict | None = None,
    keep_freed_memory: bool = False,
) -> list[dict]:
    """Train ``network`` on the sequences whose lengths are given; returns the per-epoch history.

    ``make_batch(indices, flips)`` builds a padded batch (``flips``: reverse-complement those rows); ``loss_fn(out,
    indices)`` scores the network's output; ``validate()`` returns validation metrics, of which ``key`` is the one
    early stopping watches (MCC, higher is better; "mse", lower is better). A classifier's epochs count against
    ``recipe.patience`` only once it has left chance (``recipe.patience_from``: its validation MCC above 0, or its
    training loss 5% below the first epoch's): from random weights a classifier can sit at chance for several epochs
    before it starts to learn, and stopping it there kept a network that predicts one class.
    ``start()``: sets the network's starting point (an LP-FT head) and returns its validation metrics, recorded as
    epoch 0 and kept unless a trained epoch beats it. ``on_epoch(row)`` is called with each trained epoch's history
    row plus its seconds and training tokens/s, for callers that log progress in their own way (the benchmark's
    workers, where progress bars would interleave).

    ``checkpoint``: a file that receives the whole training state after every epoch (weights, AdamW state, the kept
    epoch's weights, step, history and every RNG), written atomically. When it exists, training resumes from it and
    goes on exactly as it would have without the interruption (on the same kind of machine: float rounding follows
    the kernels, ops/autotune.py); once training has ended it holds the kept weights, and a call with it returns at
    once. It must come from the same starting weights and recipe (checked), and from the same data and settings,
    which the caller describes in ``run_identity`` (a JSON-able dict, e.g. a digest of the data; checked too).

    ``keep_freed_memory``: train inside ``utils.memory.reuse_freed_memory`` (on the CPU), so that each step's large
    activations come from memory the last step freed instead of fresh pages faulted in; the heap's growth from
    batches of many lengths is still trimmed (``trim_if_grown``). Float results are the same either way.
    """
    device = next(network.parameters()).device
    optimizer = build_optimizer(network, recipe.lr, recipe.weight_decay)
    steps_per_epoch = -(-len(lengths) // batch_size)
    total = recipe.epochs * steps_per_epoch
    warmup = int(recipe.warmup_fraction * total)
    rng = np.random.default_rng(recipe.seed)
    identity, saved = None, None
    if checkpoint is not None:  # hashing the weights is for checkpoints only
        from hyenadna.probe import model_fingerprint

        run = {"batch_size": batch_size, "precision": precision, "key": key, "sequences": len(lengths)}
        run |= {"bases": int(lengths.sum()), "weights": model_fingerprint(network), **(run_identity or {})}
        identity = json.dumps({**_identity_recipe(recipe), **run}, sort_keys=True)
        saved = read_checkpoint(checkpoint, identity)
    history: list[dict] = []
    best_state, step, first_epoch, spent = None, 0, 0, 0.0
    stopper = EarlyStopping(recipe.patience, recipe.patience_from, higher_is_better=key != "mse")
    if saved is not None:
        network.load_state_dict(saved["network"])
        history, spent = json.loads(saved["history"]), saved["seconds"]
        if saved["finished"]:
            network.eval()
            return history
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = json.loads(saved["numpy_rng"])
        best_state, step, first_epoch = saved["best_state"], saved["step"], saved["epoch"]
        stopper.best, stopper.bad_epochs, stopper.learning = saved["best"], saved["bad_epochs"], saved["learning"]
        stopper.first_loss = next((h["train_loss"] for h in history if h["epoch"] > 0), None)
    elif start is not None:
        metrics = start()
        history.append({"epoch": 0, "train_loss": None, **{f"val_{k}": v for k, v in metrics.items()}})
        stopper.start(metrics[key])
        best_state = _snapshot(network)
    scaler = grad_scaler(device, precision)
    if saved is not None and saved["scaler"]:
        scaler.load_state_dict(saved["scaler"])
    t_start = time.perf_counter() - spent
    keep = keep_freed_memory and device.type == "cpu"
    with seeded(recipe.seed), reuse_freed_memory(keep):
        if saved is not None:
            set_rng_state(saved["torch_rng"])
        for epoch in range(first_epoch, recipe.epochs):
            network.train()
            batches = bucketed_batches(lengths, batch_size, rng)
            flips = rng.random(len(lengths)) < 0.5 if recipe.rc_augment else np.zeros(len(lengths), bool)
            bar = tqdm(
                batches,
                desc=f"epoch {epoch + 1}/{recipe.epochs}",
                leave=False,
                disable=not progress if progress is not None else None,
            )
            loss_sum, t0, bases = 0.0, time.perf_counter(), 0
            for idx in bar:
                enc = make_batch(idx, flips[idx]).to(device)
                for g in optimizer.param_groups:
                    g["lr"] = cosine_lr(step, total, recipe.lr, warmup)
                with autocast(device, precision):
                    out = network(enc.input_ids, enc.attention_mask)
                loss = loss_fn(out.float(), idx)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(network.parameters(), recipe.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                loss_value = loss.item()
                loss_sum += loss_value
                # batches of many lengths otherwise grow the heap without bound (utils/memory.py)
                trim_if_grown(inside_reuse=keep)
                bases += int(lengths[idx].sum())
                bar.set_postfix(loss=f"{loss_value:.4f}", bases_per_s=f"{bases / (time.perf_counter() - t0):,.0f}")
            bar.close()
            train_seconds = time.perf_counter() - t0
            bases_per_s = bases / train_seconds  # every row once an epoch
            scores = validate()
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / steps_per_epoch,
                **{f"val_{k}": v for k, v in scores.items()},
            }
            history.append(row)  # results only: the history of a seed is the same on every run
            if on_epoch is not None:
                seconds = time.perf_counter() - t0
                on_epoch({**row, "seconds": seconds, "train_tokens_per_s": bases_per_s})
            if progress is not False:
                tqdm.write(
                    f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, validation {key} {scores[key]:.4f} "
                    f"({train_seconds:.0f} s, {bases_per_s:,.0f} bases/s)"
                )
            improved, stop = stopper.update(row["train_loss"], scores[key])
            if improved:
                best_state = _snapshot(network)
            if checkpoint is not None and not stop and epoch + 1 < recipe.epochs:
                state = {
                    "network": network.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "numpy_rng": json.dumps(rng.bit_generator.state),
                    "torch_rng": rng_state(),
                    "best": stopper.best,
                    "best_state": best_state,
                    "bad_epochs": stopper.bad_epochs,
                    "step": step,
                    "learning": stopper.learning,
                }
                _write_checkpoint(checkpoint, identity, history, time.perf_counter() - t_start, False, state)
            if stop:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    if checkpoint is not None:
        _write_checkpoint(
            checkpoint, identity, history, time.perf_counter() - t_start, True, {"network": network.state_dict()}
        )
    return history


def read_checkpoint(path: str | Path, identity: str | None = None) -> dict | None:
    """A training state ``fine_tune`` saved at ``path`` (None when there is none): ``epoch`` (the epochs done),
    ``finished``, ``seconds`` (training time so far) and the tensors. ``identity``: the run's data and recipe, checked
    against the saved one."""
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a fine-tuning checkpoint of this version (format {state.get('format')!r})")
    if identity is not None and (diff := _identity_difference(json.loads(state["identity"]), json.loads(identity))):
        raise ValueError(
            f"{path} holds another training run ({diff}): give this run another checkpoint path, or remove the file "
            "to start again"
        )
    state["epoch"] = max((h["epoch"] for h in json.loads(state["history"])), default=0)  # the epochs trained
    return state


CHECKPOINT_FORMAT = 1
_DIGESTS = {"weights": "the starting weights differ (another model, head or seed)", "data": "the data differ"}


def _identity_difference(theirs: dict, ours: dict) -> str:
    """What differs between a saved run's identity and this one's, in words; "" when nothing does. A key the saved
    run did not record (a checkpoint written before it was recorded) is not compared."""
    diff = [k for k in ours if k in theirs and theirs[k] != ours[k]]
    return ", ".join(_DIGESTS.get(k) or f"{k} {theirs[k]} there, {ours[k]} here" for k in diff)


def _write_checkpoint(path, identity: str, history: list, seconds: float, finished: bool, state: dict) -> None:
    meta = {"format": CHECKPOINT_FORMAT, "identity": identity, "history": json.dumps(history), "seconds": seconds}
    with atomic_path(path) as tmp:
        torch.save({**meta, "finished": finished, **state}, tmp)


@torch.no_grad()
def set_head_from_probe(head: nn.Linear, features: np.ndarray, y: np.ndarray, seed: int) -> None:
    """LP-FT's start: the linear head set to a logistic regression fitted on frozen pooled features, with the
    standardisation folded into its weights."""
    from hyenadna.probe import make_probe

    probe = make_probe("logreg", seed, C=0.1).fit(features, y)
    scaler, lr = probe[0], probe[-1]
    coef = lr.coef_ / scaler.scale_  # logits = x @ coef.T + intercept after folding the standardisation
    intercept = lr.intercept_ - (scaler.mean_ / scaler.scale_) @ lr.coef_.T
    weight = np.zeros((head.out_features, coef.shape[1]), dtype=np.float32)
    bias = np.zeros(head.out_features, dtype=np.float32)
    classes = lr.classes_.astype(int)
    if coef.shape[0] == 1:  # binary: sklearn gives the logit of classes[1] against classes[0]
        weight[classes[1]], bias[classes[1]] = coef[0], intercept[0]
    else:
        weight[classes], bias[classes] = coef, intercept
    head.weight.copy_(torch.from_numpy(weight))
    head.bias.copy_(torch.from_numpy(bias))


def _snapshot(network: nn.Module) -> dict[str, Tensor]:
    return copy.deepcopy({k: v.detach().cpu() for k, v in network.state_dict().items()})
