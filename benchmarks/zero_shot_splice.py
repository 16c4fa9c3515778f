"""Zero-shot variant effects: do the models' LLRs single out splice-site SNVs? Built from the shared genome and
annotation, inside the held-out region chr20:32,000,000-63,025,520 only.

Classes of positives (every alternative allele at each position):
- ``splice_dinucleotide``: the canonical donor +1/+2 (GT) and acceptor -2/-1 (AG) bases of annotated introns;
- ``exon_boundary``: the exonic base next to each of those splice sites (weaker, partly coding signal);
- ``near_tss``: bases within 50 bp of an annotated TSS.
Controls: intronic positions at least ``--min-distance`` bases from any exon of any transcript, in the same intron as
the positive where one qualifies (else the same gene), with the same reference base and the same two neighbouring
bases (the trinucleotide), and the nearest local predictability: the order-k Markov model's mean log-probability of
the bases of the +-64-base window with more than k bases before them (51 before the site to 64 after it, at
k = 12). That last match is what keeps "a predictable repeat scores a large LLR" from deciding the result; the report
shows the matched covariates and the AUROC that predictability alone reaches after matching.

Scores: -LLR as ``hyenadna vep`` computes it (equal-length windows), for the bundled model, a random-weights model of
the same shape, and the order-k Markov baseline on the same windows. AUROC with a bootstrap 95% interval.

    python benchmarks/zero_shot_splice.py                       # writes docs/zero_shot/ (VCF, JSON, README, ROC plot)
    python benchmarks/zero_shot_splice.py --positions 100 --out /tmp/zs   # smaller
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hyenadna.utils.io import atomic_path, atomic_write_text

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GENOME = SHARED / "data" / "genome" / "GRCh37_chr20.fa.gz"
ANNOTATION = SHARED / "data" / "annotation"
HELD_OUT = (32_000_000, 63_025_520)
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def transcripts(chrom: str = "chr20") -> list[dict]:
    """Each transcript with its exons as 0-based half-open intervals in transcript (5' to 3') order. The tables keep
    GTF row order: a transcript's exons are the consecutive exon rows from its 5' end to its 3' end."""
    import pandas as pd

    tr = pd.read_parquet(ANNOTATION / "transcripts.parquet")
    ex = pd.read_parquet(ANNOTATION / "exons.parquet")
    tr, ex = tr[tr._labels == chrom], ex[ex._labels == chrom]
    starts, ends, genes = ex._starts.to_numpy(), ex._ends.to_numpy(), ex.gene_name.astype(str).to_numpy()
    out, i = [], 0
    for s1, e1, strand, gene in zip(tr._starts, tr._ends, tr.Strand.astype(str), tr.gene_name.astype(str), strict=True):
        if genes[i] != gene:
            raise RuntimeError(f"exon rows out of step with transcripts at {gene} {s1}")
        j = i
        while (ends[j] if strand == "+" else starts[j]) != (e1 if strand == "+" else s1):
            j += 1
        exons = [(int(a) - 1, int(b)) for a, b in zip(starts[i : j + 1], ends[i : j + 1], strict=True)]
        out.append({"gene": gene, "strand": strand, "exons": exons})
        i = j + 1
    return out


def sites(genome: str, txs: list[dict]) -> dict[str, dict[int, dict]]:
    """Positive positions by class: {class: {0-based position: info}}, inside the held-out region, canonical
    GT-AG introns only; also every intron (for controls) and every exon (for distances)."""
    lo, hi = HELD_OUT
    donor, boundary, introns, exons = {}, {}, [], []
    for t in txs:
        ex = t["exons"]
        exons += ex
        for k in range(len(ex) - 1):
            if t["strand"] == "+":
                a, b = ex[k][1], ex[k + 1][0]  # the intron [a, b)
            else:
                a, b = ex[k + 1][1], ex[k][0]
            if not (lo + 1000 <= a < b <= hi - 1000) or b - a < 100:
                continue
            seq = genome[a:b]
            motif = (
                (seq[:2], seq[-2:])
                if t["strand"] == "+"
                else (seq[-2:].translate(COMPLEMENT)[::-1], seq[:2].translate(COMPLEMENT)[::-1])
            )
            if motif != ("GT", "AG"):
                continue
            intron = {"gene": t["gene"], "strand": t["strand"], "start": a, "end": b}
            introns.append(intron)
            # donor +1/+2 and acceptor -2/-1 in genome coordinates, and the exonic neighbour of each site; which one
            # a position is follows the transcript's direction
            five, three = ("donor", "acceptor") if t["strand"] == "+" else ("acceptor", "donor")
            for p in (a, a + 1):
                donor[p] = {**intron, "site": five}
            for p in (b - 2, b - 1):
                donor[p] = {**intron, "site": three}
            for p in (a - 1, b):
                boundary[p] = intron
    return {"splice_dinucleotide": donor, "exon_boundary": boundary}, introns, exons


