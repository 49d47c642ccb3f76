#!/usr/bin/env bash
# Runs the whole pipeline for one preset: corpus -> tokenizer -> base -> adapter -> evaluate -> prompts.
#
#   bash tools/train/run_all.sh OUT [--preset demo|bench|smoke] [--from STAGE] [--until STAGE] [--rebuild]
#                                   [--max-bytes N] [--exit-layer L]
#
# Layout: OUT/corpus, OUT/tokenizer (both shared by the presets and reused when present), OUT/PRESET (the model
# directory: weights, tokenizer, train_log.json, eval.json, kangaroo-adapter/), OUT/prompts.jsonl, OUT/logs/.
#   --from STAGE   start at that stage (corpus, tokenizer, base, adapter, evaluate, prompts); earlier outputs must exist
#   --until STAGE  stop after that stage (to split the pipeline over calls of limited length)
#   --rebuild      rebuild the corpus and the tokenizer even if present
#   --max-bytes N  training text for a new corpus (default 150000000)
# PYTHON picks the interpreter (default python3). Each stage prints a one-line summary; the total time comes last.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 && $1 != -* ]] || usage
out=$1; shift
preset=demo from=corpus until=prompts rebuild=0 max_bytes=150000000 exit_layer=2
while [[ $# -gt 0 ]]; do
  case $1 in
    --preset) preset=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --until) until=$2; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    --max-bytes) max_bytes=$2; shift 2 ;;
    --exit-layer) exit_layer=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "run_all.sh: unknown option $1" >&2; usage ;;
  esac
done
case $preset in demo|bench|smoke) ;; *) echo "run_all.sh: --preset must be demo, bench or smoke" >&2; exit 2 ;; esac
stages=(corpus tokenizer base adapter evaluate prompts)
for s in "$from" "$until"; do
  [[ " ${stages[*]} " == *" $s "* ]] || { echo "run_all.sh: --from/--until take one of: ${stages[*]}" >&2; exit 2; }
done

here="$(cd "$(dirname "$0")" && pwd)"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
corpus=$out/corpus tokenizer=$out/tokenizer model=$out/$preset
mkdir -p "$out/logs"
summaries=()
started=$(date +%s)
reached=0 done=0

# stage NAME COMMAND...: runs it (unless before --from or after --until), logs to OUT/logs/PRESET-NAME.log, keeps
# its summary line.
stage() {
  local name=$1; shift
  [[ $name == "$from" ]] && reached=1
  if [[ $reached == 0 || $done == 1 ]]; then
    summaries+=("$(printf '%-9s not run (stages %s..%s)' "$name" "$from" "$until")")
    return
  fi
  [[ $name == "$until" ]] && done=1
  local log="$out/logs/$preset-$name.log" t0=$(date +%s)
  echo "== $name: $*"
  "$@" 2>&1 | tee "$log"
  local line; line=$(grep '^summary:' "$log" | tail -n 1 | sed 's/^summary: //')
  summaries+=("$(printf '%-9s %5ds  %s' "$name" $(( $(date +%s) - t0 )) "$line")")
}

reuse() {  # NAME DIR FILE...: true (and notes it) when DIR has every FILE and --rebuild is off
  local name=$1 dir=$2; shift 2
  [[ $rebuild == 1 ]] && return 1
  for f in "$@"; do [[ -f $dir/$f ]] || return 1; done
  [[ $name == "$from" ]] && reached=1
  [[ $name == "$until" ]] && done=1
  summaries+=("$(printf '%-9s reused %s' "$name" "$dir")")
  return 0
}

if ! reuse corpus "$corpus" train.jsonl heldout.jsonl manifest.json; then
  rebuild=1   # a new corpus needs a new tokenizer
  stage corpus "$py" "$here/corpus.py" "$corpus" --max-bytes "$max_bytes"
fi
if ! reuse tokenizer "$tokenizer" tokenizer.model tokenizer_config.json parity.jsonl; then
  stage tokenizer "$py" "$here/tokenizer.py" "$corpus" "$tokenizer"
fi
stage base "$py" "$here/train_base.py" --preset "$preset" --corpus "$corpus" --tokenizer "$tokenizer" --out "$model"
stage adapter "$py" "$here/train_adapter.py" --model "$model" --corpus "$corpus" --exit-layer "$exit_layer" \
  --out "$model/kangaroo-adapter"
eval_size=()
[[ $preset == smoke ]] && eval_size=(--prompts 8 --new-tokens 32)
stage evaluate "$py" "$here/evaluate.py" --model "$model" --corpus "$corpus" "${eval_size[@]}"
stage prompts "$py" "$here/prompts.py" --corpus "$corpus" --out "$out/prompts.jsonl"

echo
echo "== $preset pipeline in $out"
printf '%s\n' "${summaries[@]}"
echo "total     $(( $(date +%s) - started ))s"
