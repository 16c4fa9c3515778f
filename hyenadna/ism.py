"""In-silico mutagenesis: every alternative base (and, optionally, the deletion) at every position of a region,
each scored exactly as ``vep`` scores a variant: the log-likelihood ratio of two equal-length windows that hold the
change at the same offset (``vep.variant_windows`` and ``vep.score_window_pairs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hyenadna.data.readers import GenomeFasta
from hyenadna.data.regions import Interval, canonical_chrom
from hyenadna.utils.io import save_png
from hyenadna.vep import Variant, score_window_pairs, variant_windows

BASES = "ACGT"


@dataclass
class IsmResult:
    """``llr[i, b]``: the LLR of base ``BASES[b]`` at ``positions[i]`` (0-based); NaN where b is the reference base
    (or the reference is N). ``deletion[i]``: the LLR of deleting that base (NaN unless asked for)."""

    chrom: str
    positions: np.ndarray
    reference: str
    llr: np.ndarray
    deletion: np.ndarray
    window: int
    both_strands: bool

    @property
    def importance(self) -> np.ndarray:
        """Per position: minus the mean LLR of its three substitutions (high: the model objects to changing it)."""
        with np.errstate(invalid="ignore"):
            return -np.nanmean(np.where(np.isnan(self.llr), np.nan, self.llr), axis=1)

    def rows(self) -> list[dict]:
        """One row per (position, alternative): chrom, pos (1-based, as in a VCF), ref, alt, llr."""
        out = []
        for i, p in enumerate(self.positions):
            ref = self.reference[i]
            for b, alt in enumerate(BASES):
                if alt != ref and not np.isnan(self.llr[i, b]):
                    out.append({"chrom": self.chrom, "pos": int(p) + 1, "ref": ref, "alt": alt, "llr": self.llr[i, b]})
            if not np.isnan(self.deletion[i]):
                out.append({"chrom": self.chrom, "pos": int(p) + 1, "ref": ref, "alt": "-", "llr": self.deletion[i]})
        return out

    @classmethod
    def load(cls, path: str | Path) -> IsmResult:
        """Read back what ``save_npz`` wrote."""
        with np.load(path, allow_pickle=False) as z:
            return cls(
                str(z["chrom"]),
                z["positions"],
                "".join(z["reference"].tolist()),
                z["llr"],
                z["deletion"],
                int(z["window"]),
                bool(z["both_strands"]),
            )

    def save_npz(self, path: str | Path) -> None:
        from hyenadna.utils.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                chrom=np.array(self.chrom),
                positions=self.positions,
                reference=np.array(list(self.reference)),
                bases=np.array(list(BASES)),
                llr=self.llr,
                deletion=self.deletion,
                importance=self.importance,
                window=np.array(self.window),
                both_strands=np.array(self.both_strands),
            )


def in_silico_mutagenesis(
    model,
    tokenizer,
    genome: str | Path,
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
    the region's chromosome). ``window`` bases of context around each change, as in ``vep --window``."""
    fasta = GenomeFasta(genome, {region.chrom})
    size = fasta.sizes.get(canonical_chrom(region.chrom))
    if size is None:
        raise ValueError(f"{region.chrom!r} is not a record of {genome} (it has {', '.join(fasta.sizes)})")
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


def plot_ism(result: IsmResult, path: str | Path, title: str = "", marks: dict[int, str] | None = None) -> None:
    """A position x base heatmap of LLRs (diverging, centred on 0) above the per-position importance track.
    ``marks``: {1-based position: label} drawn as vertical lines (e.g. an annotated splice site)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.positions)
    width = min(24.0, max(8.0, n * 0.06))
    fig, (ax_map, ax_imp) = plt.subplots(
        2, 1, figsize=(width, 4.6), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}, constrained_layout=True
    )
    finite = np.abs(result.llr[np.isfinite(result.llr)])
    limit = float(np.percentile(finite, 99)) if finite.size else 1.0
    extent = (result.positions[0] + 0.5, result.positions[-1] + 1.5, 3.5, -0.5)  # 1-based position on x
    image = ax_map.imshow(
        result.llr.T, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit, interpolation="nearest", extent=extent
    )
    ax_map.set_yticks(range(4), list(BASES))
    ax_map.set_ylabel("alternative base")
    for i, ref in enumerate(result.reference):  # mark the reference base of each column
        if ref in BASES and n <= 400:
            ax_map.plot(result.positions[i] + 1, BASES.index(ref), marker=".", color="0.35", markersize=2.5)
    fig.colorbar(image, ax=ax_map, label="LLR (alt vs ref, nats)", pad=0.01)
    importance = result.importance
    colors = np.where(importance >= 0, "C3", "C0")
    ax_imp.bar(result.positions + 1, importance, width=1.0, color=colors)
    ax_imp.axhline(0, color="k", lw=0.6)
    ax_imp.set_ylabel("-mean LLR")
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
    ax_map.set_title(title or f"In-silico mutagenesis, {result.window:,}-base windows, {strands}")
    save_png(fig, path, dpi=130)
