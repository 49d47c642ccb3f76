#!/usr/bin/env bash
# Checks what runs without a GPU or transformers, on a small corpus from this machine's own Python:
#   * corpus.py and tokenizer.py (5 MB of training text, vocabulary 2000): exact round trip of the held-out packages,
#     and the same bytes again on a second run (determinism); prompts.py (240 prompts from the held-out files).
#     Held out are standard-library packages that every Python 3 has ($heldout below: about 210 files of 200 B to
#     1 MB, 2.5 MB; one package such as email alone has too few files for 240 prompts), not corpus.py's default
#     (sympy, else huggingface_hub), which a fresh machine lacks;
#   * selftest.py (adapter vs the engine's arithmetic, loss, drafting simulation, schedule) when torch is installed;
#   * every script compiles and answers --help.
# Needs python3 with sentencepiece and numpy (Debian: python3-sentencepiece python3-numpy; python3-torch for the
# unit checks). PYTHON picks the interpreter (default /usr/bin/python3). Scratch files go to a temporary folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py=${PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1
work=$(mktemp -d "${TMPDIR:-/tmp}/kangaroo-train-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Held out: standard-library packages (Debian: email, encodings, importlib in libpython3.X-minimal, asyncio and json in
# libpython3.X-stdlib, both dependencies of python3).
heldout=email,encodings,asyncio,importlib,json
read -r -a roots <<< "$("$py" -c 'import site, sysconfig; print(" ".join(site.getsitepackages() + [sysconfig.get_paths()["stdlib"]]))')"

echo "== syntax and --help"
"$py" -c 'import sys; [compile(open(f, encoding="utf-8").read(), f, "exec") for f in sys.argv[1:]]' "$here"/*.py
for s in corpus tokenizer prompts figures; do "$py" "$here/$s.py" --help > /dev/null; done
if "$py" -c 'import torch' 2> /dev/null; then
  for s in train_base train_adapter evaluate; do "$py" "$here/$s.py" --help > /dev/null; done
fi
bash -n "$here/run_all.sh" "$here/pack_model.sh"

echo "== corpus, tokenizer, prompts (twice: the outputs must be identical)"
for run in 1 2; do
  "$py" "$here/corpus.py" "$work/corpus$run" --max-bytes 5000000 --heldout "$heldout" --roots "${roots[@]}"
  "$py" "$here/tokenizer.py" "$work/corpus$run" "$work/tokenizer$run" --vocab 2000 --parity 100
  "$py" "$here/prompts.py" --corpus "$work/corpus$run" --out "$work/prompts$run.jsonl"
done
for f in corpus{}/train.jsonl corpus{}/heldout.jsonl tokenizer{}/tokenizer.model tokenizer{}/parity.jsonl \
         tokenizer{}/tokenizer_config.json prompts{}.jsonl; do
  cmp "$work/${f//\{\}/1}" "$work/${f//\{\}/2}"
done
echo "identical on both runs"

echo "== unit checks"
if "$py" -c 'import torch' 2> /dev/null; then
  (cd "$here" && "$py" selftest.py)
else
  echo "skipped: torch is not installed for $py"
fi
echo "check_local.sh: all checks passed"
