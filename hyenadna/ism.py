"""In-silico mutagenesis: every alternative base at every position of a region, scored two ways.

- Under the language model (``in_silico_mutagenesis``): each change scored exactly as ``vep`` scores a variant, the
  log-likelihood ratio of two equal-length windows that hold the change at the same offset
  (``vep.variant_windows`` and ``vep.score_window_pairs``); optionally the deletion too.
- Under a fine-tuned classifier or regressor (``classifier_mutagenesis``): the change of its output when the
  sequence it reads carries the change, through the same data path as its ``predict`` (which bases drive a
  prediction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hyenadna.data.readers import GenomeFasta, reverse_complement
from hyenadna.data.regions import Interval, canonical_chrom
from hyenadna.utils.io import save_figure
from hyenadna.vep import Variant, check_window, score_window_pairs, variant_windows

if TYPE_CHECKING:
    from hyenadna.finetune import HyenaDNAFineTuningModel

BASES = "ACGT"
# what an IsmResult's numbers are, by ``measure``: the axis label of its heatmap
MEASURES = {
    "llr": "LLR (alt vs ref, nats)",
    "delta_log_odds": "change of the class's log-odds",
    "delta_value": "change of the predicted value",
    "delta_log_odds_first_order": "change of the class's log-odds\n(first-order estimate)",
    "delta_value_first_order": "change of the predicted value\n(first-order estimate)",
}
METHODS = ("exact", "gradient")


@dataclass
class IsmResult:
    """``effect[i, b]``: the effect of base ``BASES[b]`` at ``positions[i]`` (0-based); NaN where b is the reference
    base (or the reference is N). ``measure`` says what it is (``MEASURES``): the language model's LLR, or the change
    of a classifier's log-odds for ``target`` (a regressor's value). ``deletion[i]``: the LLR of deleting that base
    (NaN unless asked for). ``window``: the language model's window; for a classifier, the length of the sequence it
    read."""

    chrom: str
    positions: np.ndarray
    reference: str
    effect: np.ndarray
    deletion: np.ndarray
    window: int
    both_strands: bool
    measure: str = "llr"
    target: str = ""

    @property
    def llr(self) -> np.ndarray:
        if self.measure != "llr":
            raise AttributeError(f"this ISM measured {self.measure}, not an LLR: read .effect")
        return self.effect

    @property
    def importance(self) -> np.ndarray:
        """Per position: minus the mean effect of its three substitutions (high: the model objects to changing it,
        or, for a classifier, the base supports the target class); NaN where nothing was scored (an N)."""
        scored = np.isfinite(self.effect)
        total = np.where(scored, self.effect, 0.0).sum(axis=1)
        count = scored.sum(axis=1)
        return np.divide(-total, count, out=np.full(len(count), np.nan), where=count > 0)

    def rows(self) -> list[dict]:
        """One row per (position, alternative): chrom, pos (1-based, as in a VCF), ref, alt and the effect, named by
        ``measure`` ("llr" for the language model)."""
        out = []
        for i, p in enumerate(self.positions):
            ref = self.reference[i]
            row = {"chrom": self.chrom, "pos": int(p) + 1, "ref": ref}
            for b, alt in enumerate(BASES):
                if alt != ref and not np.isnan(self.effect[i, b]):
                    out.append({**row, "alt": alt, self.measure: self.effect[i, b]})
            if not np.isnan(self.deletion[i]):
                out.append({**row, "alt": "-", self.measure: self.deletion[i]})
        return out

    @classmethod
    def load(cls, path: str | Path) -> IsmResult:
        """Read back what ``save_npz`` wrote."""
        with np.load(path, allow_pickle=False) as z:
            measure = str(z["measure"]) if "measure" in z else "llr"
            return cls(
                str(z["chrom"]),
                z["positions"],
                "".join(z["reference"].tolist()),
                z[measure],
                z["deletion"],
                int(z["window"]),
                bool(z["both_strands"]),
                measure,
                str(z["target"]) if "target" in z else "",
            )

    def save_npz(self, path: str | Path) -> None:
        """The arrays, the effect under its measure's name ("llr" for the language model)."""
        from hyenadna.utils.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                chrom=np.array(self.chrom),
                positions=self.positions,
                reference=np.array(list(self.reference)),
                bases=np.array(list(BASES)),
                deletion=self.deletion,
                importance=self.importance,
                window=np.array(self.window),
                both_strands=np.array(self.both_strands),
                measure=np.array(self.measure),
                target=np.array(self.target),
                **{self.measure: self.effect},
            )


