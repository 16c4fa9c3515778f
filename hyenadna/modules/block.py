"""A pre-norm residual block: Hyena mixer then MLP, with the residual stream kept in float32."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hyenadna.ops import fused
from hyenadna.ops.block_chunked import block_chunked
from hyenadna.ops.execution import ExecutionOptions
from hyenadna.ops.hyena import HyenaState, hyena_low_memory
from hyenadna.ops.linear import matmul_dtype, mlp, mlp_ref


class Mlp(nn.Module):
    def __init__(self, d_model: int, d_inner: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_inner)
        self.fc2 = nn.Linear(d_inner, d_model)
        self.use_reference_path = False

    def weights(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """fc1 and fc2 weights and biases in ``dtype``, for callers that run many chunks through ``forward``."""
        return tuple(t.to(dtype) for t in (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias))

    def forward(self, x: Tensor, weights: tuple[Tensor, Tensor, Tensor, Tensor] | None = None) -> Tensor:
        # oneDNN projections (ops/linear.py; in inference the GELU is fused into fc1), or plain F.linear as the
        # reference does
        w1, b1, w2, b2 = weights or (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
        return (mlp_ref if self.use_reference_path else mlp)(x, w1, b1, w2, b2)


class Block(nn.Module):
    """residual += drop(x); x = mixer(norm1(residual)); residual += drop(x); x = mlp(norm2(residual))."""

    def __init__(
        self,
        mixer: nn.Module,
        d_model: int,
        d_inner: int,
        eps: float = 1e-5,
        dropout_in: float = 0.0,
        resid_dropout: float = 0.0,
    ):
        super().__init__()
        self.mixer = mixer
        self.mlp = Mlp(d_model, d_inner)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        # the first block's input dropout is the embedding dropout; later ones drop the previous block's MLP output
        self.dropout1 = nn.Dropout(dropout_in)
        self.dropout2 = nn.Dropout(resid_dropout)

    def forward(
        self,
        x: Tensor,
        residual: Tensor | None,
        path: str | None = None,
        options: ExecutionOptions | None = None,
        state: HyenaState | None = None,
    ) -> tuple[Tensor, Tensor]:
        x = self._drop(self.dropout1, x, path)
        residual = x.float() if residual is None else x.float() + residual
        x = self.mixer(self.norm1(residual.to(self.norm1.weight.dtype)), path, options, state)
        residual = self._drop(self.dropout2, x, path).float() + residual
        x = self.mlp(self.norm2(residual.to(self.norm2.weight.dtype)))
        return x, residual

    def forward_chunked(self, x: Tensor, residual: Tensor | None, chunk: int) -> tuple[Tensor, Tensor]:
        """``forward`` for training, in token chunks of ``chunk`` (ops/block_chunked.py): the block keeps only the
        residual stream entering it, so its activations take O(L x D) memory at any window length."""
        x = self._drop(self.dropout1, x, "train")
        residual = x.float() if residual is None else x.float() + residual
        return block_chunked(self, residual, chunk)

    def _drop(self, dropout: nn.Dropout, x: Tensor, path: str | None) -> Tensor:
        # the reference path draws its masks as the reference does; ours from 16-bit draws (ops/fused.py: dropout)
        if not self.training or dropout.p == 0 or path == "reference":
            return dropout(x)
        return fused.dropout(x, dropout.p)

    @torch.no_grad()
    def forward_low_memory(self, residual: Tensor, options: ExecutionOptions, conv: Tensor | None = None) -> None:
        """Inference on one long sequence (L, D), in place: residual += mixer(norm1(residual)), then += mlp(norm2(.)).
        The mixer yields its output from the last chunk back and from then on reads only earlier rows, so each
        chunk's residual update and MLP run as soon as it arrives; nothing of size L x d_inner is allocated. ``conv``
        is the mixer's (D, L) float32 work tensor, if the caller reuses one across layers."""

        def mixer_input(start: int, end: int) -> Tensor:
            return self.norm1(residual[start:end].to(self.norm1.weight.dtype))

        mlp_weights = self.mlp.weights(matmul_dtype(self.mlp.fc1.weight))  # cast once (bf16 under autocast)
        seqlen, chunk = residual.shape[0], options.tuned("low_memory_chunk", residual.device)
        for s, y in hyena_low_memory(self.mixer, mixer_input, seqlen, chunk, options, conv=conv):
            rows = residual[s : s + y.shape[0]]
            rows += y
            rows += self.mlp(self.norm2(rows.to(self.norm2.weight.dtype)), mlp_weights)
