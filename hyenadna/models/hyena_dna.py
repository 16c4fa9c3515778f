"""HyenaDNA: a GPT-style causal stack of Hyena blocks over single-nucleotide tokens, with a tied LM head."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyenadna.models.config import HyenaConfig
from hyenadna.modules.block import Block, Mlp
from hyenadna.modules.hyena import HyenaOperator

# Inference on sequences at least this long runs chunk by chunk in O(L x D) memory (see HyenaDNAModel.forward). It
# is also the faster path from here on (batch 1, fp32, best of 3): at 4,096 tokens 0.73x / 0.83x the batched path's
# speed for D 128 / 256, at 8,192 0.98x / 1.09x, at 16,384 1.03x / 1.36x.
LOW_MEMORY_MIN_LENGTH = 8192
# ... in token chunks of this size, so a chunk's projections and MLP activations stay in cache. One large-1m layer at
# 1M tokens: 1,024 took 0.93x the time of 2,048 and 0.81x of 16,384 (benchmarks/results/low_memory_chunk.json).
LOW_MEMORY_CHUNK = 1024
# Batched inference runs the stack on micro-batches of about this many tokens: a layer's activations then stay in
# cache between its steps instead of streaming through memory (tiny-1k: batch 32 was slower per token than batch 1).
INFERENCE_BLOCK_TOKENS = 2048


class TokenEmbedding(nn.Module):
    """Token embedding only: HyenaDNA has no positional embedding (the long filters carry position)."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.word_embeddings(input_ids)


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

    def forward(self, input_ids: Tensor, low_memory: bool | None = None) -> Tensor:
        """``low_memory`` (default: automatic for inference on sequences of at least LOW_MEMORY_MIN_LENGTH) runs each
        sequence layer by layer in token chunks, with the long convolution in channel groups, in O(L x D) memory."""
        batch, seqlen = input_ids.shape
        fast_inference = not torch.is_grad_enabled() and not self.training and not self._reference_path()
        if low_memory is None:
            low_memory = seqlen >= LOW_MEMORY_MIN_LENGTH and fast_inference
        if low_memory:
            if batch == 1:  # no stacked copy of a possibly multi-GB output
                return self._forward_low_memory(input_ids[0])[None]
            return torch.stack([self._forward_low_memory(row) for row in input_ids])
        rows = max(1, INFERENCE_BLOCK_TOKENS // max(seqlen, 1))
        if rows < batch and fast_inference:
            first = self._forward_stack(input_ids[:rows])
            out = first.new_empty(batch, *first.shape[1:])
            out[:rows] = first
            for s in range(rows, batch, rows):
                out[s : s + rows] = self._forward_stack(input_ids[s : s + rows])
            return out
        return self._forward_stack(input_ids)

    def _reference_path(self) -> bool:
        return any(getattr(m, "use_reference_path", False) for m in self.modules())

    def _forward_stack(self, input_ids: Tensor) -> Tensor:
        x, residual = self.embeddings(input_ids), None
        for layer in self.layers:
            x, residual = layer(x, residual)
        residual = self.drop_f(x).float() + residual
        return self.ln_f(residual.to(self.ln_f.weight.dtype))

    @torch.no_grad()
    def _forward_low_memory(self, input_ids: Tensor, chunk: int = LOW_MEMORY_CHUNK) -> Tensor:
        residual = self.embeddings(input_ids).float()
        conv = residual.new_empty(residual.shape[::-1])  # one (D, L) work tensor for every layer's long convolution
        for layer in self.layers:
            layer.forward_low_memory(residual, chunk=chunk, conv=conv)
        for s in range(0, residual.shape[0], chunk):  # the output overwrites the residual stream
            residual[s : s + chunk] = self.ln_f(residual[s : s + chunk])
        return residual


class CausalLMOutput(NamedTuple):
    logits: Tensor
    loss: Tensor | None
    hidden_states: Tensor


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

    def forward(self, input_ids: Tensor, labels: Tensor | None = None, ignore_index: int = -100) -> CausalLMOutput:
        """Logits for every position; with ``labels`` (already shifted: labels[t] is the token after t), the mean
        cross-entropy over positions whose label is not ``ignore_index``."""
        hidden = self.backbone(input_ids)
        logits = F.linear(hidden, self.head_weight)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index)
        return CausalLMOutput(logits, loss, hidden)

    def num_parameters(self) -> int:
        """Unique trainable parameters (the shared ``freq`` counted once, buffers excluded)."""
        return sum(p.numel() for p in self.parameters())

    def use_reference_path(self, enabled: bool = True) -> HyenaDNALMHeadModel:
        """Switch every Hyena operator and MLP to the plain reference algorithm (for parity checks and benchmarks)."""
        for m in self.modules():
            if isinstance(m, (HyenaOperator, Mlp)):
                m.use_reference_path = enabled
        return self

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        allow_unsafe_pickle: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        **config_overrides,
    ) -> HyenaDNALMHeadModel:
        """Load a checkpoint in any supported layout (see ``hyenadna.models.checkpoint``) from a file or directory,
        or by name: a published name or a Hub repo id is fetched into the Hugging Face cache (see ``hyenadna.hub``).
        """
        from hyenadna.hub import HubOptions, resolve_weights
        from hyenadna.models.checkpoint import load_model

        path = Path(name_or_path).expanduser()
        if not path.exists():
            path = resolve_weights(str(name_or_path), None, HubOptions(revision, local_files_only))
        return load_model(path, device=device, dtype=dtype, allow_unsafe_pickle=allow_unsafe_pickle, **config_overrides)

    def save_pretrained(self, directory: str | Path, layout: str = "hyenadna") -> Path:
        """Write ``config.json`` + weights in ``layout``: "hyenadna" (default), "hf" or "lightning"."""
        from hyenadna.models.checkpoint import save_model

        return save_model(self, directory, layout=layout)


def _init_weights(module: nn.Module, config: HyenaConfig) -> None:
    """The reference init: N(0, 0.02) for Linear and Embedding weights, zero biases (the filter's D stays N(0, 1))."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=config.initializer_range)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=config.initializer_range)