def in_silico_mutagenesis(
    model,
    tokenizer,
    genome: str | Path | GenomeFasta,
    region: Interval,
    chrom_name: str | None = None,
    window: int = 1024,
    batch_size: int = 8,
    both_strands: bool = False,
    deletions: bool = False,
    positions_per_batch: int = 32,
    progress: Callable[[int], None] | None = None,
) -> IsmResult:
    """ISM over ``region`` (0-based, half-open) of the FASTA ``genome`` (a genome, or any FASTA whose record names
    the region's chromosome; or one already opened). ``window`` bases of context around each change, as in
    ``vep --window``."""
    check_window(model, tokenizer, window)
    fasta = genome if isinstance(genome, GenomeFasta) else GenomeFasta(genome, {region.chrom})
    size = fasta.sizes.get(canonical_chrom(region.chrom))
    if size is None:
        raise ValueError(f"{region.chrom!r} is not a record of {fasta.path} (its records: {fasta.record_names()})")
    if region.end > size or region.start >= region.end:
        raise ValueError(f"region {region} lies outside {region.chrom} (length {size:,})")
    reference = fasta.fetch(region.chrom, region.start, region.end).upper()
    n = len(reference)
    llr = np.full((n, 4), np.nan)
    deletion = np.full(n, np.nan)
    for lo in range(0, n, positions_per_batch):
        jobs: list[tuple[int, int, tuple[str, str, int]]] = []  # (position index, column or -1 for deletion, windows)
        for i in range(lo, min(n, lo + positions_per_batch)):
            pos = region.start + i  # 0-based
            ref = reference[i]
            if ref not in BASES:
                continue
            for b, alt in enumerate(BASES):
                if alt != ref:
                    w = variant_windows(Variant(0, region.chrom, pos + 1, "", ref, [alt]), alt, fasta, window)
                    if not isinstance(w, str):
                        jobs.append((i, b, w))
            if deletions and pos > 0:  # VCF style: the base before is the anchor
                anchor = fasta.fetch(region.chrom, pos - 1, pos).upper()
                v = Variant(0, region.chrom, pos, "", anchor + ref, [anchor])
                w = variant_windows(v, anchor, fasta, window)
                if not isinstance(w, str):
                    jobs.append((i, -1, w))
        effects = score_window_pairs(
            model, tokenizer, [(r, a) for _, _, (r, a, _) in jobs], batch_size, both_strands, embeddings=False
        )
        for (i, b, _), effect in zip(jobs, effects, strict=True):
            if b < 0:
                deletion[i] = effect["llr"]
            else:
                llr[i, b] = effect["llr"]
        if progress is not None:
            progress(min(n, lo + positions_per_batch) - lo)
    positions = np.arange(region.start, region.end, dtype=np.int64)
    return IsmResult(chrom_name or region.chrom, positions, reference, llr, deletion, window, both_strands)


def classifier_mutagenesis(
    model: HyenaDNAFineTuningModel,
    sequence: str,
    target: int | None = None,
    rc_average: bool = False,
    chrom: str = "sequence",
    start: int = 0,
    method: str = "exact",
    strand: str = "+",
    positions_per_batch: int = 64,
    progress: Callable[[int], None] | None = None,
) -> IsmResult:
    """Every substitution at every position of ``sequence``, scored by how it changes a fine-tuned model's output for
    the whole sequence (``model.get_outputs``, its ``predict`` path): a classifier's log-odds of class ``target``,
    log p - log(1 - p) (default: the class it predicts for ``sequence``, so the map explains that prediction), or a
    regressor's output ``target`` (default 0). ``rc_average`` as in ``predict``. Positions are reported from
    ``start`` on ``chrom``: a genomic region's coordinates. Bases other than A, C, G and T are left unmutated.

    ``method``: "exact" runs the model on each of the 3 x length mutated sequences; "gradient" estimates every
    change from one forward and backward pass, to first order: the score's gradient at a position's embedding times
    the difference of the two bases' embeddings (for sequences whose exact map costs too much; it ranks changes only
    roughly like the exact map, README "Which bases drive a prediction").

    ``strand="-"``: the model reads the reverse complement of ``sequence`` (a gene on the minus strand, for a model
    trained on gene-strand windows), and the map is reported on ``sequence`` as given: its positions, its reference
    bases, its alleles."""
    from hyenadna.finetune import target_score

    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {METHODS}")
    if strand not in ("+", "-"):
        raise ValueError(f"strand={strand!r}: '+' (as given) or '-' (its reverse complement)")
    given = sequence.upper()
    seq = reverse_complement(given) if strand == "-" else given
    n = len(seq)
    room = model.max_bases  # the framing tokens share the context
    if n > room:
        raise ValueError(
            f"the sequence has {n:,} bases and the model reads {room:,} beside its framing tokens: bases past that "
            "would be cut off before the model sees them; give a region of at most that length"
        )
    classification = model.head_type == "classification"
    reference_output = model.get_outputs([seq], rc_average)
    if target is None:
        target = int(reference_output[0].argmax()) if classification else 0
    model.check_target(target)

    def score(outputs):
        return target_score(outputs, target, classification)

    if method == "gradient":
        effect = _first_order_effects(model, seq, score, rc_average)
        if progress is not None:
            progress(n)
    else:
        base = float(score(reference_output)[0])
        effect = np.full((n, 4), np.nan)
        for lo in range(0, n, positions_per_batch):
            hi = min(n, lo + positions_per_batch)
            jobs = [(i, b) for i in range(lo, hi) if seq[i] in BASES for b in range(4) if BASES[b] != seq[i]]
            if jobs:
                mutants = [seq[:i] + BASES[b] + seq[i + 1 :] for i, b in jobs]
                for (i, b), value in zip(jobs, score(model.get_outputs(mutants, rc_average)).tolist(), strict=True):
                    effect[i, b] = value - base
            if progress is not None:
                progress(hi - lo)
    if classification:
        names = model.label_names or []
        label = f"class {names[target] if target < len(names) else target}"
    else:
        label = f"output {target}"
    if strand == "-":  # back onto the sequence as given: positions reversed, each base its complement (ACGT -> TGCA)
        effect = effect[::-1, ::-1].copy()
        label += ", read on the - strand"
    measure = "delta_log_odds" if classification else "delta_value"
    return IsmResult(
        chrom,
        np.arange(start, start + n, dtype=np.int64),
        given,
        effect,
        np.full(n, np.nan),
        n,
        rc_average,
        measure if method == "exact" else f"{measure}_first_order",
        label,
    )


