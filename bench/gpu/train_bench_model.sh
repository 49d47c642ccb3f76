#!/usr/bin/env bash
# Trains the bench model (models/bench/README.md: 24 layers, 85 M params, adapter ℓ = 2) into DIR from fixed seeds, as
# the hardware run does; its log goes to LOG. Used by run.sh and serve.sh on the GPU machine.
#   bash bench/gpu/train_bench_model.sh DIR LOG      (BASE_SECONDS, default 200, and ADAPTER_SECONDS, default 60)
set -uo pipefail
model=$1 log=$2
py=${PYTHON:-python3}
corpus=${CORPUS:-/tmp/kbench/corpus}
{ $py tools/train/corpus.py "$corpus" --max-bytes 150000000 &&
  # The demo model's tokenizer is the one tools/train/tokenizer.py makes from this corpus (and the one whose
  # Microsoft.ML.Tokenizers parity the tests check): reused instead of retrained.
  $py tools/train/train_base.py --preset bench --corpus "$corpus" --tokenizer models/demo --out "$model" --seconds "${BASE_SECONDS:-200}" &&
  $py tools/train/train_adapter.py --model "$model" --corpus "$corpus" --exit-layer 2 --seconds "${ADAPTER_SECONDS:-60}"
} > "$log" 2>&1
