"""HyenaDNA: a GPT-style causal stack of Hyena blocks over single-nucleotide tokens, with a tied LM head."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from hyenadna.models.checkpoint import (
    CheckpointError,
    canonical_keys,
    check_state_dict,
    read_checkpoint,
    with_freq_aliases,
    without_derived_buffers,
    write_checkpoint,
)
from hyenadna.models.config import HyenaConfig
from hyenadna.modules.block import Block, Mlp
from hyenadna.modules.hyena import HyenaOperator
from hyenadna.ops.block_chunked import CPU_TRAINING_CHUNK
from hyenadna.ops.execution import GPU_LOW_MEMORY_CHUNK, ExecutionOptions, choose_path
from hyenadna.ops.hyena import DECODE_BLOCK, HyenaState
from hyenadna.utils.device import resolve_device
from hyenadna.utils.precision import parse_dtype


class TokenEmbedding(nn.Module):
    """Token embedding only: HyenaDNA has no positional embedding (the long filters carry position)."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.word_embeddings(input_ids)


def check_input_ids(input_ids: Tensor, vocab_rows: int) -> None:
    """A clear error for ids the embedding cannot read, instead of torch's unpacking, dtype or "index out of range
    in self" errors (or CUDA's device-side assert). The value range is checked on the CPU only: on a GPU it would
    wait for the device at every forward."""
    if not isinstance(input_ids, Tensor):
        raise TypeError(f"input_ids must be a tensor of token ids (CharacterTokenizer), got {type(input_ids).__name__}")
    if input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}; ids[None] adds a batch"
        )
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"input_ids must hold integer token ids (int64), got {input_ids.dtype}")
    if input_ids.device.type == "cpu" and input_ids.numel() and not torch.compiler.is_compiling():
        low, high = (x.item() for x in torch.aminmax(input_ids))
        if low < 0 or high >= vocab_rows:
            bad = low if low < 0 else high
            raise ValueError(f"input_ids hold {bad}, outside this model's token ids 0 to {vocab_rows - 1}")


class InferenceCache:
    """Each layer's ``HyenaState``, so that sequences grow a token at a time (``model(new_ids, cache=cache)``) at
    O(block D + t log t D / block) a layer for the t-th token (``ops/hyena.py: hyena_decode``), as generation does.
    It holds at most ``capacity`` tokens (default l_max: the filter has no taps further back). Made by
    ``allocate_inference_cache``."""

    def __init__(self, states: list[HyenaState]):
        self.states = states

    @property
    def length(self) -> int:
        """Tokens so far."""
        return self.states[0].length if self.states else 0

    @property
    def batch(self) -> int:
        return self.states[0].history.shape[1] if self.states else 0

    @property
    def capacity(self) -> int:
        return self.states[0].history.shape[-1] if self.states else 0


