"""Does a model use its long context? Held-out NLL by position in the window, with the full context and cut short.

A target at position t of a window has t tokens of left context. If the model uses long context, its NLL keeps
falling with t well past the point where the same model, given only C tokens of context, levels off.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from hyenadna.utils.io import save_figure

BAND_EDGES = (1024, 4096, 16384)


def _token_nll(model, w: torch.Tensor) -> torch.Tensor:
    """(B, T-1) NLL of every target of the (B, T) token windows ``w``."""
    logits = model(w[:, :-1]).logits.float()
    return F.cross_entropy(logits.transpose(1, 2), w[:, 1:], reduction="none")


def position_nll(model, windows: np.ndarray, batch_size: int = 1, context: int | None = None) -> np.ndarray:
    """Mean NLL (nats/base) at each target position 1..T-1 of the (N, T) token windows; entry j is position j + 1.

    With ``context`` C (even), no target sees more than C tokens: the window is read in pieces of C tokens every C/2,
    and each piece scores the targets of its second half (the first piece all of its own), so every target past
    position C has between C/2 and C tokens of context, and each target is scored exactly once."""
    return target_nll(model, windows, batch_size, context).mean(0)


@torch.no_grad()
def target_nll(model, windows: np.ndarray, batch_size: int = 1, context: int | None = None) -> np.ndarray:
    """(N, T-1) NLL of every target of the (N, T) token windows, each window's own: ``position_nll`` before the mean
    over windows, for questions about particular targets (``repeat_lookup``)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n_targets = windows.shape[1] - 1
    out = np.zeros((len(windows), n_targets))
    if context is not None and (context < 2 or context % 2):
        raise ValueError(f"context={context}: give an even number of tokens >= 2")
    for i in range(0, len(windows), batch_size):
        w = torch.from_numpy(windows[i : i + batch_size]).to(device)
        rows = out[i : i + batch_size]
        if context is None or context >= n_targets:
            rows[:] = _token_nll(model, w).cpu().numpy()
            continue
        half = context // 2
        for start in range(0, n_targets, half):
            nll = _token_nll(model, w[:, start : start + context + 1])  # targets start+1 .. start+context
            first = 0 if start == 0 else half
            if first < nll.shape[1]:
                rows[:, start + first : start + nll.shape[1]] = nll[:, first:].cpu().numpy()
    model.train(was_training)
    return out


def cut_context_start(position: np.ndarray, context: int) -> np.ndarray:
    """The first token a target at 1-based ``position`` sees when ``target_nll`` cuts the context to ``context``
    tokens (pieces of ``context`` tokens every ``context // 2``)."""
    half = context // 2
    return np.where(position <= context, 0, half * ((position - 1) // half - 1))


def repeat_lookup(window: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each target position 1..T-1 of a (T,) token window (entry j is position j + 1): how far back the k tokens
    before the target occurred last, counted between the ends of the two k-mers (0: nowhere earlier in the window),
    and the token that followed that occurrence (-1: none). That token is what a model copying from its context (an
    induction head) would predict, so the distance says how much context a target needs to be predicted by copying.
    k-mers holding a token other than A/C/G/T are not looked up."""
    from hyenadna.tokenizer import A, T

    n_targets = len(window) - 1
    distance = np.zeros(n_targets, dtype=np.int64)
    copied = np.full(n_targets, -1, dtype=np.int64)
    acgt = (window >= A) & (window <= T)
    bad = np.concatenate([[0], np.cumsum(~acgt)])  # bad[e] - bad[s]: non-ACGT tokens in window[s:e]
    last: dict[bytes, int] = {}
    window = np.ascontiguousarray(window, dtype=np.int64)
    for j in range(k - 1, n_targets):  # the k-mer window[j-k+1 .. j] precedes target j + 1
        if bad[j + 1] - bad[j - k + 1]:
            continue
        key = window[j - k + 1 : j + 1].tobytes()
        i = last.get(key)
        if i is not None:
            distance[j], copied[j] = j - i, window[i + 1]
        last[key] = j
    return distance, copied


def band_means(per_position: np.ndarray, edges: tuple[int, ...] = BAND_EDGES, min_targets: int = 256) -> dict:
    """Mean NLL of the targets in each position band [0, e1), [e1, e2), ..., [e_last, end) holding at least
    ``min_targets`` positions (a 16,385-token window has a single target at 16k+: no band to report)."""
    positions = np.arange(1, len(per_position) + 1)
    bounds = [0, *edges, None]
    out = {}
    for lo, hi in itertools.pairwise(bounds):
        mask = positions >= lo if hi is None else (positions >= lo) & (positions < hi)
        if mask.sum() >= min_targets:
            out[f"{_k(lo)}-{_k(hi) if hi else 'end'}"] = float(per_position[mask].mean())
    return out


def _k(n: int) -> str:
    return f"{n // 1024}k" if n and n % 1024 == 0 else str(n)


def plot_position_curves(curves: dict[str, np.ndarray], out: str, title: str, bins: int = 40) -> None:
    """NLL against position (log-spaced bins), one line per curve, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, curve in curves.items():
        edges = np.unique(np.geomspace(1, len(curve) + 1, bins + 1).astype(int))
        centres = [np.sqrt(a * b) for a, b in itertools.pairwise(edges)]
        means = [curve[a - 1 : b - 1].mean() for a, b in itertools.pairwise(edges)]
        ax.plot(centres, means, marker=".", label=label)
    for e in BAND_EDGES:
        if e < len(next(iter(curves.values()))):
            ax.axvline(e, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("position in the window (tokens of left context)")
    ax.set_ylabel("held-out NLL (nats/base)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out)


@torch.no_grad()
def filter_reach(model, edges: tuple[int, ...] = (16, *BAND_EDGES)) -> list[dict]:
    """Where each Hyena layer's long-convolution filter puts its weight: the share of the filter's energy
    (sum over channels of h(t)^2) at each band of lags [0, e1), [e1, e2), ..., up to l_max, and the RMS over channels
    at every lag. A model can only use context as far back as its filters reach; reaching is not using, though (the
    position curves tell that)."""
    layers = []
    for layer in model.backbone.layers:
        fn = layer.mixer.filter_fn
        h = fn.filter(fn.l_max).float()  # (D, taps)
        energy = (h**2).sum(0)
        total = float(energy.sum())
        bounds = [0, *[e for e in edges if e < fn.l_max], fn.l_max]
        shares = {f"{lo}-{hi}": float(energy[lo:hi].sum()) / total for lo, hi in itertools.pairwise(bounds) if hi > lo}
        layers.append({"l_max": fn.l_max, "energy_share": shares, "rms": (energy / h.shape[0]).sqrt().cpu().numpy()})
    return layers


def plot_filter_reach(reach: dict[str, list[dict]], out: str, title: str) -> None:
    """RMS filter tap against lag (log-log), one line per model and layer, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, layers in reach.items():
        for i, layer in enumerate(layers):
            lags = np.arange(1, len(layer["rms"]) + 1)
            ax.plot(lags, layer["rms"], lw=0.8, label=f"{name}, layer {i + 1}")
    for e in BAND_EDGES:
        ax.axvline(e, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lag (tokens back)")
    ax.set_ylabel("filter RMS over channels")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)
