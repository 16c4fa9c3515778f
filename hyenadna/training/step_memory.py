"""The memory of a training step, estimated from the model's shape before it runs: on the CPU the kernel kills a
process that runs out of memory without a word, so pretraining and fine-tuning say beforehand when a step will not
fit, and which switches lower it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hyenadna.models.config import HyenaConfig
from hyenadna.utils.memory import available_bytes

# Peak bytes of a training step per token and model channel, measured on the CPU in fp32 with freed memory handed
# back (README "Training memory", benchmarks/results/gradient_checkpointing*.json): without recomputation about 105 a
# layer (small-32k's and medium-160k's shapes at 32k tokens: 107 and 102); with it about 8 a layer for the blocks'
# kept inputs and 150 for the block being recomputed and its gradients (medium-160k's shape: 1.7 GB at 32k tokens,
# 7.4 GB at 160k). bf16 autocast takes less. The memory the pretraining loop keeps between steps on the CPU
# (keep_freed_memory) came to 1.5-2.8x the step's at long windows.
STEP_BYTES_PER_TOKEN_CHANNEL_LAYER = 105
KEPT_INPUT_BYTES_PER_TOKEN_CHANNEL_LAYER = 8
RECOMPUTED_BLOCK_BYTES_PER_TOKEN_CHANNEL = 150
KEPT_FREED_MEMORY_FACTOR = 2.5
# warn above this share of the memory available
FIT_SHARE = 0.8


def step_memory_bytes(model: HyenaConfig, tokens: int, gradient_checkpointing: bool) -> int:
    """About the peak memory of one training step over ``tokens`` tokens (window x batch) of this shape."""
    if gradient_checkpointing:
        per = KEPT_INPUT_BYTES_PER_TOKEN_CHANNEL_LAYER * model.n_layer + RECOMPUTED_BLOCK_BYTES_PER_TOKEN_CHANNEL
    else:
        per = STEP_BYTES_PER_TOKEN_CHANNEL_LAYER * model.n_layer
    return per * tokens * model.d_model


@dataclass(frozen=True)
class StepMemory:
    tokens: int
    need: int  # bytes, this many processes together
    need_checkpointed: int  # the same with gradient checkpointing
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
    model: HyenaConfig, tokens: int, device: torch.device, gradient_checkpointing: bool, processes: int = 1
) -> StepMemory | None:
    """The estimate beside the memory available on ``device`` (``processes`` ranks of one CPU share it); None where
    the available memory is unknown."""
    have = available_bytes(device)
    if have is None:
        return None
    share = processes if torch.device(device).type == "cpu" else 1
    return StepMemory(
        tokens,
        step_memory_bytes(model, tokens, gradient_checkpointing) * share,
        step_memory_bytes(model, tokens, True) * share,
        have,
        share,
    )