class HyenaDNAModel(nn.Module):
    """The backbone: token ids (B, L) -> last hidden states (B, L, d_model), the output of the final LayerNorm."""

    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.config = config
        self.embeddings = TokenEmbedding(config.padded_vocab_size, config.d_model)
        # the embedding dropout is the first block's input dropout
        self.layers = nn.ModuleList(
            Block(
                HyenaOperator(
                    config.d_model,
                    config.l_max,
                    filter_order=config.filter_order,
                    emb_dim=config.emb_dim,
                    num_inner_mlps=config.num_inner_mlps,
                    short_filter_order=config.short_filter_order,
                    activation_freq=config.activation_freq,
                    modulate=config.modulate,
                    modulation_shift=config.modulation_shift,
                    dropout=config.hyena_dropout,
                    geometric_bands=config.filter_geometric_bands,
                ),
                config.d_model,
                config.d_inner,
                eps=config.layer_norm_epsilon,
                dropout_in=config.embed_dropout if i == 0 else config.resid_dropout,
                resid_dropout=config.resid_dropout,
            )
            for i in range(config.n_layer)
        )
        self.drop_f = nn.Dropout(config.resid_dropout)
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        # the execution knobs (ops/execution.py); replace the object to change them, e.g. for a benchmark
        self.execution = ExecutionOptions()

    def forward(
        self,
        input_ids: Tensor,
        low_memory: bool | None = None,
        layers: Sequence[int] | None = None,
        cache: InferenceCache | None = None,
    ) -> Tensor | list[Tensor]:
        """The algorithm is chosen by ``ops/execution.py: choose_path`` from the device, the length, autograd and
        ``self.execution``. ``low_memory`` (default: automatic for inference from ``execution.low_memory_min_length``
        tokens, on a GPU only where the batched path would not fit) runs each sequence layer by layer in token chunks,
        with the long convolution in channel groups, in O(L x D) memory.

        ``layers`` asks for the hidden states of those layers instead of the last, as a list in the same order, in
        Hugging Face's numbering: 0 is the embedding output, k the residual stream after block k, and ``n_layer`` (or
        -1) the output of the final LayerNorm. Only the blocks up to the deepest one asked for are run.

        Given a ``cache`` (``allocate_inference_cache``), ``input_ids`` continue the sequences it holds (the first
        call gives their start) and the outputs are those of the new tokens: equal to a forward over the whole
        sequences at those positions, at a fraction of its cost. Inference only: eval mode (no dropout), no autograd.
        """
        check_input_ids(input_ids, self.embeddings.word_embeddings.num_embeddings)
        batch, seqlen = input_ids.shape
        if cache is not None:
            self._check_cache(cache, batch, seqlen)
            path = "decode"
        else:
            path = choose_path(
                input_ids.device,
                seqlen,
                grad=torch.is_grad_enabled() or self.training,
                reference=self._reference_path(),
                low_memory=low_memory,
                options=self.execution,
                batch=batch,
                d_model=self.config.d_model,
            )
        wanted = None if layers is None else self.layer_indices(layers)
        keep = [self.config.n_layer] if wanted is None else sorted(set(wanted))
        if path == "decode":
            with torch.no_grad():  # the cache's history is written in place, a token at a time
                outs = self._forward_stack(input_ids, keep, path, cache)
        elif path == "low_memory":
            rows = [self._forward_low_memory(row, keep) for row in input_ids]
            outs = [t[None] for t in rows[0]] if batch == 1 else [torch.stack(t) for t in zip(*rows, strict=True)]
        elif input_ids.device.type == "cpu" and path in ("per_sequence", "batched"):
            # micro-batches of about block_tokens tokens, so activations stay in cache
            block = max(1, self.execution.tuned("block_tokens", input_ids.device) // max(seqlen, 1))
            parts = [self._forward_stack(input_ids[s : s + block], keep, path) for s in range(0, batch, block)]
            outs = parts[0] if len(parts) == 1 else [torch.cat(t) for t in zip(*parts, strict=True)]
        else:
            outs = self._forward_stack(input_ids, keep, path)
        if wanted is None:
            return outs[0]
        by_layer = dict(zip(keep, outs, strict=True))
        return [by_layer[k] for k in wanted]

    def layer_indices(self, layers: Sequence[int]) -> list[int]:
        """Layer numbers in 0..n_layer (negative ones count from the end, -1 being n_layer)."""
        n = self.config.n_layer
        if not len(layers):
            raise ValueError(f"layer=[]: name at least one layer, 0 (embeddings) to {n} (or -1 for the last)")
        out = []
        for k in layers:
            if not -(n + 1) <= k <= n:
                raise ValueError(f"layer {k}: this model has layers 0 (embeddings) to {n} (or -1 for the last)")
            out.append(k % (n + 1))
        return out

    def allocate_inference_cache(
        self, batch: int, capacity: int | None = None, block: int = DECODE_BLOCK
    ) -> InferenceCache:
        """An empty ``InferenceCache`` for ``batch`` sequences of up to ``capacity`` tokens (default and at most
        l_max): each layer's filter taps, reversed, and room for its history, (D, batch, capacity) float32. Tokens
        decode in blocks of ``block`` (``ops/hyena.py: hyena_decode``)."""
        capacity = self.config.l_max if capacity is None else capacity
        if not 1 <= capacity <= self.config.l_max:
            raise ValueError(f"capacity {capacity}: the cache holds 1 to l_max = {self.config.l_max} tokens")
        if block < 1:
            raise ValueError(f"block {block}: decoding blocks hold at least one token")
        return InferenceCache([HyenaState.empty(layer.mixer, batch, capacity, block) for layer in self.layers])

    def _check_cache(self, cache: InferenceCache, batch: int, new_tokens: int) -> None:
        if batch != cache.batch:
            raise ValueError(f"the inference cache holds {cache.batch} sequences, and {batch} were given")
        if self.training:
            raise ValueError("decoding with an inference cache runs in eval mode: call model.eval() first")
        if cache.length + new_tokens > cache.capacity:
            raise ValueError(
                f"the inference cache holds {cache.capacity} tokens and has {cache.length}: {new_tokens} more do not "
                "fit; start a new cache on the last tokens"
            )

    def _reference_path(self) -> bool:
        # the blocks' flags only: walking every submodule cost ~0.25 ms per forward, 1% of a tiny-1k batch of one
        return any(block.mixer.use_reference_path or block.mlp.use_reference_path for block in self.layers)

    def _forward_stack(
        self, input_ids: Tensor, keep: Sequence[int], path: str, cache: InferenceCache | None = None
    ) -> list[Tensor]:
        x, residual = self.embeddings(input_ids), None
        outs = [x.float()] if 0 in keep else []
        recompute = self.execution.gradient_checkpointing and torch.is_grad_enabled()
        chunk = self._sequence_chunk(input_ids.device) if path == "train" and torch.is_grad_enabled() else None
        for i, layer in enumerate(self.layers[: max(keep)], 1):
            if cache is not None:
                x, residual = layer(x, residual, path, self.execution, cache.states[i - 1])
            elif chunk is not None:
                x, residual = layer.forward_chunked(x, residual, chunk)
            elif recompute:  # non-reentrant: stashes and restores the RNG and autocast state for the second forward
                x, residual = checkpoint(layer, x, residual, path, self.execution, use_reentrant=False)
            else:
                x, residual = layer(x, residual, path, self.execution)
            if i in keep and i < self.config.n_layer:
                outs.append(self.drop_f(x).float() + residual)
        if max(keep) == self.config.n_layer:
            residual = self.drop_f(x).float() + residual
            outs.append(self.ln_f(residual.to(self.ln_f.weight.dtype)))
        return outs

    def _sequence_chunk(self, device: torch.device) -> int | None:
        """Tokens per chunk of sequence-chunked training, or None when it is off."""
        options = self.execution
        if not options.sequence_chunked:
            return None
        return options.sequence_chunk or (CPU_TRAINING_CHUNK if device.type == "cpu" else GPU_LOW_MEMORY_CHUNK)

    @torch.no_grad()
    def _forward_low_memory(self, input_ids: Tensor, keep: Sequence[int]) -> list[Tensor]:
        residual = self.embeddings(input_ids).float()
        conv = residual.new_empty(residual.shape[::-1])  # one (D, L) work tensor for every layer's long convolution
        outs = [residual.clone()] if 0 in keep and max(keep) > 0 else []
        for i, layer in enumerate(self.layers[: max(keep)], 1):
            layer.forward_low_memory(residual, self.execution, conv=conv)
            if i in keep and i < max(keep):
                outs.append(residual.clone())
        if max(keep) == self.config.n_layer:
            chunk = self.execution.tuned("low_memory_chunk", residual.device)
            for s in range(0, residual.shape[0], chunk):  # the output overwrites the residual stream
                residual[s : s + chunk] = self.ln_f(residual[s : s + chunk].to(self.ln_f.weight.dtype))
        outs.append(residual)
        return outs


class CausalLMOutput(NamedTuple):
    logits: Tensor
    loss: Tensor | None
    hidden_states: Tensor  # the last layer's (B, L, D)
    all_hidden_states: tuple[Tensor, ...] | None = None  # with output_hidden_states: layers 0..n_layer


class HyenaDNALMHeadModel(nn.Module):
    """Backbone plus a language-model head, tied to the token embedding unless the config says otherwise."""

    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.config = config
        self.backbone = HyenaDNAModel(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)
        self.apply(lambda m: _init_weights(m, config))
        for name, p in self.named_parameters():
            # GPT-2 scaling: each block adds two residual branches
            if name.endswith(("mixer.out_proj.weight", "mlp.fc2.weight")):
                nn.init.normal_(p, std=config.initializer_range / math.sqrt(2 * config.n_layer))

    @property
    def head_weight(self) -> Tensor:
        if self.config.tie_word_embeddings:
            return self.backbone.embeddings.word_embeddings.weight
        return self.lm_head.weight

    def forward(
        self,
        input_ids: Tensor,
        labels: Tensor | None = None,
        ignore_index: int = -100,
        output_hidden_states: bool = False,
        cache: InferenceCache | None = None,
    ) -> CausalLMOutput:
        """Logits for every position; with ``labels`` (already shifted: labels[t] is the token after t), the mean
        cross-entropy over positions whose label is not ``ignore_index``. ``output_hidden_states`` also returns every
        layer's hidden states (see ``HyenaDNAModel.forward``), which holds n_layer + 1 copies of (B, L, D). With a
        ``cache`` (``allocate_inference_cache``), ``input_ids`` continue the sequences it holds, and the outputs are
        the new tokens'."""
        if labels is not None and labels.shape != input_ids.shape:  # before the forward pass, not after it
            raise ValueError(
                f"labels must have the shape of input_ids {tuple(input_ids.shape)} (labels[t] is the token after t), "
                f"got {tuple(labels.shape)}"
            )
        all_hidden = None
        if output_hidden_states:
            all_hidden = tuple(self.backbone(input_ids, layers=range(self.config.n_layer + 1), cache=cache))
            hidden = all_hidden[-1]
        else:
            hidden = self.backbone(input_ids, cache=cache)
        logits = F.linear(hidden, self.head_weight)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index)
        return CausalLMOutput(logits, loss, hidden, all_hidden)

    def allocate_inference_cache(
        self, batch: int, capacity: int | None = None, block: int = DECODE_BLOCK
    ) -> InferenceCache:
        """See ``HyenaDNAModel.allocate_inference_cache``."""
        return self.backbone.allocate_inference_cache(batch, capacity, block)

    def num_parameters(self) -> int:
        """Unique trainable parameters (the shared ``freq`` counted once, buffers excluded)."""
        return sum(p.numel() for p in self.parameters())

    def use_reference_path(self, enabled: bool = True) -> HyenaDNALMHeadModel:
        """Switch every Hyena operator and MLP to the plain reference algorithm (for parity checks and benchmarks)."""
        for m in self.modules():
            if isinstance(m, (HyenaOperator, Mlp)):
                m.use_reference_path = enabled
        return self

    def gradient_checkpointing(self, enabled: bool = True) -> HyenaDNALMHeadModel:
        """Trade time for memory in training: keep each block's inputs only and recompute the rest in the backward
        (``ExecutionOptions.gradient_checkpointing``). The same gradients; activations of about two (B, L, D) tensors a
        block plus one block's intermediates, so longer windows or larger batches fit."""
        self.backbone.execution = replace(self.backbone.execution, gradient_checkpointing=enabled)
        return self

    def sequence_chunked(self, enabled: bool = True, chunk: int | None = None) -> HyenaDNALMHeadModel:
        """Train each block in token chunks of ``chunk`` tokens (``ExecutionOptions.sequence_chunked``): it keeps
        only its input, so activations take about one (B, L, D) float32 tensor a block plus a few for the block in
        work, at any window length (large-1m on 1M-token windows). The same gradients up to float rounding."""
        self.backbone.execution = replace(self.backbone.execution, sequence_chunked=enabled, sequence_chunk=chunk)
        return self

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        allow_unsafe_pickle: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        **config_overrides,
    ) -> HyenaDNALMHeadModel:
        """Load a checkpoint in any supported layout (see ``hyenadna.models.checkpoint``) from a file or directory,
        or by name: a published name or a Hub repo id is fetched into the Hugging Face cache (see ``hyenadna.hub``).
        Every key and shape is checked against the model the config describes; the model comes back in eval mode,
        on ``device`` ("cpu", "cuda[:N]", "mps" or "auto") in ``dtype`` (a torch dtype or "float32", "bfloat16",
        "float16")."""
        path = Path(name_or_path).expanduser()
        if not path.exists():
            from hyenadna.hub import HubOptions, resolve_weights

            path = resolve_weights(str(name_or_path), None, HubOptions(revision, local_files_only))
        config, state, weights = read_checkpoint(path, allow_unsafe_pickle)
        model = cls(replace(config, **config_overrides))
        model.load_canonical_state_dict(state, source=weights)
        return model.to(device=resolve_device(device), dtype=parse_dtype(dtype)).eval()

    def load_canonical_state_dict(self, state: dict[str, Tensor], source: str | Path = "<state dict>") -> None:
        """Copy a canonical state dict (reference key names, each shared freq once) in, after checking every key and
        shape; the error names the key."""
        model_state = self.state_dict()
        state = without_derived_buffers(state, self, source)
        hint = f"config.json ({self.config.shape_summary()}) does not match the weights"
        check_state_dict(state, canonical_keys(model_state), source, hint)
        full = with_freq_aliases(state, model_state)
        with torch.no_grad():
            self.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in full.items()}, strict=True)

    def save_pretrained(
        self, directory: str | Path, layout: str = "hyenadna", max_shard_bytes: int | None = None
    ) -> Path:
        """Write ``config.json`` + weights in ``layout``: "hyenadna" (default), "hf" or "lightning". Safetensors
        weights over ``max_shard_bytes`` are split into shards with a ``model.safetensors.index.json``."""
        return write_checkpoint(directory, self.config, self.state_dict(), self.head_weight, layout, max_shard_bytes)


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    allow_unsafe_pickle: bool = False,
    **config_overrides,
) -> HyenaDNALMHeadModel:
    """A checkpoint file or directory in any layout, detected; the model in eval mode (never fetches anything)."""
    if not Path(path).expanduser().exists():
        raise CheckpointError(f"{path}: no such file or directory")
    return HyenaDNALMHeadModel.from_pretrained(
        path, device=device, dtype=dtype, allow_unsafe_pickle=allow_unsafe_pickle, **config_overrides
    )


def save_model(model: HyenaDNALMHeadModel, directory: str | Path, layout: str = "hyenadna") -> Path:
    return model.save_pretrained(directory, layout)


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    layout: str = "hyenadna",
    allow_unsafe_pickle: bool = False,
    max_shard_bytes: int | None = None,
) -> Path:
    """Read a checkpoint in any layout and write it to ``dst`` in ``layout``. ``dst`` may not be the folder the source
    lies in: its weights and config.json would be replaced by the other layout's, beside the files read."""
    src_folder = Path(src) if Path(src).is_dir() else Path(src).parent
    if Path(dst).exists() and src_folder.exists() and os.path.samefile(dst, src_folder):
        raise ValueError(f"{dst} is the source's own folder: write the converted checkpoint to another folder")
    return load_model(src, allow_unsafe_pickle=allow_unsafe_pickle).save_pretrained(dst, layout, max_shard_bytes)


def _init_weights(module: nn.Module, config: HyenaConfig) -> None:
    """The reference init: N(0, 0.02) for Linear and Embedding weights, zero biases (the filter's D stays N(0, 1))."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=config.initializer_range)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=config.initializer_range)
