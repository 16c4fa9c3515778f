"""Turn a finished pretraining run into a shippable model folder with a model card."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import torch

from hyenadna.models.hyena_dna import load_model
from hyenadna.utils.io import atomic_write_text

MAX_BYTES = 10 * 1024 * 1024


def export_run(run_dir: str | Path, dest: str | Path, name: str, evaluation: dict | None = None) -> Path:
    """Copy ``run_dir/model`` to ``dest`` and write its model card from the run's own records."""
    run_dir, dest = Path(run_dir), Path(dest)
    model = load_model(run_dir / "model")
    size = (run_dir / "model" / "model.safetensors").stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{run_dir}/model is {size / 1e6:.1f} MB; a bundled model must be at most 10 MB")
    cfg = json.loads((run_dir / "pretrain_config.json").read_text())
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    evals = [r for r in rows if r["kind"] == "eval"]
    train_rows = [r for r in rows if r["kind"] == "train"]
    markov = json.loads((run_dir / "markov.json").read_text())
    last = evals[-1]
    tps = sorted(r["tokens_per_s"] for r in train_rows)
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(run_dir / "model" / f, dest / f)
    from hyenadna.training.pretrain import _plot

    _plot(run_dir / "metrics.jsonl", dest / "loss_curve.png", markov["held_out"]["nll"])
    regions_path = run_dir / "regions.json"
    if regions_path.exists():
        regions = json.loads(regions_path.read_text())
    else:  # runs from before regions.json existed: recompute from the run's own config
        from hyenadna.data.genome import Genome
        from hyenadna.training.pretrain import PretrainConfig, training_intervals

        train_iv, eval_iv = training_intervals(PretrainConfig(**cfg), Genome.from_fasta(cfg["fasta"]))
        regions = {"train": [str(x) for x in train_iv], "evaluation": [str(x) for x in eval_iv]}
    c = model.config
    held_out = evaluation["model_nll"] if evaluation else {k: last[k] for k in ("nll", "bits_per_base", "perplexity")}
    card = f"""# {name}

A HyenaDNA language model pretrained by the hyenadna project on real human DNA, on CPU, and shipped inside the
package as its default model (`HyenaDNA()` with no arguments). It is **not** one of the published HazyResearch
checkpoints: it saw far less data ({last["tokens_seen"] / 1e6:.0f}M tokens against billions).

| | |
|---|---|
| architecture | HyenaDNA, d_model {c.d_model}, {c.n_layer} layers, d_inner {c.d_inner}, l_max {c.l_max} (the shape of hyenadna-tiny-1k-seqlen-d256) |
| parameters | {model.num_parameters():,} |
| context | {c.l_max} tokens (windows of {cfg["seq_len"]} bases in training), one token per nucleotide, no special tokens |
| data | GRCh37 chr20 (63.0 Mb) and chrX 0-70 Mb (`shared/data/genome`) |
| training regions | {", ".join(regions["train"])} (0-based, half-open) |
| held-out region | {", ".join(regions["evaluation"])}: never trained on; validation and every benchmark test set come from it |
| objective | next-token cross-entropy; windows with more than {cfg["max_n_fraction"]:.0%} N skipped; reverse-complement augmentation {"on" if cfg["reverse_complement"] else "off"} |
| optimiser | AdamW lr {cfg["lr"]}, betas (0.9, 0.999), weight decay {cfg["weight_decay"]} (none on the implicit filter, biases, norms), cosine schedule with {cfg["warmup_steps"]} warm-up steps to 0.1 x lr, grad clip {cfg["grad_clip"]}, batch {cfg["batch_size"]} x {cfg["seq_len"]} |
| steps | {last["step"]:,} |
| tokens seen | {last["tokens_seen"]:,} |
| wall time | {last["wall_time"] / 3600:.2f} h |
| training throughput | median {tps[len(tps) // 2]:,.0f} tokens/s |
| hardware | {platform.machine()} CPU, 2 cores, torch {torch.__version__}, no GPU |
| seed | {cfg["seed"]} |

## Held-out evaluation

{cfg["eval_windows"]} N-free windows of {cfg["seq_len"] + 1} bases from {", ".join(regions["evaluation"])}; every model is scored on the
same {cfg["seq_len"]} next-base targets per window.

| model | nats/base | bits/base | perplexity |
|---|---|---|---|
| this model | {held_out["nll"]:.4f} | {held_out["bits_per_base"]:.4f} | {held_out["perplexity"]:.3f} |
| best order-k Markov baseline (order {markov["selected"]["order"]}, add-{markov["selected"]["alpha"]} smoothing, {"both strands" if markov["selected"]["both_strands"] else "forward strand"}; chosen on the last 10% of each training interval, refit on all training DNA) | {markov["held_out"]["nll"]:.4f} | {markov["held_out"]["bits_per_base"]:.4f} | {markov["held_out"]["perplexity"]:.3f} |

Reproduce: `hyenadna evaluate --fasta ../shared/data/genome/GRCh37_chr20.fa.gz ../shared/data/genome/GRCh37_chrX_0-70Mb.fa.gz`
(the bundled model is the default `--model`).

![loss curve](loss_curve.png)

## Use

```python
from hyenadna import HyenaDNA

model = HyenaDNA()  # this model
emb = model.get_embeddings(model.process_data("ACGT" * 300), pooling="mean")
```

## Licence

Apache-2.0 (the weights and the code). The training sequence is the public GRCh37 reference assembly, as packaged by
Debian (vt-examples, MIT; smalt-examples, GPL-3 packaging).

## Limits

Trained on two chromosomes of one reference genome, for {last["wall_time"] / 3600:.1f} CPU hours. Research use only; not for
clinical decisions.
"""
    atomic_write_text(dest / "README.md", card)
    return dest
