"""The fp32 training step's glue: where its copies go, and two levers against them, measured on the whole step
(docs/speed/training-step.md, "The copies").

    .venv/bin/python benchmarks/train_glue.py --copies                       # ~20 s: copies and LayerNorm a step
    .venv/bin/python benchmarks/train_glue.py --weight-gradients             # dy^T x alone, by operand layout
    .venv/bin/python benchmarks/train_glue.py --lever out_proj_weight_gradient --workload train_tiny1k
    .venv/bin/python benchmarks/train_glue.py --lever add_layer_norm --workload train_16k --bf16

``--copies`` profiles a few steps (torch.profiler, shapes recorded) and sums, per step, every ``aten::copy_`` by the
op that called it, the LayerNorm forward and backward, and the residual stream's adds. The profiler inflates small
ops (``train_timers.py`` says how much), so its totals are for ranking, not for subtracting from a step.

``--lever`` times the step of the code as it is against the same step with one lever patched in, in one process,
the order alternating from round to round (a warm-up step, then the median of ``--steps`` steps per round); the
figure kept is the median of the per-round ratios (as it is over with the lever: above 1, the lever is faster).
- ``out_proj_weight_gradient``: out_proj's weight gradient through oneDNN reading its channels-first input in place
  (``dW = (x dy)^T``), where ``torch.mm`` (MKL) reads both operands transposed.
- ``add_layer_norm``: the residual add and the LayerNorm after it as one autograd node, forward and backward each
  compiled by inductor (the backward reads the mixer's channels-first gradient in place and adds the residual
  stream's), where eager ops copy that gradient, add, and normalise in separate passes.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from speed import WORKLOADS

from hyenadna import PUBLISHED_CONFIGS, HyenaDNALMHeadModel
from hyenadna.modules import block as block_module
from hyenadna.ops import linear
from hyenadna.ops.linear import matmul_dtype
from hyenadna.training.optim import build_optimizer
from hyenadna.utils.io import atomic_write_text
from hyenadna.utils.memory import reuse_freed_memory


def _out_proj_backward(ctx, grad):
    x, weight = ctx.saved_tensors  # x: (in, N), channels first
    grad_x = linear.out_proj_input_gradient(grad, weight) if ctx.needs_input_grad[0] else None
    grad_w = linear._onednn_linear(x, grad.T, None).T if ctx.needs_input_grad[1] else None
    grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return grad_x, grad_w, grad_b


def _add_layer_norm_forward(x, residual, weight, bias, eps: float, out_dtype: torch.dtype):
    r = x.float() if residual is None else x.float() + residual
    mean = r.mean(-1, keepdim=True)
    centred = r - mean
    rstd = torch.rsqrt((centred * centred).mean(-1, keepdim=True) + eps)
    return (centred * rstd * weight + bias).to(out_dtype), r, mean, rstd


def _add_layer_norm_backward(grad_y, grad_r, r, mean, rstd, weight):
    grad_y = grad_y.float()
    normed = (r - mean) * rstd
    g = grad_y * weight
    grad = rstd * (g - g.mean(-1, keepdim=True) - normed * (g * normed).mean(-1, keepdim=True))
    if grad_r is not None:
        grad = grad + grad_r
    rows = tuple(range(grad_y.dim() - 1))
    return grad, (grad_y * normed).sum(rows), grad_y.sum(rows)


class _AddLayerNorm(torch.autograd.Function):
    forward_kernel = torch.compile(_add_layer_norm_forward, dynamic=True)
    backward_kernel = torch.compile(_add_layer_norm_backward, dynamic=True)

    @staticmethod
    def forward(ctx, x, residual, weight, bias, eps, out_dtype):
        y, r, mean, rstd = _AddLayerNorm.forward_kernel(x, residual, weight, bias, eps, out_dtype)
        ctx.save_for_backward(r, mean, rstd, weight)
        ctx.x_dtype, ctx.has_residual = x.dtype, residual is not None
        return y, r

    @staticmethod
    def backward(ctx, grad_y, grad_r):
        r, mean, rstd, weight = ctx.saved_tensors
        grad, grad_w, grad_b = _AddLayerNorm.backward_kernel(grad_y, grad_r, r, mean, rstd, weight)
        return grad.to(ctx.x_dtype), grad if ctx.has_residual else None, grad_w, grad_b, None, None


def _block_forward_add_layer_norm(self, x, residual, path=None, options=None, state=None):
    x = self._drop(self.dropout1, x, path)
    norm1, norm2 = self.norm1, self.norm2
    h, residual = _AddLayerNorm.apply(x, residual, norm1.weight, norm1.bias, norm1.eps, matmul_dtype(x))
    x = self.mixer(h, path, options, state)
    x = self._drop(self.dropout2, x, path)
    h, residual = _AddLayerNorm.apply(x, residual, norm2.weight, norm2.bias, norm2.eps, matmul_dtype(x))
    return self.mlp(h), residual


LEVERS = {
    "out_proj_weight_gradient": (linear._LinearChannelsFirst, "backward", staticmethod(_out_proj_backward)),
    "add_layer_norm": (block_module.Block, "forward", _block_forward_add_layer_norm),
}


def build(workload: str, bf16: bool):
    name, seqlen, batch, _, _ = WORKLOADS[workload]
    torch.manual_seed(0)
    lm = HyenaDNALMHeadModel(PUBLISHED_CONFIGS[name]).train()
    opt = build_optimizer(lm, 1e-4, 0.01)
    ids = torch.randint(7, 11, (batch, seqlen + 1))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = lm(ids[:, :-1], labels=ids[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return lm, step


def copies(workload: str, bf16: bool, steps: int) -> dict:
    _, step = build(workload, bf16)
    with reuse_freed_memory():
        for _ in range(3):
            step()
        with torch.profiler.profile(record_shapes=True) as prof:
            for _ in range(steps):
                step()
    per_step = collections.defaultdict(float)
    for e in prof.events():
        if e.name == "aten::copy_":
            parent = e.cpu_parent
            while parent is not None and parent.name.startswith("aten::"):
                parent = parent.cpu_parent
            caller = parent.name if parent is not None else "(top level)"
            per_step[f"copy_ {e.input_shapes[0]} from {caller}"] += e.cpu_time_total
        elif e.name in ("aten::native_layer_norm", "aten::native_layer_norm_backward"):
            per_step[e.name] += e.cpu_time_total
        elif e.name == "aten::add" and e.cpu_parent is None and len(e.input_shapes[0]) == 3:
            per_step["aten::add of the residual stream's shape"] += e.cpu_time_total
    rows = {k: v / steps / 1e3 for k, v in sorted(per_step.items(), key=lambda kv: -kv[1]) if v / steps > 50}
    copy_total = sum(v for k, v in rows.items() if k.startswith("copy_"))
    return {"ms_per_step": rows, "copies_ms_per_step": copy_total}


def weight_gradients(tokens: int, width: int, repeats: int = 30) -> dict:
    """dy^T x alone for each projection of a block of ``width`` over ``tokens`` tokens: GFLOP/s of the step's forms
    (operands token-major: oneDNN in the orientation ``weight_gradient`` takes, or ``torch.mm``) and of oneDNN with
    one operand channels first and contiguous, as out_proj's input comes."""
    onednn = linear._onednn_linear
    out = {}
    for warm_up in (True, False):  # the first pass loads the autotune choices and builds oneDNN's primitives
        out = _weight_gradient_rates(tokens, width, 3 if warm_up else repeats, onednn)
    return {"gflops": out}


