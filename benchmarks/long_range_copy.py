"""Can a HyenaDNA stack learn to read one position far back at all? A synthetic task separates what the architecture
and this implementation can do from what human DNA rewards: each sequence is ``lag`` random bases followed by a copy
of them, so the second half is predictable only by reading exactly ``lag`` positions back (perfectly: 0 nats/base),
and the first half not at all (ln 4 = 1.386). The bundled 16k models score their far context no better than a cut
context (docs/pretraining); if a model of their shape cannot learn this copy at a long lag either, the limit is the
filter's, not the data's.

    .venv/bin/python benchmarks/long_range_copy.py --lags 8192 1024 64 --steps 1500 --eval-every 100 \\
        --tokens-per-step 4096 --out docs/pretraining/long_range_copy/copy_lmax16386.json

(every run on the page, with its command: docs/pretraining/long_range_copy/README.md)

Every model has the bundled 16k models' filter grid (l_max 16,386: the implicit filter is a function of lag / l_max),
d_model 64 and 2 layers unless told otherwise, no dropout, and trains on the same number of tokens a step at every
lag. ``--emb-dims`` sets the implicit filter's positional features (5, every published model: t and 2 cos/sin bands;
33: 16 bands), the knob that decides how sharp a filter can be. The JSON is rewritten after each evaluation, and a
PNG of the copy half's NLL against steps written beside it; ``--plot PNG JSON...`` draws several files' runs in one.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from hyenadna.models.config import HyenaConfig
from hyenadna.models.hyena_dna import HyenaDNALMHeadModel
from hyenadna.tokenizer import A
from hyenadna.training.optim import build_optimizer, cosine_lr
from hyenadna.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
LN4 = math.log(4)


def copy_batch(rng: np.random.Generator, batch: int, lag: int) -> torch.Tensor:
    """(batch, 2 * lag) token ids: ``lag`` random bases, then the same bases again."""
    first = rng.integers(A, A + 4, size=(batch, lag))
    return torch.from_numpy(np.concatenate([first, first], axis=1))


def half_nlls(model: HyenaDNALMHeadModel, ids: torch.Tensor, lag: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean NLL (nats/base) of the targets in the first half (unpredictable) and in the copy (predictable from
    exactly ``lag`` back). Target t + 1 is predicted at position t, so the copy's targets are positions lag..2lag-1."""
    logits = model(ids[:, :-1]).logits.float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    return nll[:, : lag - 1].mean(), nll[:, lag - 1 :].mean()