def training_markov():
    """The order-k Markov baseline the pretraining run selected (``docs/pretraining/markov.json``), fitted on the
    training DNA: chr20 before the held-out region and chrX 0-70 Mb. Returns (model, its selected settings)."""
    from hyenadna.data.genome import Genome
    from hyenadna.training.markov import MarkovModel

    selected = json.loads((REPO / "docs" / "pretraining" / "markov.json").read_text())["selected"]
    train = Genome.from_fasta([GENOME, SHARED / "data" / "genome" / "GRCh37_chrX_0-70Mb.fa.gz"])
    markov = MarkovModel(selected["order"], selected["alpha"]).fit(
        [train.chromosomes["20"][: HELD_OUT[0]], train.chromosomes["X"]], selected["both_strands"]
    )
    return markov, selected


def vcf_positions(path: Path) -> set[int]:
    """The 0-based positions of a variants.vcf this script wrote (positives and controls)."""
    with open(path) as f:
        return {int(line.split("\t")[1]) - 1 for line in f if line.strip() and not line.startswith("#")}


def markov_site_stats(markov, tok, chrom: str, positions: list[int], flank: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """For each 0-based position: the Markov model's mean log P over the window of +-``flank`` bases around it (the
    bases with more than ``order`` bases before them in the window, as the first matching did), and its log P of the
    position's own base given the bases before it. NaN where the window holds anything but A/C/G/T. One pass over
    the windows gives both."""
    if not positions:
        return np.empty(0), np.empty(0)
    wins = np.stack([tok.encode_bases(chrom[p - flank : p + flank + 1]) for p in positions]).astype(np.int64)
    ok = ((wins >= 7) & (wins <= 10)).all(1)
    mean, site = np.full(len(positions), np.nan), np.full(len(positions), np.nan)
    if ok.any():
        lp = markov.log_probs(wins[ok])  # lp[:, t - 1]: log P of window base t, t >= 1
        mean[ok], site[ok] = lp[:, markov.order :].mean(1), lp[:, flank - 1]
    return mean, site


def write_markdown(report: dict, out: Path) -> None:
    """results.md: AUROC per class and scorer (with 95% bootstrap intervals), and the matched covariates."""
    results, fairness = report["results"], report["fairness"]
    scorers = [k for k in next(iter(results.values())) if isinstance(next(iter(results.values()))[k], dict)]
    lines = [
        "| class | SNVs (positives / controls) | " + " | ".join(scorers) + " |",
        "|---|---|" + "---|" * len(scorers),
    ]
    for cls, r in results.items():
        cells = [f"{r[n]['auroc']:.3f} [{r[n]['ci95'][0]:.3f}, {r[n]['ci95'][1]:.3f}]" for n in scorers]
        lines.append(f"| {cls.replace('_', ' ')} | {r['positives']} / {r['controls']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| class | pairs | same trinucleotide | control in the same intron / gene | local Markov log P, positives"
        f" / controls | GC within 50 bp, positives / controls | C/T in the {report.get('tract_length', 20)} bases"
        " before, positives / controls |"
        " Markov log P of the site's base, positives / controls |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cls, f in fairness.items():
        lines.append(
            f"| {cls.replace('_', ' ')} | {f['pairs']} | {f['same_trinucleotide']:.0%} | "
            f"{f['control_in_same_intron']:.0%} / {f.get('control_in_same_gene', float('nan')):.0%} | "
            f"{f['mean_local_markov_logp_positive']:.3f} / {f['mean_local_markov_logp_control']:.3f} | "
            f"{f['gc_positive']:.3f} / {f['gc_control']:.3f} | "
            f"{f['tract_positive']:.3f} / {f['tract_control']:.3f} | "
            f"{f.get('site_logp_positive', float('nan')):.3f} / {f.get('site_logp_control', float('nan')):.3f} |"
        )
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "docs" / "zero_shot"))
    ap.add_argument("--positions", type=int, default=400, help="positive positions sampled for the main class")
    ap.add_argument("--other-positions", type=int, default=150, help="... for each other class")
    ap.add_argument("--window", type=int, default=512, help="vep --window")
    ap.add_argument("--min-distance", type=int, default=1000, help="control distance from any exon")
    ap.add_argument("--models", nargs="+", default=["hyenadna-tiny-1k-d256-grch37"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--match-tract",
        action="store_true",
        help="also match the pyrimidine fraction of the --tract-length bases before each site (an acceptor's "
        "polypyrimidine tract, which the first matching left open: docs/zero_shot/README.md)",
    )
    ap.add_argument("--tract-length", type=int, default=20, help="bases before the site that the C/T fraction reads")
    ap.add_argument(
        "--exclude",
        type=Path,
        nargs="*",
        default=[],
        help="earlier runs' variants.vcf: their positions are neither drawn nor used as controls, so that a fresh "
        "draw tests a split found on them on new sites",
    )
    ap.add_argument(
        "--match-site",
        action="store_true",
        help="also match the Markov model's log P of the reference base at the site itself (how typical the base is "
        "of what precedes it), within 0.25 nats",
    )
    ap.add_argument(
        "--no-random-weights",
        action="store_true",
        help="leave out the random-weights model (it costs as much as the first model, at long windows minutes)",
    )
    args = ap.parse_args()
    t_start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(f"[{time.time() - t_start:6.0f} s] {m}", file=sys.stderr, flush=True)  # noqa: E731

    import pandas as pd
    import torch

    from hyenadna import CharacterTokenizer, HyenaDNALMHeadModel
    from hyenadna.data.readers import GenomeFasta
    from hyenadna.hub import resolve_weights
    from hyenadna.models.hyena_dna import load_model
    from hyenadna.vep import Variant, score_window_pairs, variant_windows

    fasta = GenomeFasta(GENOME, {"20"})
    chrom = fasta.fetch("20", 0, fasta.sizes["20"]).upper()
    txs = transcripts()
    positives, introns, exons = sites(chrom, txs)
    tss = pd.read_parquet(ANNOTATION / "tss.parquet")
    tss = tss[
        (tss._labels == "chr20") & (tss._starts - 1 >= HELD_OUT[0] + 1000) & (tss._starts - 1 < HELD_OUT[1] - 1000)
    ]
    positives["near_tss"] = {
        int(s) - 1 + d: {"gene": g, "tss": int(s) - 1}
        for s, g in zip(tss._starts, tss.gene_name, strict=True)
        for d in range(-50, 51)
    }
    in_exon = np.zeros(len(chrom), dtype=bool)
    for a, b in exons:
        in_exon[a:b] = True

    # local predictability: order-k Markov mean log P over +-64 bases, the same model as the baseline
    log("fitting the Markov baseline on the training DNA (chr20:0-32,000,000 and chrX, both strands)")
    markov, selected = training_markov()
    from hyenadna.tokenizer import CharacterTokenizer as Tok

    tok = Tok()

    def predictability(positions: list[int]) -> tuple[dict, dict]:
        mean, site = markov_site_stats(markov, tok, chrom, positions)
        return dict(zip(positions, mean, strict=True)), dict(zip(positions, site, strict=True))

    def gc(p: int) -> float:
        window = chrom[p - 50 : p + 51]
        return (window.count("G") + window.count("C")) / len(window)

    excluded = {p for vcf in args.exclude for p in vcf_positions(vcf)}
    rng = np.random.default_rng(args.seed)
    chosen: dict[str, list[int]] = {}
    for cls, table in positives.items():
        pos = sorted(
            p
            for p in table
            if chrom[p] in "ACGT" and chrom[p - 1] in "ACGT" and chrom[p + 1] in "ACGT" and p not in excluded
        )
        k = args.positions if cls == "splice_dinucleotide" else args.other_positions
        chosen[cls] = sorted(rng.choice(pos, size=min(k, len(pos)), replace=False).tolist())
    # control candidates: deep intronic positions, grouped by (intron, trinucleotide)
    log("choosing matched controls")
    by_intron: dict[tuple, list[int]] = {}
    for iv in introns:
        a, b = iv["start"] + args.min_distance, iv["end"] - args.min_distance
        if b - a < 50:
            continue
        cand = rng.choice(np.arange(a, b), size=min(800, b - a), replace=False)
        cand = [
            int(p)
            for p in cand
            if not in_exon[p - args.min_distance : p + args.min_distance].any() and int(p) not in excluded
        ]
        by_intron[(iv["gene"], iv["start"])] = cand
    gene_candidates: dict[str, list[int]] = {}
    for (gene, _), cand in by_intron.items():
        gene_candidates.setdefault(gene, []).extend(cand)
    all_candidates = [p for c in by_intron.values() for p in c]
    cand_pred, cand_site = predictability(all_candidates)
    cand_gc = {c: gc(c) for c in all_candidates}

    def tract(p: int) -> float:  # the C/T fraction of the bases a forward-reading model has just read
        window = chrom[p - args.tract_length : p]
        return (window.count("C") + window.count("T")) / len(window)

    cand_tract = {c: tract(c) for c in all_candidates}
    used: set[int] = set()
    pairs = []  # (class, positive, control, their predictabilities, pool, their GCs, their C/T fractions before,
    #           their site log Ps)
    for cls, pos_list in chosen.items():
        pred, site_lp = predictability(pos_list)
        for p in pos_list:
            if not np.isfinite(pred[p]):
                continue
            info = positives[cls][p]
            tri = chrom[p - 1 : p + 2]
            pools = []
            if "start" in info:
                pools.append(("intron", by_intron.get((info["gene"], info["start"]), [])))
            pools += [("gene", gene_candidates.get(info["gene"], [])), ("anywhere", all_candidates)]
            best, where = None, None
            for k, (name, pool) in enumerate(pools):  # the same intron, then the same gene, then anywhere held out
                ok = [c for c in pool if c not in used and chrom[c - 1 : c + 2] == tri and np.isfinite(cand_pred[c])]
                if not ok:
                    continue

                # distance in local predictability (nats/base), GC and, with --match-tract, the C/T fraction before
                # the site (fractions), with --match-site the site's own log P, each scaled by its tolerance
                def cost(c: int, at: tuple = (pred[p], gc(p), tract(p), site_lp[p])) -> float:
                    d = abs(cand_pred[c] - at[0]) / 0.02 + abs(cand_gc[c] - at[1]) / 0.04
                    d += abs(cand_tract[c] - at[2]) / 0.1 if args.match_tract else 0.0
                    return d + (abs(cand_site[c] - at[3]) / 0.25 if args.match_site else 0.0)

                c = min(ok, key=cost)
                if cost(c) <= 2 + args.match_tract + args.match_site or k == len(pools) - 1:  # within tolerance
                    best, where = c, name
                    break
            if best is not None:
                used.add(best)
                pairs.append(
                    (
                        cls,
                        p,
                        best,
                        pred[p],
                        cand_pred[best],
                        where,
                        gc(p),
                        cand_gc[best],
                        tract(p),
                        cand_tract[best],
                        site_lp[p],
                        cand_site[best],
                    )
                )
    log(f"{len(pairs)} matched positive/control positions")

    # every alternative allele at both positions of each pair, scored as vep scores them
    variants = []  # (class, label, position, alt, pair index)
    for k, (cls, p, c, *_rest) in enumerate(pairs):
        for label, q in ((1, p), (0, c)):
            for alt in "ACGT":
                if alt != chrom[q]:
                    variants.append((cls, label, q, alt, k))
    windows = []
    for _, _, q, alt, _ in variants:
        w = variant_windows(Variant(0, "20", q + 1, "", chrom[q], [alt]), alt, fasta, args.window)
        windows.append((w[0], w[1]))
    scores: dict[str, np.ndarray] = {}
    tokenizer = CharacterTokenizer()
    for name in [*args.models] + ([] if args.no_random_weights else ["random weights"]):
        t0 = time.time()
        if name == "random weights":
            torch.manual_seed(args.seed)
            model = HyenaDNALMHeadModel(load_model(resolve_weights(args.models[0])).config).eval()
            label = f"random weights ({args.models[0]} shape)"
        else:
            model, label = load_model(resolve_weights(name)), name
        llr = []
        for i in range(0, len(windows), 256):
            llr += [
                r["llr"]
                for r in score_window_pairs(model, tokenizer, windows[i : i + 256], args.batch_size, embeddings=False)
            ]
        scores[label] = -np.array(llr)
        log(f"{label}: {len(llr)} variants in {time.time() - t0:.0f} s")
    # the Markov model's LLR involves only the order + 1 positions from the SNV on, so 512-base windows give the value
    # any longer one would, and do not reach the N runs a 4,096-base window can (which it cannot score)
    markov_windows = windows
    if args.window > 512:
        markov_windows = [
            variant_windows(Variant(0, "20", q + 1, "", chrom[q], [alt]), alt, fasta, 512)[:2]
            for _, _, q, alt, _ in variants
        ]
    ref_w = np.stack([tok.encode_bases(r) for r, _ in markov_windows]).astype(np.int64)
    alt_w = np.stack([tok.encode_bases(a) for _, a in markov_windows]).astype(np.int64)
    mk = markov.log_probs(alt_w).sum(1) - markov.log_probs(ref_w).sum(1)
    scores[f"order-{selected['order']} Markov"] = -mk
    # predictability alone, after matching: the local mean Markov log P (a repeat scores high); ~0.5 if the match works
    scores["predictability only (control)"] = np.array([pairs[v[4]][3] if v[1] else pairs[v[4]][4] for v in variants])

    from sklearn.metrics import roc_auc_score, roc_curve

    labels = np.array([v[1] for v in variants])
    classes = np.array([v[0] for v in variants])
    pair_of = np.array([v[4] for v in variants])
    # the splice class split by the positive's site and strand (its control goes with it): a signal learnt on one
    # strand or at one site shows here and can cancel in the whole class
    pair_info = [positives[cls].get(p, {}) for cls, p, *_rest in pairs]
    site = np.array([pair_info[v[4]].get("site", "") for v in variants])
    strand = np.array([pair_info[v[4]].get("strand", "") for v in variants])
    groups = {cls: m for cls in chosen if (m := classes == cls).any()}  # --other-positions 0 leaves some empty
    for name, m in (
        ("splice_dinucleotide, donor", site == "donor"),
        ("splice_dinucleotide, acceptor", site == "acceptor"),
        ("splice_dinucleotide, + strand intron", (classes == "splice_dinucleotide") & (strand == "+")),
        ("splice_dinucleotide, - strand intron", (classes == "splice_dinucleotide") & (strand == "-")),
    ):
        if m.any():
            groups[name] = m
    results = {}
    for cls, m in groups.items():
        results[cls] = {"positives": int((labels[m] == 1).sum()), "controls": int((labels[m] == 0).sum())}
        uniq = np.unique(pair_of[m])
        for name, s in scores.items():
            auc = roc_auc_score(labels[m], s[m])
            boot = []
            for _ in range(300):  # resample matched pairs, keeping each pair's alleles together
                pick = np.isin(pair_of, rng.choice(uniq, size=len(uniq), replace=True)) & m
                boot.append(roc_auc_score(labels[pick], s[pick]))
            results[cls][name] = {
                "auroc": auc,
                "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            }
    fairness = {}
    for cls in chosen:
        rows = [r for r in pairs if r[0] == cls]
        if not rows:
            continue
        fairness[cls] = {
            "pairs": len(rows),
            "same_trinucleotide": 1.0,
            "control_in_same_intron": float(np.mean([r[5] == "intron" for r in rows])) if rows else None,
            "mean_local_markov_logp_positive": float(np.mean([r[3] for r in rows])),
            "mean_local_markov_logp_control": float(np.mean([r[4] for r in rows])),
            "gc_positive": float(np.mean([r[6] for r in rows])),
            "gc_control": float(np.mean([r[7] for r in rows])),
            "tract_positive": float(np.mean([r[8] for r in rows])),
            "tract_control": float(np.mean([r[9] for r in rows])),
            "site_logp_positive": float(np.mean([r[10] for r in rows])),
            "site_logp_control": float(np.mean([r[11] for r in rows])),
            "control_in_same_gene": float(np.mean([r[5] in ("intron", "gene") for r in rows])) if rows else None,
        }
    report = {
        "window": args.window,
        "min_distance": args.min_distance,
        "seed": args.seed,
        "match_tract": args.match_tract,
        "tract_length": args.tract_length,
        "match_site": args.match_site,
        "results": results,
        "fairness": fairness,
        "seconds": time.time() - t_start,
        "command": " ".join(sys.argv),
    }
    atomic_write_text(out / "results.json", json.dumps(report, indent=1) + "\n")
    write_markdown(report, out)
    # every variant's score, so that another split or scorer comparison needs no re-scoring
    table = pd.DataFrame(
        {
            "pos": [v[2] + 1 for v in variants],
            "ref": [chrom[v[2]] for v in variants],
            "alt": [v[3] for v in variants],
            "class": classes,
            "label": labels,
            "pair": pair_of,
            "site": site,
            "intron_strand": strand,
            **{f"minus_llr {name}": s for name, s in scores.items()},
        }
    )
    with atomic_path(out / "scores.csv.gz") as tmp:
        table.to_csv(tmp, index=False, compression="gzip", float_format="%.6g")
    with atomic_path(out / "variants.vcf") as tmp, open(tmp, "w") as f:
        f.write("##fileformat=VCFv4.2\n##reference=GRCh37 chr20 (held-out region 32,000,000-63,025,520)\n")
        f.write(
            '##INFO=<ID=CLASS,Number=1,Type=String,Description="positive class (controls: the class they match)">\n'
        )
        f.write('##INFO=<ID=LABEL,Number=1,Type=Integer,Description="1 positive, 0 matched control">\n')
        f.write('##INFO=<ID=PAIR,Number=1,Type=Integer,Description="matched pair id">\n')
        f.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for cls, label, q, alt, k in sorted(variants, key=lambda v: (v[2], v[3])):
            f.write(f"20\t{q + 1}\t.\t{chrom[q]}\t{alt}\t.\t.\tCLASS={cls};LABEL={label};PAIR={k}\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [cls for cls in chosen if cls in results]
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4.6), constrained_layout=True)
    for ax, cls in zip(np.atleast_1d(axes), shown, strict=True):
        m = classes == cls
        for name, s in scores.items():
            fpr, tpr, _ = roc_curve(labels[m], s[m])
            ls = ":" if "predictability" in name else "-"
            ax.plot(fpr, tpr, ls, label=f"{name}: {results[cls][name]['auroc']:.3f}")
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        ax.set_title(f"{cls.replace('_', ' ')} ({results[cls]['positives']} SNVs vs matched controls)", fontsize=10)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=7, loc="lower right", title="AUROC of -LLR", title_fontsize=7)
    fig.suptitle(f"Zero-shot SNV effects, held-out chr20, {args.window}-base windows", fontsize=11)
    with atomic_path(out / "roc.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    print(
        json.dumps(
            {c: {n: round(v["auroc"], 3) for n, v in r.items() if isinstance(v, dict)} for c, r in results.items()},
            indent=1,
        )
    )
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
