#!/usr/bin/env bash
# Everything the GPU machine checks and times, in one command (from the repository root there, after
# tests/gpu/prepare.sh here):
#
#   . .device/env.sh && bash tests/gpu/run.sh [quick | microbench]
#
# 1. the GPU's memory ceilings (PyTorch), 2. reference models + logits from Hugging Face transformers, 3. the whole test
# suite with the GPU tests active (CUDA conformance, full-model parity with HF, Kangaroo = vanilla on CUDA),
# 4. Llama-2-7B-shape step timings (random F16 weights written by the engine itself). Results go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/kangaroo-out}
mkdir -p "$OUT"
kangaroo() { dotnet .device/Kangaroo.Cli/kangaroo.dll "$@"; }
. tests/gpu/unpack.sh
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 tests/gpu/bandwidth.py | tee "$OUT/bandwidth.json" || status=1

rm -rf /tmp/hf_parity && python3 tests/gpu/hf_parity.py /tmp/hf_parity > "$OUT/hf_parity.log" 2>&1 || { status=1; tail -20 "$OUT/hf_parity.log"; }
KANGAROO_HF_PARITY_DIR=/tmp/hf_parity dotnet .device/Kangaroo.Tests/Kangaroo.Tests.dll --no-progress \
  > "$OUT/tests.log" 2>&1 || status=1
grep -E "^failed |total:|failed:|succeeded:|skipped:" "$OUT/tests.log" | head -40

# The CLI end to end on CUDA: vanilla and Kangaroo greedy must print the same text.
rm -rf /tmp/tiny10m
kangaroo random-model /tmp/tiny10m --preset tiny-10m --tokenizer-from tests/Kangaroo.Tests/Fixtures/tokenizer/code --adapter-exit-layer 2 > /dev/null
kangaroo generate --backend cuda --model /tmp/tiny10m --max-tokens 200 --ignore-eos "def fibonacci(n):" > "$OUT/vanilla.txt" 2> "$OUT/vanilla.err"
kangaroo generate --backend cuda --model /tmp/tiny10m --max-tokens 200 --ignore-eos --kangaroo "def fibonacci(n):" > "$OUT/kangaroo.txt" 2> "$OUT/kangaroo.err"
cat "$OUT/vanilla.err" "$OUT/kangaroo.err"
if cmp -s "$OUT/vanilla.txt" "$OUT/kangaroo.txt"; then echo "cli: kangaroo output identical to vanilla"; else echo "cli: OUTPUTS DIFFER"; status=1; fi

if [ "${1:-}" != "quick" ]; then
  rm -rf /tmp/l7b
  kangaroo random-model /tmp/l7b --preset llama2-7b --adapter-exit-layer 2 | tail -2
  kangaroo bench --model /tmp/l7b --backend cuda --context 1024 --repetitions 30 --kernels --json "$OUT/llama7b.json" | tee "$OUT/llama7b.txt" || status=1
fi
# On request (`run.sh microbench`, after `tests/gpu/prepare.sh --microbench`): the BenchmarkDotNet microbenchmarks on the GPU backends, their markdown table to $OUT.
if [ "${1:-}" = "microbench" ]; then
  KANGAROO_BENCH_BACKENDS=cuda,ilgpu dotnet .device/Kangaroo.Bench/Kangaroo.Bench.dll --filter '*' --artifacts /tmp/bdn > "$OUT/microbench.log" 2>&1 || status=1
  cp /tmp/bdn/results/*OpBenchmarks-report-github.md "$OUT/microbench.md" 2>/dev/null || { status=1; tail -20 "$OUT/microbench.log"; }
fi
exit $status