def _weight_gradient_rates(tokens: int, width: int, repeats: int, onednn) -> dict:
    from hyenadna.ops.autotune import time_candidates

    out = {}
    for name, (n_in, n_out) in {
        "in_proj": (width, 3 * width),
        "out_proj": (width, width),
        "fc1": (width, 4 * width),
        "fc2": (4 * width, width),
    }.items():
        x, dy = torch.randn(tokens, n_in), torch.randn(tokens, n_out)
        x_cf = x.T.contiguous()
        forms = {
            "token-major, torch.mm": lambda x=x, dy=dy: torch.mm(dy.T, x),
            "token-major, as the step runs it": lambda x=x, dy=dy: linear.weight_gradient(dy, x),
            "input channels first, oneDNN in place": lambda x_cf=x_cf, dy=dy: onednn(x_cf, dy.T, None).T,
        }
        seconds = time_candidates(forms, repeats=repeats)
        flops = 2 * tokens * n_in * n_out
        out[name] = {k: flops / statistics.median(v) / 1e9 for k, v in seconds.items()}
    return out


def lever(workload: str, bf16: bool, which: str, rounds: int, steps: int) -> dict:
    owner, attr, patched = LEVERS[which]
    current = owner.__dict__[attr]
    lm, step = build(workload, bf16)
    state = {k: v.clone() for k, v in lm.state_dict().items()}
    grads = {}
    for variant, impl in (("current", current), ("lever", patched)):  # the same step's gradients either way
        setattr(owner, attr, impl)
        lm.load_state_dict(state)
        lm.zero_grad()
        torch.manual_seed(5)  # the same dropout masks
        inputs, labels = _ids(workload)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = lm(inputs, labels=labels).loss
        loss.backward()
        grads[variant] = [p.grad.clone() for p in lm.parameters()]
    rel = max(
        float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
        for a, b in zip(grads["current"], grads["lever"], strict=True)
    )
    seconds = {"current": [], "lever": []}
    with reuse_freed_memory():
        for impl in (current, patched):
            setattr(owner, attr, impl)
            for _ in range(2):  # compiles the lever's kernels before any timing
                step()
        for r in range(rounds):
            for variant in ("current", "lever") if r % 2 == 0 else ("lever", "current"):
                setattr(owner, attr, current if variant == "current" else patched)
                step()
                times = []
                for _ in range(steps):
                    t = time.perf_counter()
                    step()
                    times.append(time.perf_counter() - t)
                seconds[variant].append(statistics.median(times))
    setattr(owner, attr, current)
    ratios = [c / v for c, v in zip(seconds["current"], seconds["lever"], strict=True)]
    return {
        "step_ms_current": 1e3 * statistics.median(seconds["current"]),
        "step_ms_lever": 1e3 * statistics.median(seconds["lever"]),
        "ratio_current_over_lever": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "max_relative_gradient_difference": rel,
        "seconds": seconds,
    }


