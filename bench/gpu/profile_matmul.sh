#!/usr/bin/env bash
# Matmul tuning on the GPU machine in one call: ptxas's resource report for the tensor-core kernels, the CUDA conformance
# and Kangaroo suites (both matmul families), per-op GB/s of the tensor-core kernels under kernel-define variants, and of
# the CUDA-core ones, on a 4-layer model of the Llama-2-7B width (its matmuls
# have the 7B shapes), the full 7B shape's steps with the CUDA-core and tensor-core matmuls side by side, and Nsight
# Compute's counters for the one-row kernels.
# Here: bash tests/gpu/prepare.sh.   There: . .device/env.sh && bash bench/gpu/profile_matmul.sh   (carry: .device)
# Environment: VARIANTS (';'-separated KANGAROO_KERNEL_DEFINES sets), TESTS=0, STEPS=0 (no 7B model), NCU=0 skip parts;
# STEPS=all runs the 7B steps for every variant set, not only the defaults and the fastest one-row set.
# With .device/old-cli.tar.xz (bench/gpu/pack_cli.sh REV) the old CLI's tensor-core figures run beside each new one, in
# the same call: per-op GB/s for every variant set, and the 7B steps of the fastest set.
set -uo pipefail
OUT=${OUT:-/tmp/kangaroo-profile}
mkdir -p "$OUT"
started=$(date +%s)
log() { echo "[$(( $(date +%s) - started ))s] $*"; }
. tests/gpu/unpack.sh
kangaroo() { dotnet .device/Kangaroo.Cli/kangaroo.dll "$@"; }
old=""
if [ -f .device/old-cli.tar.xz ]; then
  [ -d .device/old-cli ] || { mkdir -p .device/old-cli && tar xJf .device/old-cli.tar.xz -C .device/old-cli; }
  old=.device/old-cli/kangaroo.dll
fi
status=0
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
( cd kernels && "$nvcc" -cubin -arch=sm_90 -Xptxas -v $(bash check.sh --defines) matmul.cu -o /tmp/matmul.cubin ) > "$OUT/ptxas.txt" 2>&1
awk -F"'" '/Compiling entry/ {f=$2} /spill/ {sp=$0; sub(/^ */, "", sp); sub(/ bytes stack frame,/, " stack", sp)} /Used [0-9]+ registers/ {u=$0; sub(/.*Used/, "", u); printf "%-26s%s | %s\n", f, u, sp}' "$OUT/ptxas.txt" | grep -E "f16_mma" | cut -c1-150
kangaroo random-model /tmp/l4 --preset llama2-7b --layers 4 > /dev/null
if [ "${STEPS:-1}" != 0 ]; then
  ( rm -rf /tmp/l7b && kangaroo random-model /tmp/l7b --preset llama2-7b --adapter-exit-layer 2 > "$OUT/l7b.log" 2>&1 ) &
  writer=$!
fi
if [ "${TESTS:-1}" = 1 ]; then
  log "CUDA conformance and Kangaroo suites"
  dotnet .device/Kangaroo.Tests/Kangaroo.Tests.dll --no-progress --filter-namespace Kangaroo.Tests.Kernels > "$OUT/tests_kernels.log" 2>&1 || status=1
  grep -E "^failed |total:|failed:|succeeded:|skipped:" "$OUT/tests_kernels.log" | head -20
fi
log "per-op GB/s at rows 1, 8, 16, 64: q/k/v, o, gate/up, down, lm_head each"
IFS=';' read -ra sets <<< "${VARIANTS:-}"
best="" best_us=999999
for i in "" "${!sets[@]}"; do
  set_=${i:+${sets[$i]}}
  KANGAROO_MATMUL_TENSOR_CORES=1 KANGAROO_KERNEL_DEFINES="$set_" kangaroo bench --model /tmp/l4 --backend cuda --context 1024 --repetitions 5 --verify-rows 1 \
    --kernels --kernel-rows 1,8,16,64 > "$OUT/ops$i.txt" 2>&1 || { status=1; tail -3 "$OUT/ops$i.txt"; }
  # µs of the one-row matmuls together: what a decode step spends in them per layer (+ the LM head).
  us=$(grep -E '^matmul' "$OUT/ops$i.txt" | grep -E ' 1×' | awk '{for (f = 1; f <= NF; f++) if ($f ~ /^1×/) {print $(NF-2); break}}' | awk '{s += $1} END {printf "%.1f", s}')
  echo "[$set_] one-row µs $us: $(grep -E '^matmul' "$OUT/ops$i.txt" | awk '{printf "%.0f ", $NF}')"
  if [ -n "$old" ]; then
    KANGAROO_MATMUL_TENSOR_CORES=1 KANGAROO_KERNEL_DEFINES="$set_" dotnet "$old" bench --model /tmp/l4 --backend cuda --context 1024 --repetitions 5 \
      --verify-rows 1 --kernels --kernel-rows 1,8,16,64 > "$OUT/ops${i}_old.txt" 2>&1 || { status=1; tail -3 "$OUT/ops${i}_old.txt"; }
    echo "[$set_] old CLI:           $(grep -E '^matmul' "$OUT/ops${i}_old.txt" | awk '{printf "%.0f ", $NF}')"
  fi
  if [ -n "$us" ] && awk "BEGIN {exit !($us < $best_us)}"; then best_us=$us; best=$set_; fi
