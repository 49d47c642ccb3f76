#!/usr/bin/env bash
# Attention on the GPU machine in one call: the CUDA conformance and Kangaroo suites, the attention op's µs at 1-64 rows
# on a 4-layer model of the Llama-2-7B width (context 1024) and on the bench shape (context 512) under kernel-define
# variants, and the full 7B shape's steps, each beside the old CLI when .device/old-cli.tar.xz is there
# (bench/gpu/pack_cli.sh REV), in the same call.
# Here: bash tests/gpu/prepare.sh [&& bash bench/gpu/pack_cli.sh REV].
# There: . .device/env.sh && bash bench/gpu/profile_attention.sh   (carry: .device)
# Environment: VARIANTS (';'-separated KANGAROO_KERNEL_DEFINES sets for the new CLI), TC (KANGAROO_MATMUL_TENSOR_CORES,
# default 1), TESTS=0, OPS=0, STEPS=0 (no 7B model) skip parts; STEP_VARIANTS (';'-separated sets the 7B steps also run
# with); KEEP_7B=1 uses the 7B model already in /tmp/l7b (written by an earlier call on a warm machine).
set -uo pipefail
OUT=${OUT:-/tmp/kangaroo-attention}
mkdir -p "$OUT"
started=$(date +%s)
log() { echo "[$(( $(date +%s) - started ))s] $*"; }
. tests/gpu/unpack.sh
new=.device/Kangaroo.Cli/kangaroo.dll
old=""
if [ -f .device/old-cli.tar.xz ]; then
  [ -d .device/old-cli ] || { mkdir -p .device/old-cli && tar xJf .device/old-cli.tar.xz -C .device/old-cli; }
  old=.device/old-cli/kangaroo.dll
fi
export KANGAROO_MATMUL_TENSOR_CORES=${TC:-1}
status=0
dotnet "$new" random-model /tmp/l4 --preset llama2-7b --layers 4 > /dev/null || status=1
dotnet "$new" random-model /tmp/b --hidden 512 --layers 24 --heads 8 --ffn 1408 --vocab 8000 --adapter-exit-layer 2 > /dev/null || status=1
if [ "${STEPS:-1}" != 0 ] && [ "${KEEP_7B:-0}" != 1 ]; then
  ( rm -rf /tmp/l7b && dotnet "$new" random-model /tmp/l7b --preset llama2-7b --adapter-exit-layer 2 > "$OUT/l7b.log" 2>&1 ) &
  writer=$!
fi
if [ "${TESTS:-1}" = 1 ]; then
  log "CUDA conformance and Kangaroo suites (KANGAROO_MATMUL_TENSOR_CORES=$KANGAROO_MATMUL_TENSOR_CORES)"
  dotnet .device/Kangaroo.Tests/Kangaroo.Tests.dll --no-progress --filter-namespace Kangaroo.Tests.Kernels > "$OUT/tests_kernels.log" 2>&1 || status=1
  grep -E "^failed |total:|failed:|succeeded:|skipped:" "$OUT/tests_kernels.log" | head -20
fi
IFS=';' read -ra sets <<< "${VARIANTS:-}"
attention_line() { grep -E '^attention' "$1" | awk '{printf "%s×%s ", $2, $(NF-2)}'; }
[ "${OPS:-1}" = 0 ] && models=() || models=(l4:1024 b:512)
for model in "${models[@]}"; do
  dir=${model%%:*} context=${model#*:}
  log "attention µs per op (rows×µs), /tmp/$dir, context $context"
  for cli in new old; do
    [ "$cli" = old ] && [ -z "$old" ] && continue
    dll=$new; [ "$cli" = old ] && dll=$old
    for i in "" "${!sets[@]}"; do
      set_=${i:+${sets[$i]}}
      [ "$cli" = old ] && [ -n "$i" ] && continue
      file="$OUT/ops_${dir}_${cli}${i}.txt"
      KANGAROO_KERNEL_DEFINES="$set_" dotnet "$dll" bench --model /tmp/$dir --backend cuda --context "$context" --repetitions 20 \
        --kernels --kernel-rows 1,2,4,8,16,64 > "$file" 2>&1 || { status=1; tail -3 "$file"; }
      echo "$cli [$set_]: $(attention_line "$file")"
      echo "  steps: $(grep -E '^(decode|verify|draft)' "$file" | awk '{printf "%s ", $0}' | sed -E 's/ +/ /g')"
    done
  done
done
if [ "${STEPS:-1}" != 0 ]; then
  [ "${KEEP_7B:-0}" = 1 ] || wait "$writer" || { status=1; cat "$OUT/l7b.log"; }
  IFS=';' read -ra step_sets <<< "${STEP_VARIANTS:-}"
  runs=("new:")
  for set_ in "${step_sets[@]}"; do runs+=("new:$set_"); done
  [ -n "$old" ] && runs+=("old:")
  for run in "${runs[@]}"; do
    cli=${run%%:*} defs=${run#*:}
    dll=$new; [ "$cli" = old ] && dll=$old
    name=${cli}${defs:+_$(echo "$defs" | tr -c 'A-Za-z0-9\n' '_')}
    log "7B shape, $cli KANGAROO_KERNEL_DEFINES=\"$defs\""
    KANGAROO_KERNEL_DEFINES="$defs" dotnet "$dll" bench --model /tmp/l7b --backend cuda --context 1024 --repetitions 20 \
      --json "$OUT/llama7b_$name.json" > "$OUT/llama7b_$name.txt" 2>&1 || { status=1; tail -3 "$OUT/llama7b_$name.txt"; }
    grep -E "^(decode|verify|draft|launches)" "$OUT/llama7b_$name.txt" | tr '\n' ' ' | sed -E 's/ +/ /g'; echo
  done
fi
tar czf "$OUT/profile.tar.gz" -C "$OUT" $(cd "$OUT" && ls *.txt *.log *.json 2>/dev/null) 2>/dev/null
log done
exit $status
