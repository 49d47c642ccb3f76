#!/usr/bin/env bash
# Kernel tuning sweep on the GPU machine (after tests/gpu/run.sh wrote /tmp/l7b): the decode step and the per-op table
# for several matmul tilings, through KANGAROO_KERNEL_DEFINES / KANGAROO_MATMUL_BLOCKS_PER_SM (no rebuild needed).
OUT=${OUT:-/tmp/kangaroo-out}
for config in "4 5" "2 8" "8 3" "4 8" "2 12"; do
  set -- $config
  echo "== FEATURES=$1, blocks per SM $2"
  KANGAROO_KERNEL_DEFINES="FEATURES=$1" KANGAROO_MATMUL_BLOCKS_PER_SM=$2 \
    dotnet .device/Kangaroo.Cli/kangaroo.dll bench --model /tmp/l7b --backend cuda --context 1024 --repetitions 10 --kernels \
    > "$OUT/tune_$1_$2.txt" 2>&1
  grep -E "decode step|verify  8|draft|matmul" "$OUT/tune_$1_$2.txt"
done