def _first_order_effects(model: HyenaDNAFineTuningModel, seq: str, score: Callable, rc_average: bool) -> np.ndarray:
    """effect[i, b] ~ (E[b] - E[ref_i]) . d score / d embedding_i, summed over both strands with ``rc_average`` (a
    change at i is a change at n-1-i of the reverse complement, to the complementary base)."""
    import torch

    from hyenadna.utils.precision import autocast

    tok = model.tokenizer
    ids = model.process_data([seq]).ids[0]
    strands = [False, True] if rc_average else [False]
    tokens = torch.as_tensor(np.stack([model._framed(ids, rc) for rc in strands]).astype(np.int64), device=model.device)
    embedding = model.network.backbone.embeddings
    seen = {}

    def watch(module, args, out):
        seen["out"] = out.requires_grad_() if not out.requires_grad else out  # a frozen backbone's too

    was_training = model.network.training
    model.network.eval()
    hook = embedding.register_forward_hook(watch)
    try:
        with torch.enable_grad(), autocast(model.device, model.config.precision):
            logits = model.network(tokens, torch.ones_like(tokens, dtype=torch.bool))
            total = score(logits.float().mean(dim=0, keepdim=True)).sum()
        # the gradient at the embeddings only: the parameters' .grad, which a caller may be accumulating, stay as
        # they are
        (grad,) = torch.autograd.grad(total, seen["out"])
    finally:
        hook.remove()
        model.network.train(was_training)
    offset, n = len(tok.prefix), len(seq)
    grads = grad[:, offset : offset + n].double()  # (strands, n, D)
    table = embedding.word_embeddings.weight.detach().double()[
        torch.as_tensor(tok.encode_bases(BASES), dtype=torch.long)
    ]
    along = grads @ table.T.to(grads.device)  # (strands, n, 4): the gradient along each base's embedding
    total = along[0]
    if rc_average:
        total = total + along[1].flip(0).flip(1)  # position n-1-i, complement: A C G T -> T G C A
    effect = total.cpu().numpy()
    refs = np.array([BASES.find(c) for c in seq])
    known = refs >= 0
    effect = effect - np.where(known, effect[np.arange(n), np.maximum(refs, 0)], np.nan)[:, None]
    effect[np.flatnonzero(known), refs[known]] = np.nan
    return effect


