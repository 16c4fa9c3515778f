"""How the model runs: one options object for the execution knobs, and one function that picks the algorithm.

Algorithms (each tested against the plain reference path, ``"reference"``):
- ``"train"``: with autograd; channels-first projections over the batch's tokens (``ops/hyena.py: hyena_batched``);
  with ``sequence_chunked``, each block instead as one node run in token chunks (``ops/block_chunked.py``).
- ``"batched"``: inference, the whole batch at once through the same algorithm with the filter spectrum cached. What
  a GPU wants: few, large kernels.
- ``"per_sequence"``: inference on the CPU, a sequence at a time and the stack in micro-batches of about
  ``block_tokens`` tokens, so a layer's activations stay in cache (on 2 AMD EPYC cores this beat the batched path
  from about 256 tokens; below ``per_sequence_min_length`` the CPU runs the batched path in the same micro-batches,
  where a sequence's matmuls are too small to pay for their calls).
- ``"low_memory"``: inference on long sequences, layer by layer in token chunks and channel groups, in O(L x D) memory;
  on the CPU it also keeps freed FFT buffers for reuse (glibc, ``utils/memory.py``). On a GPU only when the batched
  path's activations would not fit: there its many small kernels cost 5-10x the batched time (an H200,
  ``benchmarks/gpu_paths.py``).
- ``"decode"``: extending sequences a token at a time from an ``InferenceCache`` (``ops/hyena.py: hyena_decode``), as
  generation does; chosen by passing the cache, never by ``choose_path``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hyenadna.utils.memory import available_bytes

PATHS = ("reference", "train", "batched", "per_sequence", "low_memory", "decode")
# A GPU's low-memory chunks: a chunk's kernels are small at the CPU's 1,024 tokens, and launches dominate
GPU_LOW_MEMORY_CHUNK = 65536
# Peak bytes of batched inference per token and model channel, with margin: 75 measured on an H200 at 160k and 1M
# tokens, D 256 (benchmarks/gpu_paths.py)
BATCHED_BYTES_PER_TOKEN_CHANNEL = 96


@dataclass(frozen=True)
class ExecutionOptions:
    """The knobs of the fast paths; measured on AMD EPYC (see the README's speed section), the CPU-dependent ones
    measured again on each machine at first use (``ops/autotune.py``)."""

    # inference on sequences at least this long runs the low-memory path on the CPU, where from 8,192 tokens it was
    # also the faster one (batch 1, fp32: 0.98x / 1.09x the batched speed for D 128 / 256 at 8k, 1.03x / 1.36x at
    # 16k); on a GPU only those that would not fit batched (batched_fits)
    low_memory_min_length: int = 8192
    # ... in token chunks of this size (one large-1m layer at 1M tokens: 1,024 took 0.93x the time of 2,048 on AMD
    # EPYC); None: the size measured fastest on this machine's CPU (ops/autotune.py), GPU_LOW_MEMORY_CHUNK on a GPU
    low_memory_chunk: int | None = None
    # per-sequence inference runs the stack on micro-batches of about this many tokens (None: measured, as above)
    block_tokens: int | None = None
    # ... from this length on; shorter sequences run the batched algorithm in the same micro-batches (AMD EPYC Zen 4,
    # 2 threads, both micro-batched: per-sequence took 2.4x the batched time at 16 tokens, 1.3-1.4x at 64, 1.1x at
    # 128, 0.96-0.98x from 256; benchmarks/short_inference.py)
    per_sequence_min_length: int = 256
    # bytes of filter spectra an operator caches for inference (the filter does not depend on the input)
    filter_cache_bytes: int = 128 * 2**20
    # the low-memory path sizes its channel groups so their FFT buffers take about this much
    group_buffer_bytes: int = 512 * 2**20
    # ... keeps the FFTs' freed outputs for the next group (glibc; CPU only)
    reuse_freed_memory: bool = True
    # ... and stores x0 from its first pass while L x D float32 fits in this many bytes, rather than recomputing it
    store_x0_bytes: int = 256 * 2**20
    # training (the "train" and "reference" paths): keep only each block's inputs and run the block's forward again
    # in the backward, so activations take two (B, L, D) tensors a block instead of all of its intermediates, for
    # about one more forward pass of time. Gradients are bit for bit the same (the block's dropout masks are drawn
    # again from the restored generator state). The reference's checkpoint_mixer + checkpoint_mlp, as one.
    gradient_checkpointing: bool = False
    # training (the "train" path) with each block one autograd node that keeps only its input and runs forward and
    # backward in token chunks of ``sequence_chunk`` tokens, the long convolution in channel groups
    # (ops/block_chunked.py): activations of about one (B, L, D) tensor a block plus a few for the block in work, at
    # any window length, for about one more forward pass of time than gradient checkpointing. The same gradients up
    # to float rounding; inner dropout (hyena_dropout, resid_dropout) draws its own masks, by position, so that the
    # backward can draw them again. For windows that would not fit otherwise (large-1m at 1M tokens).
    sequence_chunked: bool = False
    # ... tokens per chunk; None: CPU_TRAINING_CHUNK on the CPU, GPU_LOW_MEMORY_CHUNK on a GPU
    sequence_chunk: int | None = None

    def __post_init__(self) -> None:
        positive = ("low_memory_min_length", "low_memory_chunk", "block_tokens", "group_buffer_bytes", "sequence_chunk")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value}: must be >= 1")
        if self.per_sequence_min_length < 0:
            raise ValueError(f"per_sequence_min_length={self.per_sequence_min_length}: must be >= 0")

    def tuned(self, name: str, device: torch.device | str) -> int:
        """``low_memory_chunk`` or ``block_tokens`` for work on ``device``: the value set here, else the one measured
        on this machine's CPU, else (another device) the default. Resolved at use, so building options on a GPU
        machine never starts a CPU measurement."""
        value = getattr(self, name)
        if value is not None:
            return value
        if name == "low_memory_chunk" and torch.device(device).type != "cpu":
            return GPU_LOW_MEMORY_CHUNK
        from hyenadna.ops.autotune import tuning

        return getattr(tuning(device), name)


def choose_path(
    device: torch.device,
    seqlen: int,
    *,
    grad: bool,
    reference: bool = False,
    low_memory: bool | None = None,
    options: ExecutionOptions | None = None,
    batch: int = 1,
    d_model: int | None = None,
) -> str:
    """The algorithm for a forward pass, by device, length and whether gradients are needed. ``low_memory`` forces
    the low-memory path on or off for inference; left to choose, it is taken from ``low_memory_min_length`` tokens
    on, except on a GPU where the batched path's activations for ``batch`` x ``seqlen`` x ``d_model`` fit. The CPU runs
    the rest per sequence from ``per_sequence_min_length`` tokens, batched below."""
    options = options or ExecutionOptions()
    if reference:
        return "reference"
    if grad:
        return "train"
    if low_memory is None:
        low_memory = seqlen >= options.low_memory_min_length and not batched_fits(device, batch, seqlen, d_model)
    if low_memory:
        return "low_memory"
    return "per_sequence" if device.type == "cpu" and seqlen >= options.per_sequence_min_length else "batched"


def batched_fits(device: torch.device, batch: int, seqlen: int, d_model: int | None) -> bool:
    """Whether batched inference's activations fit in 80% of the CUDA memory free now (counting what torch's
    allocator holds unused). Always False elsewhere: on the CPU the low-memory path was the faster one from 8k tokens
    (``ExecutionOptions.low_memory_min_length``)."""
    if device.type != "cuda" or d_model is None:
        return False
    return BATCHED_BYTES_PER_TOKEN_CHANNEL * batch * seqlen * d_model <= 0.8 * available_bytes(device)
