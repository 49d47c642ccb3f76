#!/usr/bin/env bash
# The hardware comparison run (issue #7): one command on the GPU machine, under 10 minutes, nothing built there.
# Here first:   bash tests/gpu/prepare.sh && bash bench/gpu/fetch_reference.sh
# There:        . .device/env.sh && bash bench/gpu/run.sh            (run's carry: .device and bench/gpu/reference)
#
# 1. trains the bench model (models/bench/README.md: 24 layers, 85 M params, adapter ℓ = 2) from fixed seeds — its
#    weights are not in git — while the CPU writes the random Llama-2-7B-shape model;
# 2. the 7B shape on the CUDA backend: memory probes, step timings (decode, verify k, draft), the per-kernel table;
#    Hugging Face eager at the same shape; the ILGPU backend if time is left;
# 3. the bench model end to end: the engine's vanilla, Kangaroo and token-tree Kangaroo greedy on the evaluation prompts
#    (identical outputs checked), the same prompts with 1, 4 and 16 sequences decoded together, then the peers on the same weights, prompts and token limit (bench/gpu/peers.py): transformers generate()
#    greedy, transformers' assistant_early_exit = ℓ, and the official Kangaroo implementation; then, while time allows,
#    kangaroo serve over the bench model under the load client (bench/gpu/serve.sh, 1/8/32 clients; SERVE=0 skips it);
# 4. bench/gpu/summarize.py: $OUT/<card>.json (the shape of bench/results/h200.json) and $OUT/summary.md.
# Everything lands in $OUT as it is produced; $OUT/results.tar.gz bundles the logs.
#
# Environment: BASE_SECONDS (default 200) and ADAPTER_SECONDS (60) are the training budgets; PROMPTS (24) and
# MAX_TOKENS (128) size the engine's end-to-end run, PEER_PROMPTS (4) the peers' (the first of the same prompts); BATCH_DRAFT_STOPS
# ("0 0.5") adds 16-sequence runs at those batch draft stops instead of the ILGPU run (SKIP_ILGPU=1 skips it too); BENCH_MODEL=DIR skips training and uses DIR (e.g. models/demo for a dry run,
# with QUICK=1: no 7B model, 4 prompts × 32 tokens).
set -uo pipefail
OUT=${OUT:-/tmp/kangaroo-bench}
mkdir -p "$OUT"
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }
log() { echo "[$(elapsed)s] $*"; }
# A failing step marks the run failed and says which, so a final "status 1" is never a riddle.
fail() { status=1; log "FAILED: $*"; }
kangaroo() { dotnet .device/Kangaroo.Cli/kangaroo.dll "$@"; }
BASE_SECONDS=${BASE_SECONDS:-200} ADAPTER_SECONDS=${ADAPTER_SECONDS:-60}
PROMPTS=${PROMPTS:-24} MAX_TOKENS=${MAX_TOKENS:-128} PEER_PROMPTS=${PEER_PROMPTS:-4} QUICK=${QUICK:-0}
[[ $QUICK == 1 ]] && { PROMPTS=4; MAX_TOKENS=32; PEER_PROMPTS=2; }
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
status=0
T=/tmp/kbench
mkdir -p "$T"

. tests/gpu/unpack.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oiE 'h200|h100|a100|l40s|b200|gh200' | head -1 | tr A-Z a-z)
card=${card:-gpu}

# 1. Training on the GPU; the random 7B model written by the CPU meanwhile.
if [[ $QUICK != 1 ]]; then
  ( rm -rf /tmp/l7b && kangaroo random-model /tmp/l7b --preset llama2-7b --adapter-exit-layer 2 > "$T/l7b.log" 2>&1 ) &
  writer=$!
fi
if [[ -n ${BENCH_MODEL:-} ]]; then
  model=$BENCH_MODEL
  log "bench model: $model (not trained in this run)"
else
  model=$T/bench
  log "training the bench model: base ${BASE_SECONDS} s, adapter ${ADAPTER_SECONDS} s"
  CORPUS=$T/corpus BASE_SECONDS=$BASE_SECONDS ADAPTER_SECONDS=$ADAPTER_SECONDS bash bench/gpu/train_bench_model.sh "$model" "$OUT/train.log" ||
    { fail "training the bench model"; tail -20 "$OUT/train.log"; }
  grep '^summary:' "$OUT/train.log"
  log "training done"
fi
echo "$model" > "$T/bench_model_dir.txt"
[[ -n ${writer:-} ]] && { wait "$writer" || { fail "writing the random 7B model"; cat "$T/l7b.log"; }; tail -1 "$T/l7b.log"; }

# 2. The 7B shape.
if [[ $QUICK != 1 ]]; then
  log "7B shape, CUDA backend"
  kangaroo bench --model /tmp/l7b --backend cuda --context 1024 --repetitions 30 --kernels --json "$T/llama7b.json" \
    --markdown "$OUT/llama7b.md" > "$OUT/llama7b.txt" 2>&1 || fail "kangaroo bench, 7B shape"
  grep -E "^(backend|memory|decode|verify|draft)" "$OUT/llama7b.txt"
