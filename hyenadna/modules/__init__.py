from hyenadna.modules.block import Block, Mlp
from hyenadna.modules.hyena import HyenaOperator
from hyenadna.modules.hyena_filter import ExponentialModulation, HyenaFilter, PositionalEmbedding, Sin

__all__ = ["Block", "ExponentialModulation", "HyenaFilter", "HyenaOperator", "Mlp", "PositionalEmbedding", "Sin"]
