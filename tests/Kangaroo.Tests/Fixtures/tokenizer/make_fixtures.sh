#!/usr/bin/env bash
# Regenerates the tokenizer fixtures: two small SentencePiece BPE models and the ids/decodes that the reference
# implementation (python3-sentencepiece) gives for them. Needs the Debian packages `sentencepiece` and
# `python3-sentencepiece`. Deterministic: fixed seeds, a single training thread, the whole corpus used.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3   # the Debian Python, which has the sentencepiece binding (a pyenv python3 on PATH may not)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Relative paths: the model file records its training input and prefix, which must not depend on the temp dir.
cd "$work"
"$py" "$here/fixture_text.py" corpus > corpus.txt

common=(
  --input=corpus.txt --character_coverage=0.995
  --normalization_rule_name=identity --remove_extra_whitespaces=false --split_digits=true --byte_fallback=true
  --input_sentence_size=0 --shuffle_input_sentence=false --num_threads=1 --seed_sentencepiece_size=100000
  --minloglevel=2
)

train() {  # name, extra options...
  local name="$1"; shift
  mkdir -p "$here/$name"
  spm_train "${common[@]}" --model_type=bpe --vocab_size=1500 "$@" --model_prefix="$name"
  cp "$work/$name.model" "$here/$name/tokenizer.model"
  "$py" "$here/fixture_text.py" expect "$here/$name/tokenizer.model" > "$here/$name/expected.jsonl"
}

train llama --add_dummy_prefix=true
train code --add_dummy_prefix=false --allow_whitespace_only_pieces=true

# A Unigram model, only to check that it is refused with a clear message (see TextTokenizer's remarks).
mkdir -p "$here/unigram"
spm_train "${common[@]}" --model_type=unigram --vocab_size=900 --add_dummy_prefix=true --model_prefix=unigram
cp "$work/unigram.model" "$here/unigram/tokenizer.model"

ls -l "$here"/*/tokenizer.model "$here"/*/expected.jsonl
