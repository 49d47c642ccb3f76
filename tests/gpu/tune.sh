#!/usr/bin/env bash
# Kernel tuning sweep on the GPU machine (after tests/gpu/run.sh wrote /tmp/l7b): the decode step and the per-op table
# for several tilings, through KANGAROO_KERNEL_DEFINES / KANGAROO_MATMUL_BLOCKS_PER_SM (no rebuild needed).
OUT=${OUT:-/tmp/kangaroo-out}
. tests/gpu/unpack.sh
for config in "$@"; do
  defines=${config%@*}; blocks=${config#*@}
  echo "== $defines, matmul blocks per SM $blocks"
  KANGAROO_KERNEL_DEFINES="$defines" KANGAROO_MATMUL_BLOCKS_PER_SM=$blocks \
    dotnet .device/Kangaroo.Cli/kangaroo.dll bench --model /tmp/l7b --backend cuda --context 1024 --repetitions 10 --kernels \
    > "$OUT/tune_$(echo "$defines@$blocks" | tr ' =' '_-').txt" 2>&1
  grep -E "decode step|verify  8|draft|matmul|attention|rope" "$OUT/tune_$(echo "$defines@$blocks" | tr ' =' '_-').txt"
done