done
echo "fastest one-row set: [$best] ($best_us µs)"
KANGAROO_MATMUL_TENSOR_CORES=0 kangaroo bench --model /tmp/l4 --backend cuda --context 1024 --repetitions 5 --verify-rows 1 \
  --kernels --kernel-rows 1,8,16,64 > "$OUT/ops0.txt" 2>&1
echo "[CUDA cores]: $(grep -E '^matmul' "$OUT/ops0.txt" | awk '{printf "%.0f ", $NF}')"
if [ "${STEPS:-1}" != 0 ]; then
  wait "$writer" || { status=1; cat "$OUT/l7b.log"; }
  runs=("0:" "1:")
  if [ "${STEPS:-1}" = all ]; then
    for set_ in "${sets[@]}"; do runs+=("1:$set_"); done
  elif [ -n "$best" ]; then
    runs+=("1:$best")   # the fastest variant, when it is not the defaults themselves
  fi
  [ -n "$old" ] && runs+=("old:$best")  # the old CLI's tensor cores with the same set
  for run in "${runs[@]}"; do
    tc=${run%%:*} defs=${run#*:}
    name=tc$tc${defs:+_$(echo "$defs" | tr -c 'A-Za-z0-9\n' '_')}
    cli=.device/Kangaroo.Cli/kangaroo.dll
    if [ "$tc" = old ]; then cli=$old; tc=1; name=old_tc1${defs:+_best}; fi
    log "7B shape, $(basename "$(dirname "$cli")") KANGAROO_MATMUL_TENSOR_CORES=$tc KANGAROO_KERNEL_DEFINES=\"$defs\""
    KANGAROO_MATMUL_TENSOR_CORES=$tc KANGAROO_KERNEL_DEFINES="$defs" dotnet "$cli" bench --model /tmp/l7b --backend cuda --context 1024 \
      --repetitions 20 --json "$OUT/llama7b_$name.json" > "$OUT/llama7b_$name.txt" 2>&1 || { status=1; tail -3 "$OUT/llama7b_$name.txt"; }
    grep -E "^(decode|verify|draft|launches)" "$OUT/llama7b_$name.txt" | tr '\n' ' ' | sed -E 's/ +/ /g'; echo
  done
fi
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ "${NCU:-1}" = 1 ] && [ -n "$ncu" ]; then
  metrics=gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__registers_per_thread,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem,launch__grid_size,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active
  for s in long_scoreboard short_scoreboard barrier wait math_pipe_throttle mio_throttle lg_throttle not_selected no_instruction dispatch_stall; do
    metrics+=",smsp__average_warps_issue_stalled_${s}_per_issue_active.ratio"
  done
  log "Nsight Compute, one-row matmuls of the 7B-width model"
  KANGAROO_MATMUL_TENSOR_CORES=1 "$ncu" --clock-control none --kernel-name regex:'^matmul_(silu_)?f16_mma_r1$' --launch-count 4 --metrics "$metrics" \
    dotnet .device/Kangaroo.Cli/kangaroo.dll bench --model /tmp/l4 --backend cuda --context 128 --repetitions 1 --verify-rows 1 > "$OUT/ncu.txt" 2>&1
  grep -E "matmul_|dram__|launch__|warps_active|issue_active|stalled|gpu__time" "$OUT/ncu.txt" | \
    sed -E 's/smsp__average_warps_issue_stalled_/stall_/; s/_per_issue_active.ratio//; s/ +/ /g' | head -80
fi
tar czf "$OUT/profile.tar.gz" -C "$OUT" $(cd "$OUT" && ls *.txt *.log 2>/dev/null) 2>/dev/null
log done
exit $status
