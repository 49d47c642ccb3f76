#!/usr/bin/env bash
# The serving load run on the GPU machine: `kangaroo serve` over the bench model on the CUDA backend, and the bounded
# load client (bench/Kangaroo.LoadBench) at 1, 8 and 32 clients, vanilla and Kangaroo alternating.
# Here first:   bash tests/gpu/prepare.sh            (packs the ASP.NET Core runtime, the CLI and the load client)
# There:        . .device/env.sh && bash bench/gpu/serve.sh
# BENCH_MODEL=DIR uses a model already trained (else one is trained as run.sh does); CONCURRENCY (1,8,32),
# MAX_TOKENS (128), MAX_SEQUENCES (32) and REQUESTS (default: the client's max(8, 2 × clients)) size the run;
# BACKEND=cpu with BENCH_MODEL=models/demo is a dry run on any machine.
# Writes $OUT/serve_load.json, $OUT/serve_load.md and the server's log.
set -uo pipefail
OUT=${OUT:-/tmp/kangaroo-bench}
mkdir -p "$OUT" /tmp/kbench
. tests/gpu/unpack.sh
model=${BENCH_MODEL:-}
if [[ -z $model ]]; then
  model=/tmp/kbench/bench
  [[ -f $model/kangaroo-adapter/config.json ]] || bash bench/gpu/train_bench_model.sh "$model" "$OUT/train.log" || { tail -20 "$OUT/train.log"; exit 1; }
  grep '^summary:' "$OUT/train.log"
fi
# dotnet itself in the background (not a shell function), so that $! is the server and SIGTERM reaches it.
dotnet .device/Kangaroo.Cli/kangaroo.dll serve --model "$model" --model-id bench --backend "${BACKEND:-cuda}" --kangaroo --port 0 --context 1024 \
  --max-sequences "${MAX_SEQUENCES:-32}" --max-queue 1024 --verbose > /tmp/kbench/serve.out 2> "$OUT/serve.log" &
server=$!
for _ in $(seq 300); do grep -q '^listening on' /tmp/kbench/serve.out && break; sleep 0.2; done
url=$(sed -n 's/^listening on //p' /tmp/kbench/serve.out)
[[ -n $url ]] || { echo "the server did not start:"; cat "$OUT/serve.log"; kill $server; exit 1; }
status=0
dotnet .device/Kangaroo.LoadBench/kangaroo-loadbench.dll --url "$url" --concurrency "${CONCURRENCY:-1,8,32}" \
  --max-tokens "${MAX_TOKENS:-128}" ${REQUESTS:+--requests $REQUESTS} ${MODES:+--modes $MODES} --json "$OUT/serve_load.json" --markdown "$OUT/serve_load.md" || status=1
curl -s "${url}metrics" | grep -E '^kangaroo_(generated_tokens_total|rounds_total|acceptance_rate|sequences_(finished|failed)_total)' | tee "$OUT/serve_metrics.txt"
kill -TERM $server; wait $server || status=1
cat "$OUT/serve.log"
exit $status
