#!/usr/bin/env bash
# Packs a trained model directory into a reproducible .tar.gz to bring it back from the GPU machine.
#
#   bash tools/train/pack_model.sh MODEL_DIR OUT.tar.gz
#
# The archive holds one folder named after MODEL_DIR with config.json, generation_config.json, model.safetensors,
# tokenizer.model, tokenizer_config.json, train_log.json, eval.json, kangaroo-adapter/{config.json,
# model.safetensors,train_log.json} and FIGURES.md (figures.py's Markdown for the model card). Every one must exist.
# Sorted names, fixed owner and time, gzip without a timestamp: the same files give the same archive.
set -euo pipefail
[[ $# -eq 2 ]] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
model=${1%/} archive=$2
here="$(cd "$(dirname "$0")" && pwd)"
files=(config.json generation_config.json model.safetensors tokenizer.model tokenizer_config.json train_log.json
       eval.json kangaroo-adapter/config.json kangaroo-adapter/model.safetensors kangaroo-adapter/train_log.json)
missing=()
for f in "${files[@]}"; do [[ -f $model/$f ]] || missing+=("$f"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "pack_model.sh: $model lacks: ${missing[*]}" >&2
  exit 2
fi

name=$(basename "$model")
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/$name/kangaroo-adapter"
for f in "${files[@]}"; do cp "$model/$f" "$staging/$name/$f"; done
"${PYTHON:-python3}" "$here/figures.py" "$model" > "$staging/$name/FIGURES.md"
touch -d @0 "$staging/$name" "$staging/$name/kangaroo-adapter" "$staging/$name"/* "$staging/$name"/kangaroo-adapter/*
mkdir -p "$(dirname "$archive")"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$staging" -cf - "$name" | gzip -n -9 > "$archive"
tar -tvzf "$archive"
echo "$(stat -c %s "$archive") bytes, sha256 $(sha256sum "$archive" | cut -d' ' -f1): $archive"