def train_copy(
    lag: int,
    emb_dim: int = 5,
    steps: int = 300,
    tokens_per_step: int = 32_768,
    d_model: int = 64,
    n_layer: int = 2,
    l_max: int = 16_386,
    lr: float = 1e-3,
    eval_every: int = 25,
    seed: int = 0,
    on_eval=None,
    geometric_bands: int = 0,
) -> dict:
    """Train one model on the copy task at ``lag``; its first-half and copy-half NLL on a fixed batch by step."""
    if 2 * lag > l_max:
        raise ValueError(f"lag {lag}: a sequence of 2 x lag must fit l_max {l_max}")
    torch.manual_seed(seed)
    cfg = HyenaConfig(
        d_model=d_model,
        n_layer=n_layer,
        d_inner=4 * d_model,
        l_max=l_max,
        emb_dim=emb_dim,
        filter_geometric_bands=geometric_bands,
        embed_dropout=0.0,
    )
    model = HyenaDNALMHeadModel(cfg)
    opt = build_optimizer(model, lr, weight_decay=0.1)
    batch = max(1, tokens_per_step // (2 * lag))
    rng = np.random.default_rng(seed)
    held_out = copy_batch(np.random.default_rng(10_000 + seed), max(2, min(batch, 16)), lag)
    history, t0, tokens = [], time.perf_counter(), 0
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup=min(25, steps // 10))
        model.train()
        first, copy = half_nlls(model, copy_batch(rng, batch, lag), lag)
        opt.zero_grad(set_to_none=True)
        ((first * (lag - 1) + copy * lag) / (2 * lag - 1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += batch * (2 * lag - 1)
        if step % eval_every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                first, copy = half_nlls(model, held_out, lag)
            history.append({"step": step, "first_half_nll": first.item(), "copy_nll": copy.item()})
            if on_eval:
                on_eval(history[-1])
    seconds = time.perf_counter() - t0
    return {
        "lag": lag,
        "emb_dim": emb_dim,
        "geometric_bands": geometric_bands,
        "d_model": d_model,
        "n_layer": n_layer,
        "l_max": l_max,
        "lr": lr,
        "batch": batch,
        "steps": steps,
        "seed": seed,
        "parameters": model.num_parameters(),
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "history": history,
    }


def _band_note(run: dict) -> str:
    """The runs of commit 37fabb7 replaced the published bands with 16 geometric ones ("bands": "geometric"); later
    runs append ``geometric_bands`` to them."""
    if run.get("bands") == "geometric":
        return f" (t + {(run['emb_dim'] - 1) // 2} geometric, no linear)"
    return f" + {run['geometric_bands']} geometric" if run.get("geometric_bands") else ""


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyenadna.utils.io import save_figure

    fig, ax = plt.subplots(figsize=(12, 4.8) if len(runs) > 6 else (7.5, 4.5))
    colors = plt.get_cmap("tab20").colors
    for i, r in enumerate(runs):
        steps = [h["step"] for h in r["history"]]
        label = f"lag {r['lag']:,} of l_max {r['l_max']:,}, emb_dim {r['emb_dim']}{_band_note(r)}"
        if len({q["steps"] for q in runs}) > 1:
            label += f", {r['steps']:,} steps"
        if len({q["seed"] for q in runs}) > 1:
            label += f", seed {r['seed']}"
        style = "-" if _band_note(r) else "--"  # dashed: the published bands only
        ax.plot(steps, [h["copy_nll"] for h in r["history"]], style, color=colors[i % len(colors)], label=label)
    ax.axhline(LN4, color="black", linestyle=":", linewidth=1.0, label="chance (ln 4)")
    ax.set_xlabel("training step")
    ax.set_ylabel("NLL of the copied half (nats/base)")
    ax.set_ylim(bottom=0)
    ax.set_title("Copy task: reading exactly one position a lag back", size=10)
    ax.grid(alpha=0.3)
    if len(runs) > 6:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.subplots_adjust(left=0.06, right=0.6, bottom=0.11, top=0.93)
    else:
        ax.legend(fontsize=8)
        fig.tight_layout()
    save_figure(fig, path)


def table(runs: list[dict]) -> str:
    """A markdown row per run: the copy half's NLL at every 500th step and at the end, and the first step below 1.3."""
    lines = [
        "| l_max | lag | emb_dim | batch x length | steps | copy NLL at step 500 / 1,000 / 1,500 | at the end "
        "| first evaluation below 1.3 | first half at the end | seconds | seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        at = {h["step"]: h["copy_nll"] for h in r["history"]}
        marks = " / ".join(f"{at[s]:.3f}" if s in at else "-" for s in (500, 1000, 1500))
        below = next((f"{h['step']:,}" for h in r["history"] if h["copy_nll"] < 1.3), "never")
        last = r["history"][-1]
        lines.append(
            f"| {r['l_max']:,} | {r['lag']:,} | {r['emb_dim']}{_band_note(r)} | {r['batch']} x {2 * r['lag'] - 1:,} "
            f"| {r['steps']:,} | {marks} | {last['copy_nll']:.3f} | {below} | {last['first_half_nll']:.3f} "
            f"| {r['seconds']:.0f} | {r['seed']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lags", nargs="+", type=int, default=[64, 1024, 8192])
    ap.add_argument("--emb-dims", nargs="+", type=int, default=[5])
    ap.add_argument(
        "--geometric-bands",
        type=int,
        default=0,
        help="the filter's geometric positional bands after emb_dim's (HyenaConfig.filter_geometric_bands; 0 in "
        "every published model)",
    )
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--tokens-per-step", type=int, default=32_768)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--l-max", type=int, default=16_386)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "docs/pretraining/long_range_copy/copy.json")
    ap.add_argument("--plot", nargs="+", type=Path, metavar=("PNG", "JSON"), help="only draw these runs' curves")
    ap.add_argument("--table", nargs="+", type=Path, metavar="JSON", help="only print these runs as a markdown table")
    args = ap.parse_args()
    if args.table:
        print(table([r for f in args.table for r in json.loads(f.read_text())["runs"] if r.get("finished")]))
        return
    if args.plot:
        png, *files = args.plot
        plot([r for f in files for r in json.loads(f.read_text())["runs"]], png)
        return
    torch.set_num_threads(args.threads)
    runs: list[dict] = []

    def save(partial: dict | None = None) -> None:
        atomic_write_text(args.out, json.dumps({"runs": runs + ([partial] if partial else [])}, indent=1) + "\n")

    for emb_dim in args.emb_dims:
        for lag in args.lags:
            partial = {
                "lag": lag,
                "emb_dim": emb_dim,
                "geometric_bands": args.geometric_bands,
                "history": [],
                "finished": False,
            }

            def on_eval(row: dict, partial=partial) -> None:
                partial["history"].append(row)
                save(partial)
                print(
                    f"lag {partial['lag']} emb_dim {partial['emb_dim']} step {row['step']}: "
                    f"first half {row['first_half_nll']:.3f}, "
                    f"copy {row['copy_nll']:.3f} nats/base",
                    flush=True,
                )

            run = train_copy(
                lag,
                emb_dim,
                args.steps,
                args.tokens_per_step,
                args.d_model,
                args.n_layer,
                args.l_max,
                args.lr,
                args.eval_every,
                seed=args.seed,
                on_eval=on_eval,
                geometric_bands=args.geometric_bands,
            )
            runs.append({**run, "finished": True})
            save()
            print(f"lag {lag} emb_dim {emb_dim}: {run['seconds']:.0f} s, {run['tokens_per_second']:,.0f} tokens/s")
    plot(runs, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
