"""The memory of a training step, estimated from the model's shape before it runs: on the CPU the kernel kills a
process that runs out of memory without a word, so pretraining and fine-tuning say beforehand when a step will not
fit, and which switches lower it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hyenadna.models.config import HyenaConfig
from hyenadna.ops.block_chunked import CPU_TRAINING_CHUNK
from hyenadna.ops.execution import GPU_LOW_MEMORY_CHUNK
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
# Sequence-chunked training (ops/block_chunked.py): (each layer's kept input; the block in work and what lies outside
# the blocks) per token and channel, and per token of one chunk and channel (the chunk's activations, the process's
# base and, on the CPU, the heap fragments their sub-32 MB temporaries leave). Fitted to large-1m's shape in fp32 with
# freed memory handed back, 32k-1M tokens in 8,192-token chunks (benchmarks/results/sequence_chunked.json: peak RSS
# 1.70, 3.68, 6.13 and 18.6 GB; this gives 2.07, 3.88, 6.30 and 19.9 GB), and in bf16 at 131k tokens (3.81 GB: no
# less than fp32's, as the kept inputs stay float32), so one set of figures for every precision.
SEQUENCE_CHUNKED_BYTES_PER_TOKEN_CHANNEL = (4, 40)
SEQUENCE_CHUNKED_BYTES_PER_CHUNK_TOKEN_CHANNEL = 700
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
    chunk: int = CPU_TRAINING_CHUNK,
) -> int:
    """About the peak memory of one training step over ``tokens`` tokens (window x batch) of this shape, in
    ``precision`` ("fp32", or "bf16"/"fp16" autocast); ``sequence_chunked`` (in chunks of ``chunk`` tokens)
    overrides ``gradient_checkpointing``."""
    if sequence_chunked:
        kept_input, work = SEQUENCE_CHUNKED_BYTES_PER_TOKEN_CHANNEL
        per_chunk = SEQUENCE_CHUNKED_BYTES_PER_CHUNK_TOKEN_CHANNEL * min(tokens, chunk)
        return ((kept_input * model.n_layer + work) * tokens + per_chunk) * model.d_model
    layer, kept_input, recomputed = STEP_BYTES_PER_TOKEN_CHANNEL[precision]
    per = kept_input * model.n_layer + recomputed if gradient_checkpointing else layer * model.n_layer
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
    cpu = torch.device(device).type == "cpu"
    share = processes if cpu else 1
    chunk = CPU_TRAINING_CHUNK if cpu else GPU_LOW_MEMORY_CHUNK
    return StepMemory(
        tokens,
        step_memory_bytes(model, tokens, gradient_checkpointing, precision, sequence_chunked, chunk) * share,
        step_memory_bytes(model, tokens, True, precision) * share,
        step_memory_bytes(model, tokens, True, precision, True, chunk) * share,
        have,
        share,
    )
