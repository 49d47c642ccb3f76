#!/usr/bin/env bash
# Where the attention op's time goes, on the GPU machine: ptxas's registers and spills for every attention kernel, and
# Nsight Compute's duration, registers, local-memory traffic and top stalls for attention_partial_* and attention_combine
# at 1, 2, 4 and 8 rows (averaged per kernel and grid) on the 4-layer model of the 7B width, context 1024.
# There, after bench/gpu/profile_attention.sh wrote /tmp/l4: . .device/env.sh && bash bench/gpu/ncu_attention.sh
# NCU=0: only ptxas.
set -uo pipefail
OUT=${OUT:-/tmp/kangaroo-attention}
mkdir -p "$OUT"
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ "${NCU:-1}" = 1 ] && [ -n "$ncu" ]; then
metrics=gpu__time_duration.sum,launch__registers_per_thread,launch__grid_size,dram__throughput.avg.pct_of_peak_sustained_elapsed,l1tex__t_bytes_pipe_lsu_mem_local_op_ld.sum,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum
for s in long_scoreboard short_scoreboard barrier wait mio_throttle lg_throttle math_pipe_throttle; do
  metrics+=",smsp__average_warps_issue_stalled_${s}_per_issue_active.ratio"
done
"$ncu" --clock-control none --kernel-name regex:'^attention' --metrics "$metrics" --csv --page raw \
  dotnet .device/Kangaroo.Cli/kangaroo.dll bench --model /tmp/l4 --backend cuda --context 1024 --repetitions 3 --verify-rows 1 \
  --kernels --kernel-rows 1,2,4,8 > "$OUT/ncu_attention.csv" 2> "$OUT/ncu_attention.err"
python3 - "$OUT/ncu_attention.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if r]
head = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
names = rows[head]; data = rows[head + 2:]
col = {n: names.index(n) for n in names}
groups = collections.defaultdict(list)
for r in data:
    if len(r) != len(names): continue
    groups[(r[col["Kernel Name"]], r[col["launch__grid_size"]])].append(r)
keys = [n for n in names if n.endswith((".sum", "_per_thread", ".avg.pct_of_peak_sustained_active", ".pct_of_peak_sustained_elapsed", ".ratio")) and not n.startswith("launch__grid")]
short = lambda n: n.replace("smsp__average_warps_issue_stalled_", "stall_").replace("_per_issue_active.ratio", "").replace(".avg.pct_of_peak_sustained_active", "%").replace(".pct_of_peak_sustained_elapsed", "%")
for (name, grid), rs in sorted(groups.items()):
    vals = []
    for k in keys:
        try: vals.append("%s=%.3g" % (short(k), sum(float(r[col[k]].replace(",", "")) for r in rs) / len(rs)))
        except ValueError: pass
    print(f"{name} grid {grid} (n={len(rs)}): " + " ".join(vals))
PY
fi
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
( cd kernels && "$nvcc" -cubin -arch=sm_90 -Xptxas -v $(bash check.sh --defines) attention.cu -o /tmp/attention.cubin ) > "$OUT/ptxas_attention.txt" 2>&1
awk -F"'" '/Compiling entry/ {f=$2} /spill/ {sp=$0; sub(/^ */, "", sp)} /Used [0-9]+ registers/ {u=$0; sub(/.*Used/, "", u); printf "%-32s%s | %s\n", f, u, sp}' \
  "$OUT/ptxas_attention.txt" | grep f16 | cut -c1-160
