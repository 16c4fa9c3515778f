#!/usr/bin/env bash
# Long-context pretraining on one GPU, sized for one 10-minute call on a lent machine (docs/speed/gpu.md, "The next
# GPU"): continues a bundled 16k model on 16k windows of the training DNA (the held-out region excluded, as always),
# then scores the result as the cards do: the 1k windows, paired window by window against the model it started from
# on the 1k and 16k windows, the context sweep, and the model card's sections (long_context_eval.py). $OUT receives
# what a CPU machine needs to commit the run and resume it exactly: the packed checkpoint (shards under 10 MB), the
# model's weights, and one archive of the rest.
#
#   HYENADNA_SHARED=<folder holding data/genome> OUT=<results folder> bash benchmarks/gpu_pretrain.sh
#   DEVICE=cpu STEPS=2 BATCH=1 MINUTES=5 OUT=/tmp/check bash benchmarks/gpu_pretrain.sh   # the script itself, on a CPU
#
# At 4.0M tokens/s (bf16, an H200, the 2-layer shape) the default 6,000 steps of 8 x 16,384 tokens (786M tokens) take
# about 3.5 minutes; MINUTES stops the training cleanly (checkpoint, evaluation, export) if the GPU is slower.
set -euo pipefail

shared=${HYENADNA_SHARED:-$(dirname "$0")/../../shared}
genome=$shared/data/genome
device=${DEVICE:-cuda}
steps=${STEPS:-6000}
batch=${BATCH:-8}
minutes=${MINUTES:-5}
init=${INIT:-hyenadna-tiny-16k-d256-grch37}
bands=${BANDS:-16}
run=${RUN:-/tmp/gpu_pretrain}
out=${OUT:?OUT: name the folder for the results}
py=${PYTHON:-python3}
fasta=("$genome/GRCh37_chr20.fa.gz" "$genome/GRCh37_chrX_0-70Mb.fa.gz")

mkdir -p "$run" "$out"
$py -m hyenadna pretrain --fasta "${fasta[@]}" --init-from "$init" --filter-geometric-bands "$bands" \
    --l-max 16386 --seq-len 16384 --batch-size "$batch" --max-steps "$steps" --lr 3e-4 --warmup-steps 100 \
    --eval-every 500 --eval-windows 32 --ckpt-every 250 --no-markov --device "$device" --bf16 \
    --max-minutes "$minutes" --out "$run/run" 2>&1 | grep -v '%|' || true
test -f "$run/run/model/config.json" || { echo "pretraining left no model" >&2; exit 1; }
$py -m hyenadna pretrain --out "$run/run" --pack-checkpoint

$py -m hyenadna evaluate --model "$run/run/model" --fasta "${fasta[@]}" --windows 256 --seq-len 1024 --no-markov \
    --quiet --device "$device" -o "$run/eval_1k.json"
$py benchmarks/paired_nll.py --pairs "$run/run/model" "$init" --labels "run - $init" --device "$device" \
    --out "$run/paired"
$py benchmarks/context_length.py --models "$run/run/model" --device "$device" --out "$run/sweep"
# the model card's sections (the 1k windows, the position bands), so that a better model can be bundled from a CPU
$py benchmarks/long_context_eval.py --model "$run/run/model" --name "$init, continued on a GPU" --baseline "$init" \
    --baseline-label "the model this run continued" --device "$device" --out "$run/eval"

# at most 8 files come back from a lent machine, 16 MiB each: the checkpoint's shards, the weights, one archive
mkdir -p "$out/checkpoint"
cp "$run"/run/checkpoint/* "$out/checkpoint/"
# a model over 10 MB (INIT=hyenadna-16k-d256-l3-grch37) is exported in shards, with an index that goes in the archive
cp "$run"/run/model/*.safetensors "$out/"
index=$(cd "$run" && ls run/model/*.index.json 2>/dev/null || true)
tar -czf "$out/reports.tar.gz" -C "$run" run/metrics.jsonl run/pretrain_config.json run/regions.json \
    run/loss_curve.png run/model/config.json $index eval_1k.json paired sweep eval
ls -la "$out" "$out/checkpoint"
