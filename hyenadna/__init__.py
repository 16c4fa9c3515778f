"""hyenadna: the HyenaDNA long-range DNA language model (Nguyen et al. 2023), faithful to the reference weights."""

import torch as _torch

# autocast queried by device type (torch.is_autocast_enabled(device), torch.get_autocast_dtype) came in torch 2.4
if tuple(int(x) for x in _torch.__version__.split("+")[0].split(".")[:2]) < (2, 4):
    raise ImportError(f"hyenadna needs torch >= 2.4; this environment has torch {_torch.__version__}")

from hyenadna.finetune import HyenaDNAFineTuningModel
from hyenadna.hub import WeightsNotFoundError
from hyenadna.models import (
    PUBLISHED_CONFIGS,
    CheckpointError,
    HyenaConfig,
    HyenaDNALMHeadModel,
    HyenaDNAModel,
    convert_checkpoint,
    load_model,
    save_model,
)
from hyenadna.ops.execution import ExecutionOptions
from hyenadna.pooling import masked_pool
from hyenadna.sdk import HyenaDNA, HyenaDNAConfig, TokenizedSequences
from hyenadna.tokenizer import VOCAB, BatchEncoding, CharacterTokenizer, reverse_complement_ids

__version__ = "0.1.0"

__all__ = [
    "PUBLISHED_CONFIGS",
    "VOCAB",
    "BatchEncoding",
    "CharacterTokenizer",
    "CheckpointError",
    "ExecutionOptions",
    "HyenaConfig",
    "HyenaDNA",
    "HyenaDNAConfig",
    "HyenaDNAFineTuningModel",
    "HyenaDNALMHeadModel",
    "HyenaDNAModel",
    "TokenizedSequences",
    "WeightsNotFoundError",
    "convert_checkpoint",
    "load_model",
    "masked_pool",
    "reverse_complement_ids",
    "save_model",
]
