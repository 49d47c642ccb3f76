#!/usr/bin/env bash
# Everything the GPU machine checks and times, in one command (from the repository root there, after
# tests/gpu/prepare.sh here):
#
#   . .device/env.sh && bash tests/gpu/run.sh [quick]
#
# 1. the GPU's memory ceilings (PyTorch), 2. reference models + logits from Hugging Face transformers, 3. the whole test
# suite with the GPU tests active (CUDA conformance, full-model parity with HF, Kangaroo = vanilla on CUDA),
# 4. Llama-2-7B-shape step timings (random F16 weights written by the engine itself). Results go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/kangaroo-out}
mkdir -p "$OUT"
kangaroo() { dotnet .device/Kangaroo.Cli/kangaroo.dll "$@"; }
# prepare.sh leaves the demo model out of .device (the tree carries it once); the CLI and the tests find it next to themselves.
for program in Kangaroo.Cli Kangaroo.Tests; do
  [ -d .device/$program/models/demo ] || { mkdir -p .device/$program/models && cp -r models/demo .device/$program/models/; }
done
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
exit $status
