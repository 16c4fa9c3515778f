"""hyenadna: the HyenaDNA long-range DNA language model (Nguyen et al. 2023), faithful to the reference weights.

The public names below load on first use (PEP 562), so ``import hyenadna`` and the command line start without
importing torch: a Ctrl-C in the first seconds ends cleanly, and ``hyenadna --help`` answers at once.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"


def _check_torch() -> None:
    # autocast queried by device type (torch.is_autocast_enabled(device), torch.get_autocast_dtype) came in torch 2.4.
    # Read from torch/version.py without importing torch (seconds) or importlib.metadata (tens of milliseconds).
    import importlib.util
    import re
    from pathlib import Path

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        raise ImportError("hyenadna needs torch >= 2.4: pip install torch")
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        return  # an unusual build: importing it will tell
    found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text)
    if found and tuple(int(x) for x in re.findall(r"\d+", found.group(1))[:2]) < (2, 4):
        raise ImportError(f"hyenadna needs torch >= 2.4; this environment has torch {found.group(1)}")


_check_torch()

_EXPORTS = {
    "HyenaDNAFineTuningModel": "hyenadna.finetune",
    "WeightsNotFoundError": "hyenadna.hub",
    "PUBLISHED_CONFIGS": "hyenadna.models",
    "CheckpointError": "hyenadna.models",
    "HyenaConfig": "hyenadna.models",
    "HyenaDNALMHeadModel": "hyenadna.models",
    "HyenaDNAModel": "hyenadna.models",
    "convert_checkpoint": "hyenadna.models",
    "load_model": "hyenadna.models",
    "save_model": "hyenadna.models",
    "ExecutionOptions": "hyenadna.ops.execution",
    "masked_pool": "hyenadna.pooling",
    "HyenaDNA": "hyenadna.sdk",
    "HyenaDNAConfig": "hyenadna.sdk",
    "TokenizedSequences": "hyenadna.sdk",
    "VOCAB": "hyenadna.tokenizer",
    "BatchEncoding": "hyenadna.tokenizer",
    "CharacterTokenizer": "hyenadna.tokenizer",
    "reverse_complement_ids": "hyenadna.tokenizer",
}

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


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hyenadna' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
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
