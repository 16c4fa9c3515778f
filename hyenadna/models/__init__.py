from hyenadna.models.checkpoint import CheckpointError
from hyenadna.models.config import PUBLISHED_CONFIGS, HyenaConfig
from hyenadna.models.hyena_dna import (
    CausalLMOutput,
    HyenaDNALMHeadModel,
    HyenaDNAModel,
    InferenceCache,
    convert_checkpoint,
    load_model,
    save_model,
)

__all__ = [
    "PUBLISHED_CONFIGS",
    "CausalLMOutput",
    "CheckpointError",
    "HyenaConfig",
    "HyenaDNALMHeadModel",
    "HyenaDNAModel",
    "InferenceCache",
    "convert_checkpoint",
    "load_model",
    "save_model",
]
