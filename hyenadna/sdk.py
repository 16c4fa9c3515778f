"""The model-card API: ``HyenaDNAConfig`` + ``HyenaDNA`` with ``process_data`` and ``get_embeddings``.

Data flow: text -> ``process_data`` (tokenizer; unframed base ids per sequence) -> ``get_embeddings`` (framing,
windows of the context length, length-bucketed right-padded batches, backbone, mask-aware pooling) -> numpy.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hyenadna.data.pipeline import (
    CONTEXT_MODES,
    ContextPolicy,
    PerBaseCollector,
    Pooler,
    iter_batches,
    per_base_memory_error,
    plan_chunks,
)
from hyenadna.hub import (
    DEFAULT_RANDOM_SHAPE,
    HUB_LAYOUTS,
    HubOptions,
    check_matches_published,
    published_config,
    resolve_weights,
)
from hyenadna.models.config import HyenaConfig
from hyenadna.models.hyena_dna import HyenaDNALMHeadModel, load_model
from hyenadna.pooling import POOLINGS
from hyenadna.tokenizer import POLICIES, CharacterTokenizer, sequence_label
from hyenadna.utils.device import resolve_device, seeded
from hyenadna.utils.precision import autocast, check_precision_with_dtype, parse_dtype

if TYPE_CHECKING:
    import pandas as pd

    from hyenadna.data.readers import GenomeFasta
    from hyenadna.data.regions import Interval
    from hyenadna.ism import IsmResult

LONG_SEQUENCE_MODES = CONTEXT_MODES


@dataclass
class HyenaDNAConfig:
    """Everything the SDK needs to build a model and embed with it.

    model_name: a published name (fetched from the Hugging Face Hub on first use, then read from its cache), a Hub
        repo id (``org/name``), a checkpoint path, or None for the bundled model. See ``hyenadna.hub``.
    model_path: a checkpoint directory or file in any supported layout; takes precedence over the name.
    revision / local_files_only / hub_layout: Hub options: a branch, tag or commit to pin; never use the network
        (as ``HF_HUB_OFFLINE=1``); for published names, "auto" (the ``-hf`` repository, else the Lightning one),
        "hf" or "lightning".
    pretrained: False builds a randomly initialised model (reference init, seeded by ``seed``) on purpose.
    pooling: None for per-token embeddings (N, L, D); "mean", "last" or "max" for (N, D).
    long_sequences: what to do with sequences longer than ``max_length`` (default: the model's l_max):
        "window" splits them into windows whose outputs cover each base once; "truncate"; "error".
    overlap: with "window", tokens of left context each window after the first re-reads from the one before.
    rc_average: average each embedding with that of its reverse complement.
    framing / iupac_policy / n_to_pad: tokenizer options (see ``CharacterTokenizer``).
    precision: "fp32" (default; reproduces the reference to float32 precision), "bf16" or "fp16": autocast of the
        dense projections, ~2x faster where the CPU has native bf16 (AVX512-BF16, AMX) or on a GPU, slower on CPUs
        without it; the FFT convolution and the residual stream stay fp32. Embeddings then differ from fp32 at the
        1e-2 level (bf16) or 1e-3 level (fp16).
    dtype: the weights' dtype on load: "float32" (default), "bfloat16" or "float16" (half the memory; the FFT
        convolution and the residual stream still run in fp32).
    gradient_checkpointing: in training (``HyenaDNAFineTuningModel.train``), keep each block's inputs only and
        recompute its activations in the backward: the same gradients, bit for bit, in less memory, for about one
        more forward pass of time. For long sequences or large batches that would not fit otherwise.
    sequence_chunked: in training, run each block in token chunks keeping only its input (ops/block_chunked.py):
        activations of about one (batch, length, width) tensor a layer at any length, the same gradients to float
        rounding, for about one more forward pass of time than gradient checkpointing.
    """

    model_name: str | None = None
    model_path: str | Path | None = None
    batch_size: int = 8
    device: str = "cpu"
    pretrained: bool = True
    pooling: str | None = None
    long_sequences: str = "window"
    overlap: int = 0
    max_length: int | None = None
    rc_average: bool = False
    framing: str = "none"
    iupac_policy: str = "iupac_to_n"
    n_to_pad: bool = False
    allow_unsafe_pickle: bool = False
    revision: str | None = None
    local_files_only: bool = False
    hub_layout: str = "auto"
    seed: int = 0
    progress: bool | None = None  # None: show a bar only on a terminal
    precision: str = "fp32"
    dtype: str = "float32"
    gradient_checkpointing: bool = False
    sequence_chunked: bool = False
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}: choose None (per token) or one of {POOLINGS}")
        if self.long_sequences not in LONG_SEQUENCE_MODES:
            raise ValueError(f"long_sequences={self.long_sequences!r}: choose one of {LONG_SEQUENCE_MODES}")
        check_precision_with_dtype(self.precision, self.dtype)
        for name in ("batch_size", "max_length", "overlap"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise ValueError(f"{name}={value!r}: must be a whole number")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: must be >= 1")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length={self.max_length}: must be >= 1")
        if self.overlap < 0 or (self.max_length is not None and self.overlap >= self.max_length):
            raise ValueError(f"overlap={self.overlap}: must be >= 0 and less than the context")
        if self.iupac_policy not in POLICIES:
            raise ValueError(f"iupac_policy={self.iupac_policy!r}: choose one of {POLICIES}")
        if self.hub_layout not in HUB_LAYOUTS:
            raise ValueError(f"hub_layout={self.hub_layout!r}: choose one of {HUB_LAYOUTS}")
        known = {f.name for f in fields(HyenaConfig)}
        unknown = sorted(set(self.model_overrides) - known)
        if unknown:
            raise ValueError(
                f"model_overrides: {', '.join(unknown)} not a HyenaConfig field ({', '.join(sorted(known))})"
            )

    @property
    def hub(self) -> HubOptions:
        return HubOptions(revision=self.revision, local_files_only=self.local_files_only, layout=self.hub_layout)


@dataclass
class TokenizedSequences:
    """Unframed base ids per sequence, with names; what ``process_data`` returns and ``get_embeddings`` takes."""

    ids: list[np.ndarray]
    names: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.ids], dtype=np.int64)


def build_model(config: HyenaDNAConfig) -> tuple[HyenaDNALMHeadModel, str]:
    """The model a config asks for, and a one-line description of where it came from."""
    device = resolve_device(config.device)
    if not config.pretrained:
        name = config.model_name or DEFAULT_RANDOM_SHAPE
        shape = published_config(name)
        if shape is None:
            raise ValueError(f"pretrained=False needs a published model name for the shape, got {name!r}")
        with seeded(config.seed):
            model = HyenaDNALMHeadModel(replace(shape, **config.model_overrides))
        model = model.to(device=device, dtype=parse_dtype(config.dtype)).eval()
        model.gradient_checkpointing(config.gradient_checkpointing).sequence_chunked(config.sequence_chunked)
        return model, f"{name} shape, RANDOMLY INITIALISED (seed {config.seed}), not pretrained"
    path = resolve_weights(config.model_name, config.model_path, config.hub)
    model = load_model(
        path,
        device=device,
        dtype=parse_dtype(config.dtype),
        allow_unsafe_pickle=config.allow_unsafe_pickle,
        **config.model_overrides,
    )
    check_matches_published(config.model_name, model.config, path)
    model.gradient_checkpointing(config.gradient_checkpointing).sequence_chunked(config.sequence_chunked)
    return model, f"{config.model_name or path.name} from {path}"


class HyenaDNA:
    """Embeds DNA with a pretrained HyenaDNA model.

    >>> model = HyenaDNA(configurer=HyenaDNAConfig(model_name="hyenadna-tiny-1k-seqlen-d256"))  # doctest: +SKIP
    >>> emb = model.get_embeddings(model.process_data("ACTG" * 1024))  # (1, 4096, 256)  # doctest: +SKIP
    """

    def __init__(self, configurer: HyenaDNAConfig | None = None, model: HyenaDNALMHeadModel | None = None):
        self.config = configurer or HyenaDNAConfig()
        if model is None:
            self.model, self.source = build_model(self.config)
        else:
            self.model, self.source = model.eval(), "given model"
        self.device = next(self.model.parameters()).device
        self.tokenizer = CharacterTokenizer(self.config.framing, self.config.iupac_policy, self.config.n_to_pad)

    @property
    def context_length(self) -> int:
        return self.config.max_length or self.model.config.l_max

    @property
    def embedding_dim(self) -> int:
        return self.model.config.d_model

    def process_data(self, data: Any, names: Sequence[str] | None = None, start_index: int = 0) -> TokenizedSequences:
        """Tokenize a str, a list of str, a dict of name to str, or a pandas DataFrame with a ``sequence`` column
        (any case; names from a ``name`` or ``id`` column).
        ``start_index`` numbers the sequences in error messages when data comes in chunks."""
        return tokenize_data(self.tokenizer, data, names, start_index)

    def context_policy(self, long_sequences: str | None = None, overlap: int | None = None) -> ContextPolicy:
        return ContextPolicy(
            self.context_length,
            long_sequences or self.config.long_sequences,
            self.config.overlap if overlap is None else overlap,
        )

    def score(
        self, data: TokenizedSequences | Any, overlap: int | None = None, on_batch: Callable[[int], None] | None = None
    ) -> pd.DataFrame:
        """Each sequence's log-likelihood under the language model, a row each in input order: ``log_likelihood``
        (natural log, the sum over every base but the first of log P(base | the bases before it)), ``n_scored``,
        ``n_skipped`` (N targets, and IUPAC codes read as N: the model cannot predict a gap), ``nll_per_base`` and
        ``perplexity`` (NaN where nothing was scored: one base, or only N). A sequence longer than the context runs
        in windows that re-read ``overlap`` bases of left context (at least 1, so every base but the first is
        scored). ``on_batch`` as in ``get_embeddings``."""
        import pandas as pd

        from hyenadna.scoring import score_bases, scoring_policy

        seqs = data if isinstance(data, TokenizedSequences) else self.process_data(data)
        policy = scoring_policy(self.context_length, overlap=self.config.overlap if overlap is None else overlap)
        with autocast(self.device, self.config.precision):
            scores = score_bases(
                self.model, seqs.ids, self.tokenizer, policy, self.config.batch_size, seqs.names, on_batch=on_batch
            )
        return pd.DataFrame(
            {
                "id": seqs.names,
                "length": seqs.lengths.astype(np.int64),
                "log_likelihood": [s.log_likelihood for s in scores],
                "n_scored": [s.n_scored for s in scores],
                "n_skipped": [s.n_skipped for s in scores],
                "nll_per_base": [s.nll_per_base for s in scores],
                "perplexity": [s.perplexity for s in scores],
            }
        )

    def variant_effects(
        self, vcf: str | Path, genome: str | Path, window: int = 1024, both_strands: bool = False
    ) -> pd.DataFrame:
        """Zero-shot effect of each VCF allele, a row per (variant, ALT allele) in VCF order, as ``hyenadna vep``
        writes them: ``llr`` = log P(alt window) - log P(ref window), two windows of ``window`` bases of ``genome``
        holding the variant at the same offset (negative: the model finds the allele less likely), summed over the
        positions where neither window holds N (``n_skipped``: the others), and the distance between their
        mean-pooled embeddings; with ``both_strands`` the mean over both strands. Alleles that cannot be scored keep
        a ``status`` (not in the genome, a REF that differs from it, a symbolic allele, an N) and a warning
        (``hyenadna.vep.score_variant_blocks``)."""
        from hyenadna.vep import effects_table, score_variants, vep_columns

        with autocast(self.device, self.config.precision):
            rows = list(
                score_variants(self.model, self.tokenizer, vcf, genome, window, self.config.batch_size, both_strands)
            )
        return effects_table(rows, vep_columns(both_strands))

    def mutagenesis(
        self,
        genome: str | Path | GenomeFasta,
        region: str | Interval,
        window: int = 1024,
        both_strands: bool = False,
        deletions: bool = False,
        progress: Callable[[int], None] | None = None,
        chrom_name: str | None = None,
    ) -> IsmResult:
        """In-silico mutagenesis of ``region`` of ``genome`` ("chrom:start-end", 0-based and half-open, or an
        ``Interval``), as ``hyenadna ism`` maps it: ``result.llr[i, b]`` is the LLR ``variant_effects`` would give
        base ``"ACGT"[b]`` at ``result.positions[i]``, with ``window`` bases of context (NaN at the reference), and
        with ``deletions`` each base's deletion; ``result.importance`` per position. It costs three windows a base
        (four with deletions). ``chrom_name``: how its rows name the chromosome (default: as ``region`` does)."""
        from hyenadna.data.regions import parse_region
        from hyenadna.ism import in_silico_mutagenesis

        interval = parse_region(region) if isinstance(region, str) else region
        if isinstance(interval, str):
            raise ValueError(f"region {region!r}: give start and end (chrom:start-end)")
        name = chrom_name or (region.split(":")[0] if isinstance(region, str) else None)
        with autocast(self.device, self.config.precision):
            return in_silico_mutagenesis(
                self.model,
                self.tokenizer,
                genome,
                interval,
                chrom_name=name,
                window=window,
                batch_size=self.config.batch_size,
                both_strands=both_strands,
                deletions=deletions,
                progress=progress,
            )

    def generate(
        self,
        prompt: str,
        length: int = 100,
        num_samples: int = 1,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
        top_p: float | None = None,
    ) -> list[str]:
        """``num_samples`` continuations of ``prompt``, ``length`` bases each (A/C/G/T), sampled from the language
        model at ``temperature`` among the ``top_k`` likeliest bases and the nucleus of mass ``top_p``, with the
        configured precision and framing; a base at a time from an inference cache (``hyenadna.generate``)."""
        from hyenadna.generate import generate

        with autocast(self.device, self.config.precision):
            return generate(
                self.model,
                self.tokenizer,
                prompt,
                length,
                num_samples,
                temperature,
                top_k,
                seed,
                progress=progress,
                top_p=top_p,
            )

    def per_base_rows(self, data: TokenizedSequences | Any, long_sequences: str | None = None) -> np.ndarray:
        """The rows each sequence gets per token: its bases, or under ``long_sequences="truncate"`` those that fit."""
        seqs = data if isinstance(data, TokenizedSequences) else self.process_data(data)
        chunks = plan_chunks(seqs.ids, self.tokenizer, self.context_policy(long_sequences), 1, seqs.names)
        return np.array(_per_base_rows(chunks, len(seqs)), dtype=np.int64)

    @torch.inference_mode()
    def get_embeddings(
        self,
        data: TokenizedSequences | Any,
        pooling: str | type[Ellipsis] | None = ...,
        rc_average: bool | None = None,
        long_sequences: str | None = None,
        layer: int | Sequence[int] = -1,
        overlap: int | None = None,
        ragged: bool = False,
        on_batch: Callable[[int], None] | None = None,
        allocate: Callable[[tuple[int, int, int]], np.ndarray] | None = None,
    ) -> np.ndarray | list:
        """Embeddings as float32 numpy: per base (N, L_max, D), one row per input base (framing tokens dropped) and
        zero after each sequence's end, or pooled (N, D) over every framed token. With ``ragged`` (per base only), a
        list of N arrays (L_i, D) instead, which take the memory of the bases given rather than N times the longest.

        ``layer``: which hidden states, 0 (the embedding output) to n_layer (-1, the default: the final LayerNorm's
        output); a list gives a list of outputs, computed in one pass. A sequence's embedding never depends on the
        other sequences in the batch: batches are right-padded and pooling uses the mask. Per-base outputs that would
        not fit in the memory available raise a MemoryError that says so before any work. ``on_batch(bases)`` is
        called after each batch with the input bases it covered (each base once, whatever the strands and windows).

        ``allocate(shape)`` (per base, not ragged) gives the zeroed float32 (N, L_max, D) array to fill, once per
        layer in ``layer``'s order, in place of one in memory: ``np.lib.format.open_memmap`` puts it on disk, for
        outputs larger than the memory (a whole chromosome per base). It is what is returned, and no memory check is
        made for it.
        """
        seqs = data if isinstance(data, TokenizedSequences) else self.process_data(data)
        pooling = self.config.pooling if pooling is ... else pooling
        if pooling is not None and pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: choose None (per token) or one of {POOLINGS}")
        if ragged and pooling is not None:
            raise ValueError(f"ragged=True gives per-base arrays: it needs pooling=None (pooling={pooling!r})")
        if allocate is not None and (ragged or pooling is not None):
            raise ValueError("allocate gives the per-base (N, L_max, D) arrays: it needs pooling=None, ragged=False")
        single = isinstance(layer, numbers.Integral)  # numpy's integers too
        if not single and not all(isinstance(k, numbers.Integral) for k in layer):
            raise TypeError(f"layer={layer!r}: give a layer number or a list of them")
        layers = [int(layer)] if single else [int(k) for k in layer]
        layers = self.model.backbone.layer_indices(layers)
        strands = 2 if (self.config.rc_average if rc_average is None else rc_average) else 1
        policy = self.context_policy(long_sequences, overlap)
        chunks = plan_chunks(seqs.ids, self.tokenizer, policy, strands, seqs.names)

        dim = self.embedding_dim
        if pooling is None:
            lengths = _per_base_rows(chunks, len(seqs))
            if allocate is not None:
                shape = (len(seqs), int(max(lengths, default=0)), dim)
                sinks = [PerBaseCollector(lengths, strands, dim, out=_allocated(allocate, shape)) for _ in layers]
            else:
                error = per_base_memory_error(lengths, dim, len(layers), ragged, seqs.names)
                if error is not None:
                    raise error
                try:
                    sinks = [PerBaseCollector(lengths, strands, dim, ragged=ragged) for _ in layers]
                except MemoryError:  # refused by the system despite the estimate: the same error, not numpy's
                    raise per_base_memory_error(lengths, dim, len(layers), ragged, seqs.names, force=True) from None
        else:
            sinks = [Pooler(len(seqs), strands, dim, pooling, self.device) for _ in layers]
        progress = self.config.progress
        n_batches = -(-len(chunks) // self.config.batch_size)
        bar = tqdm(
            total=n_batches, desc="embedding", unit="batch", disable=not progress if progress is not None else None
        )
        with bar:
            for batch, enc in iter_batches(chunks, self.config.batch_size, self.device):
                with autocast(self.device, self.config.precision):
                    hidden = self.model.backbone(enc.input_ids, layers=layers)
                for sink, h in zip(sinks, hidden, strict=True):
                    sink.add(h, batch)
                bar.update()
                if on_batch is not None:
                    on_batch(sum(c.bases_out() for c in batch if c.strand == 0))
        outs = [sink.out if pooling is None else sink.result().cpu().numpy() for sink in sinks]
        return outs[0] if single else outs


def _per_base_rows(chunks: Sequence, n: int) -> list[int]:
    rows = [0] * n
    for c in chunks:
        rows[c.seq] = c.n_bases
    return rows


def _allocated(allocate: Callable[[tuple[int, int, int]], np.ndarray], shape: tuple[int, int, int]) -> np.ndarray:
    out = allocate(shape)
    if out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"allocate gave a {out.dtype} array of shape {out.shape}; float32 {shape} is needed")
    return out


def tokenize_data(
    tokenizer: CharacterTokenizer, data: Any, names: Sequence[str] | None = None, start_index: int = 0
) -> TokenizedSequences:
    """Unframed base ids for each sequence of ``data``; an empty sequence or a bad character is a clear error."""
    if isinstance(data, TokenizedSequences):
        return data
    sequences, found_names = _sequences_from(data)
    names = list(names) if names is not None else found_names
    if names is not None and len(names) != len(sequences):
        raise ValueError(f"{len(names)} names for {len(sequences)} sequences")
    names = names or [str(i) for i in range(start_index, start_index + len(sequences))]
    ids = []
    for i, (seq, name) in enumerate(zip(sequences, names, strict=True), start_index):
        base = tokenizer.encode_bases(seq, i, name)
        if base.size == 0:
            raise ValueError(f"{sequence_label(i, name)} is empty")
        ids.append(base)
    return TokenizedSequences(ids, [str(n) for n in names])


def _sequences_from(data: Any) -> tuple[list[str], list[str] | None]:
    if isinstance(data, str):
        return [data], None
    pd = sys.modules.get("pandas")  # a DataFrame means pandas is loaded already; never import it just to check
    if pd is not None and isinstance(data, pd.DataFrame):
        cols = {c.lower(): c for c in data.columns if isinstance(c, str)}
        if "sequence" not in cols:
            raise ValueError(f"the DataFrame has no 'sequence' column (columns: {list(data.columns)})")
        names = None
        for key in ("name", "id"):
            if key in cols:
                names = data[cols[key]].astype(str).tolist()
                break
        return data[cols["sequence"]].tolist(), names
    if pd is not None and isinstance(data, pd.Series):
        return data.tolist(), None
    if isinstance(data, (bytes, bytearray)):
        raise TypeError(f"expected str, got {type(data).__name__}: decode it first (data.decode())")
    if isinstance(data, Mapping):  # name -> sequence; iterating would embed the names
        names = [str(k) for k in data]
        return _sequences_from(list(data.values()))[0], names
    if isinstance(data, Iterable):
        seqs = list(data)
        for i, s in enumerate(seqs):
            if not isinstance(s, str):
                raise TypeError(f"sequence {i}: expected str, got {type(s).__name__}")
        return seqs, None
    raise TypeError(
        f"expected a str, a list of str, a dict of name to str or a pandas DataFrame, got {type(data).__name__}"
    )