def _ids(workload: str):
    _, seqlen, batch, _, _ = WORKLOADS[workload]
    ids = torch.randint(7, 11, (batch, seqlen + 1), generator=torch.Generator().manual_seed(1))
    return ids[:, :-1], ids[:, 1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="train_tiny1k", choices=[w for w, v in WORKLOADS.items() if v[3] == "train"])
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--copies", action="store_true")
    what.add_argument("--lever", choices=sorted(LEVERS))
    what.add_argument("--weight-gradients", action="store_true", help="dy^T x alone, by operand layout (d 128, 8k)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.copies:
        result = copies(args.workload, args.bf16, args.steps)
    elif args.weight_gradients:
        result = weight_gradients(8192, 128)
    else:
        result = lever(args.workload, args.bf16, args.lever, args.rounds, args.steps)
    from hyenadna.ops.autotune import cpu_features, cpu_name, tuning

    result = {
        "workload": args.workload,
        "precision": "bf16" if args.bf16 else "fp32",
        "lever": args.lever,
        "threads": args.threads,
        "cpu": cpu_name(),
        "cpu_features": cpu_features(),
        "torch": torch.__version__,
        "kernels": dataclasses.asdict(tuning()),
        **result,
    }
    summary = {k: v for k, v in result.items() if k != "seconds"}
    json.dump(summary, sys.stdout, indent=1)
    print()
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