def modisco_arrays(results: list[IsmResult], strands: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-hot sequences and hypothetical contributions of equal-length maps, (N, 4, L) over A, C, G, T: the layout
    TF-MoDISco reads (``modisco motifs -s ohe.npz -a attr.npz``). The hypothetical contribution of base b at
    position i is the effect of putting b there (0 for the reference base) less the mean over the four bases, so the
    reference base's is 3/4 of the position's importance (the mean counts its 0); a position whose reference is not
    A/C/G/T gets zeros. A map whose ``strands`` entry is '-' is turned to the strand the model read (reverse
    complement), so that motifs come out in the orientation it saw them."""
    lengths = sorted({len(r.reference) for r in results})
    if len(lengths) != 1:
        raise ValueError(f"TF-MoDISco needs maps of one length; these have {', '.join(map(str, lengths))} bases")
    ohe = np.zeros((len(results), 4, lengths[0]), dtype=np.float32)
    hyp = np.zeros_like(ohe)
    for k, result in enumerate(results):
        refs = np.array([BASES.find(c) for c in result.reference])
        known = refs >= 0
        full = np.where(np.isnan(result.effect), 0.0, result.effect)
        centred = np.where(known[:, None], full - full.mean(axis=1, keepdims=True), 0.0)
        onehot = np.zeros_like(centred)
        onehot[np.flatnonzero(known), refs[known]] = 1.0
        if strands is not None and strands[k] == "-":  # positions reversed, A C G T -> T G C A
            centred, onehot = centred[::-1, ::-1], onehot[::-1, ::-1]
        ohe[k], hyp[k] = onehot.T, centred.T
    return ohe, hyp


def save_modisco(results: list[IsmResult], directory: str | Path, strands: list[str] | None = None) -> Path:
    """``ohe.npz`` and ``attr.npz`` (``modisco_arrays``, each as ``arr_0``) in ``directory``, written atomically."""
    from hyenadna.utils.io import atomic_path

    directory = Path(directory)
    for name, array in zip(("ohe.npz", "attr.npz"), modisco_arrays(results, strands), strict=True):
        with atomic_path(directory / name) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, array)
    return directory


def plot_ism(result: IsmResult, path: str | Path, title: str = "", marks: dict[int, str] | None = None) -> None:
    """A position x base heatmap of the effects (LLRs, or a classifier's; diverging, centred on 0) above the
    per-position importance track.
    ``marks``: {1-based position: label} drawn as vertical lines (e.g. an annotated splice site)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.positions)
    width = min(24.0, max(8.0, n * 0.06))
    fig, (ax_map, ax_imp) = plt.subplots(
        2, 1, figsize=(width, 4.6), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}, constrained_layout=True
    )
    finite = np.abs(result.effect[np.isfinite(result.effect)])
    limit = float(np.percentile(finite, 99)) if finite.size else 1.0
    extent = (result.positions[0] + 0.5, result.positions[-1] + 1.5, 3.5, -0.5)  # 1-based position on x
    image = ax_map.imshow(
        result.effect.T, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit, interpolation="nearest", extent=extent
    )
    ax_map.set_yticks(range(4), list(BASES))
    ax_map.set_ylabel("alternative base")
    for i, ref in enumerate(result.reference):  # mark the reference base of each column
        if ref in BASES and n <= 400:
            ax_map.plot(result.positions[i] + 1, BASES.index(ref), marker=".", color="0.35", markersize=2.5)
    fig.colorbar(image, ax=ax_map, label=MEASURES[result.measure], pad=0.01)
    importance = result.importance
    colors = np.where(importance >= 0, "C3", "C0")
    ax_imp.bar(result.positions + 1, importance, width=1.0, color=colors)
    ax_imp.axhline(0, color="k", lw=0.6)
    ax_imp.set_ylabel("-mean LLR" if result.measure == "llr" else "-mean effect")
    ax_imp.set_xlabel(f"{result.chrom} position (1-based)")
    if n <= 120:  # the bases themselves, where they are legible; positions on the top axis
        ax_imp.set_xticks(result.positions + 1, list(result.reference), fontsize=6)
        ax_imp.set_xlabel(f"reference base ({result.chrom}, 1-based positions above)")
        top = ax_map.secondary_xaxis("top")
        step = 10 if n > 30 else 5
        ticks = [p + 1 for p in result.positions if (p + 1) % step == 0]
        top.set_xticks(ticks, [f"{t:,}" for t in ticks], fontsize=7)
    for position, label in (marks or {}).items():
        for ax in (ax_map, ax_imp):
            ax.axvline(position, color="k", lw=0.8, ls="--")
        ax_imp.annotate(label, (position, 1.0), xycoords=("data", "axes fraction"), fontsize=7, ha="left", va="top")
    strands = "both strands" if result.both_strands else "forward strand"
    if result.measure == "llr":
        default = f"In-silico mutagenesis, {result.window:,}-base windows, {strands}"
    else:
        default = f"In-silico mutagenesis of a fine-tuned model's prediction ({result.target}), {strands}"
    ax_map.set_title(title or default)
    save_figure(fig, path, dpi=130)
