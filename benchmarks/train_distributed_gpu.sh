#!/usr/bin/env bash
# UNTESTED: written without access to a GPU; never run.
#
# GPU variant of benchmarks/train_distributed.py: data-parallel `spacy-xlmr train`
# (torchrun, nccl, `--gpu-id 0`: each rank trains on its LOCAL_RANK GPU) with
# configs/ner-base.cfg on 1 GPU vs N GPUs, mixed precision on/off x gradient
# checkpointing on/off. Prints the same Markdown table (words/s of all ranks,
# scaling efficiency = words/s with N GPUs / (N x words/s with 1 GPU), peak RSS and
# peak GPU memory (torch.cuda.max_memory_allocated) per rank).
#
# Usage, from the repository root, with the venv active:
#   benchmarks/train_distributed_gpu.sh                 # N = all visible GPUs
#   N_GPUS=4 STEPS=100 BATCH_WORDS=2000 benchmarks/train_distributed_gpu.sh
#   ENCODER=/path/to/xlm-roberta-base benchmarks/train_distributed_gpu.sh
# Without ENCODER it builds a base-sized random checkpoint (8k-piece vocabulary, so
# the embeddings and their optimizer state are far smaller than xlm-roberta-base's).
set -euo pipefail
cd "$(dirname "$0")/.."

N_GPUS="${N_GPUS:-$(nvidia-smi -L | wc -l)}"
STEPS="${STEPS:-50}"               # spaCy runs steps 0..STEPS
BATCH_WORDS="${BATCH_WORDS:-2000}" # ner-base.cfg's batch_by_words size
OUTPUT="${OUTPUT:-benchmarks/output/train_distributed_gpu}"
RUNS=(1x1)
if [ "$N_GPUS" -gt 1 ]; then RUNS+=("${N_GPUS}x1"); fi

MP=--components.transformer.model.mixed_precision
GC=--components.transformer.model.gradient_checkpointing

python benchmarks/train_distributed.py --gpu \
  --config configs/ner-base.cfg --sizes base \
  --base-steps "$STEPS" --base-batch-words "$BATCH_WORDS" --runs "${RUNS[@]}" \
  ${ENCODER:+--encoder "$ENCODER"} \
  --variant "fp32=$MP false $GC false" \
  --variant "amp=$MP true $GC false" \
  --variant "fp32+gc=$MP false $GC true" \
  --variant "amp+gc=$MP true $GC true" \
  --output "$OUTPUT"
