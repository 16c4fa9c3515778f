"""The memory of a training step, estimated from the model's shape before it runs: on the CPU the kernel kills a
process that runs out of memory without a word, so pretraining and fine-tuning say beforehand when a step will not
fit, and which switches lower it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hyenadna.models.config import HyenaConfig
from hyenadna.utils.memory import available_bytes

# Peak bytes of a training step per token and model channel, measured on the CPU with freed memory handed back
# (README "Training memory"; benchmarks/results/gradient_checkpointing*.json, step_memory_bf16.json), by precision:
# (a layer without recomputation; a layer's kept inputs with it; the block being recomputed and its gradients).
# fp32, small-32k's and medium-160k's shapes at 32k tokens: 101-107 a layer without recomputation (110 keeps the
# estimate above every one); with it 148 and 195 in all (medium-160k's: 188 at 160k tokens). bf16 autocast
# (16-bit projections and MLP activations; the residual stream and the FFT stay fp32): 82-87 a layer without, 133
# and 185 in all with it.
STEP_BYTES_PER_TOKEN_CHANNEL = {"fp32": (110, 8, 150), "bf16": (88, 8, 130)}
# fp16 autocast keeps the same tensors in 16 bits as bf16
STEP_BYTES_PER_TOKEN_CHANNEL["fp16"] = STEP_BYTES_PER_TOKEN_CHANNEL["bf16"]
# Sequence-chunked training (ops/block_chunked.py), by precision: (each layer's kept input, the work of the block in
# its forward or backward and what lies outside the blocks), per token and channel. CALIBRATE
SEQUENCE_CHUNKED_BYTES_PER_TOKEN_CHANNEL = {"fp32": (4, 40), "bf16": (4, 40), "fp16": (4, 40)}
# The memory the pretraining loop keeps between steps on the CPU (keep_freed_memory) came to 1.5-2.8x the step's at
# long windows.
KEPT_FREED_MEMORY_FACTOR = 2.5
# warn above this share of the memory available
FIT_SHARE = 0.8


def step_memory_bytes(
    model: HyenaConfig,
    tokens: int,
    gradient_checkpointing: bool,
    precision: str = "fp32",
    sequence_chunked: bool = False,
) -> int:
    """About the peak memory of one training step over ``tokens`` tokens (window x batch) of this shape, in
    ``precision`` ("fp32", or "bf16"/"fp16" autocast); ``sequence_chunked`` overrides ``gradient_checkpointing``."""
    layer, kept_input, recomputed = STEP_BYTES_PER_TOKEN_CHANNEL[precision]
    if sequence_chunked:
        kept_input, recomputed = SEQUENCE_CHUNKED_BYTES_PER_TOKEN_CHANNEL[precision]
    per = (
        kept_input * model.n_layer + recomputed if gradient_checkpointing or sequence_chunked else layer * model.n_layer
    )
    return per * tokens * model.d_model


@dataclass(frozen=True)
class StepMemory:
    tokens: int
    need: int  # bytes, this many processes together
    need_checkpointed: int  # the same with gradient checkpointing
    need_chunked: int  # ... with sequence-chunked training
    have: int  # bytes available now
    processes: int

    def fits(self, factor: float = 1.0) -> bool:
        return self.need * factor <= FIT_SHARE * self.have

    def describe(self) -> str:
        who = f" ({self.processes} processes)" if self.processes > 1 else ""
        return (
            f"a training step of {self.tokens:,} tokens needs about {self.need / 1e9:.1f} GB by this model's "
            f"shape{who}, and {self.have / 1e9:.1f} GB is available"
        )


def step_memory(
    model: HyenaConfig,
    tokens: int,
    device: torch.device,
    gradient_checkpointing: bool,
    processes: int = 1,
    precision: str = "fp32",
    sequence_chunked: bool = False,
) -> StepMemory | None:
    """The estimate beside the memory available on ``device`` (``processes`` ranks of one CPU share it); None where
    the available memory is unknown."""
    have = available_bytes(device)
    if have is None:
        return None
    share = processes if torch.device(device).type == "cpu" else 1
    return StepMemory(
        tokens,
        step_memory_bytes(model, tokens, gradient_checkpointing, precision, sequence_chunked) * share,
        step_memory_bytes(model, tokens, True, precision) * share,
        step_memory_bytes(model, tokens, True, precision, sequence_chunked=True) * share,
        have,
        share,
    )