else
  kangaroo random-model /tmp/lq --preset tiny-10m --adapter-exit-layer 2 > /dev/null
  kangaroo bench --model /tmp/lq --backend cuda --context 256 --repetitions 5 --json "$T/llama7b.json" > "$OUT/llama7b.txt" 2>&1 || fail "kangaroo bench, quick model"
fi
log "7B shape, Hugging Face eager"
$py bench/gpu/hf_7b.py --tokens $([[ $QUICK == 1 ]] && echo 4 || echo 64) --json "$T/hf7b.json" 2>&1 | { grep -v Warning || true; } || fail "Hugging Face eager, 7B shape"

# 3. The bench model end to end: the engine, then the peers on its prompt ids.
log "bench model end to end, engine (CUDA)"
kangaroo bench --model "$model" --backend cuda --context 512 --repetitions 20 --kernels --tree --batch 1,4,16 --prompts bench/data/prompts.jsonl \
  --prompt-count "$PROMPTS" --max-tokens "$MAX_TOKENS" --outputs "$T/outputs.jsonl" --json "$T/bench_model.json" \
  --markdown "$OUT/bench_model.md" > "$OUT/bench_model.txt" 2>&1 || { fail "kangaroo bench, bench model end to end"; tail -5 "$OUT/bench_model.txt"; }
grep -A5 "^end to end" "$OUT/bench_model.txt"
grep -A3 "^batched" "$OUT/bench_model.txt"
log "bench model end to end, peers"
reference=bench/gpu/reference
[[ -d $reference ]] || echo "bench/gpu/reference missing (run bench/gpu/fetch_reference.sh here and carry it): official Kangaroo not run"
# Bounded so that the report below is still written inside the 10 minutes.
timeout $(( 585 - $(elapsed) )) $py bench/gpu/peers.py --model "$model" --outputs "$T/outputs.jsonl" --reference "$reference" --max-tokens "$MAX_TOKENS" \
  --prompt-count "$PEER_PROMPTS" \
  --json "$T/peers.json" > "$OUT/peers.log" 2>&1 || fail "peers (bench/gpu/peers.py; $OUT/peers.log)"
grep -vi "warn" "$OUT/peers.log" | tail -12

# On request (BATCH_DRAFT_STOPS="0 0.5"): 16 sequences at other batch draft stops, in place of the ILGPU run below.
for stop in ${BATCH_DRAFT_STOPS:-}; do
  [[ $(elapsed) -lt 530 ]] || break
  log "16 sequences, batch draft stop $stop"
  kangaroo bench --model "$model" --backend cuda --no-steps --batch 16 --batch-draft-stop "$stop" --prompts bench/data/prompts.jsonl \
    --prompt-count "$PROMPTS" --max-tokens "$MAX_TOKENS" --json "$T/batch_stop_$stop.json" 2>/dev/null | grep -A2 "^batched"
done

# kangaroo serve over the bench model under the load client (bench/gpu/serve.sh), while the 10 minutes allow; SERVE=0 skips it.
if [[ ${SERVE:-1} == 1 && $(elapsed) -lt 470 ]]; then
  log "bench model served, under load"
  OUT=$T BENCH_MODEL=$model MAX_TOKENS=$([[ $QUICK == 1 ]] && echo 16 || echo 64) CONCURRENCY=1,8,32 \
    timeout $(( 560 - $(elapsed) )) bash bench/gpu/serve.sh > "$OUT/serve.txt" 2>&1 || { echo "serve: not finished"; rm -f "$T/serve_load.json"; }
  grep -E "^(vanilla|kangaroo) " "$OUT/serve.txt"
fi

# The ILGPU backend at the 7B shape (one thread per output: ~0.7 s per step), only while the 10 minutes allow.
if [[ $QUICK != 1 && -z ${BATCH_DRAFT_STOPS:-} && ${SKIP_ILGPU:-0} != 1 && $(elapsed) -lt 480 ]]; then
  log "7B shape, ILGPU backend"
  timeout $(( 560 - $(elapsed) )) dotnet .device/Kangaroo.Cli/kangaroo.dll bench --model /tmp/l7b --backend ilgpu --context 1024 \
    --repetitions 2 --json "$T/ilgpu7b.json" > "$OUT/ilgpu7b.txt" 2>&1 || { echo "ilgpu: not finished"; rm -f "$T/ilgpu7b.json"; }
  grep -E "^decode" "$OUT/ilgpu7b.txt"
fi

# 4. The report.
log "summary"
$py bench/gpu/summarize.py "$T" --driver "$driver" --out "$OUT/$card.json" --markdown "$OUT/summary.md" > /dev/null || fail "summary (bench/gpu/summarize.py)"
cat "$OUT/summary.md" 2>/dev/null
cp "$T"/*.json "$T/outputs.jsonl" "$OUT/" 2>/dev/null
[[ -d $model ]] && cp "$model"/train_log.json "$OUT/base_train_log.json" 2>/dev/null
[[ -d $model/kangaroo-adapter ]] && cp "$model/kangaroo-adapter/train_log.json" "$OUT/adapter_train_log.json" 2>/dev/null
( cd "$OUT" && tar -czf results.tar.gz --exclude results.tar.gz ./* && find . -maxdepth 1 -type f ! -name results.tar.gz ! -name "$card.json" ! -name summary.md -delete )
log "done (status $status)"
exit $status
