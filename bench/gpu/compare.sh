#!/usr/bin/env bash
# Old and new engine side by side in one device session: the same bench model, each engine's end-to-end bench
# (vanilla, Kangaroo chain, token tree, 4 and 16 sequences) run alternately, twice each, on the same GPU.
# Here:   bash tests/gpu/prepare.sh && bash bench/gpu/pack_cli.sh REV     (the CLI built at REV, as .device/old-cli.tar.xz)
# There:  . .device/env.sh && bash bench/gpu/compare.sh
# The bench model is trained as bench/gpu/run.sh trains it (BASE_SECONDS, ADAPTER_SECONDS) unless BENCH_MODEL names
# one or /tmp/kbench/bench already holds it (a warm machine keeps it between calls). Results: $OUT/{old,new}-{1,2}.{txt,json}.
set -uo pipefail
OUT=${OUT:-/tmp/kangaroo-compare}
T=/tmp/kbench
mkdir -p "$OUT" "$T"
py=${PYTHON:-python3}
. tests/gpu/unpack.sh
if [ ! -d .device/old-cli ]; then
  mkdir -p .device/old-cli && tar xJf .device/old-cli.tar.xz -C .device/old-cli
  mkdir -p .device/old-cli/models && cp -r models/demo .device/old-cli/models/
fi
model=${BENCH_MODEL:-$T/bench}
if [ ! -f "$model/kangaroo-adapter/config.json" ]; then
  { $py tools/train/corpus.py "$T/corpus" --max-bytes 150000000 &&
    $py tools/train/train_base.py --preset bench --corpus "$T/corpus" --tokenizer models/demo --out "$model" --seconds "${BASE_SECONDS:-200}" &&
    $py tools/train/train_adapter.py --model "$model" --corpus "$T/corpus" --exit-layer 2 --seconds "${ADAPTER_SECONDS:-60}"
  } > "$OUT/train.log" 2>&1 || { tail -20 "$OUT/train.log"; exit 1; }
  grep '^summary:' "$OUT/train.log"
fi
sha256sum "$model"/model.safetensors "$model"/kangaroo-adapter/model.safetensors | tee "$OUT/weights.sha256"
status=0
for round in ${ROUNDS:-1 2}; do
  for engine in old new; do
    cli=.device/Kangaroo.Cli/kangaroo.dll
    [ $engine = old ] && cli=.device/old-cli/kangaroo.dll
    timeout "${BENCH_TIMEOUT:-240}" dotnet $cli bench --model "$model" --backend cuda --no-steps --tree --batch 4,16 --prompts bench/data/prompts.jsonl \
      --prompt-count "${PROMPTS:-24}" --max-tokens "${MAX_TOKENS:-128}" --json "$OUT/$engine-$round.json" > "$OUT/$engine-$round.txt" 2>/dev/null || status=1
    echo "== $engine, round $round"
    grep -E "^  (vanilla|kangaroo|outputs):|^end to end|^  +[0-9]+ seqs:" "$OUT/$engine-$round.txt"
  done
done
exit $status
