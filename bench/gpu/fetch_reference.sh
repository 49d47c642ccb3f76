#!/usr/bin/env bash
# Puts the official Kangaroo implementation (github.com/Equationliu/Kangaroo) in bench/gpu/reference/ — ignored by git,
# never committed — so bench/gpu/run.sh can run it as a peer through bench/gpu/reference_shim.py.
#
#   bash bench/gpu/fetch_reference.sh [CLONE]     CLONE: a local clone or bare repository (default: clone from GitHub)
#
# The GPU machine reaches no network: run this here, then send the folder along (run's carry: bench/gpu/reference).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/reference"
source=${1:-https://github.com/Equationliu/Kangaroo.git}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -d $source ]]; then git clone -q "$source" "$tmp/repo"; else git clone -q --depth 1 "$source" "$tmp/repo"; fi
rm -rf "$dest"
mkdir -p "$dest"
# Only the inference code: the package and the evaluation entry point the shim imports.
git -C "$tmp/repo" archive HEAD kangaroo evaluation README.md | tar -x -C "$dest"
git -C "$tmp/repo" rev-parse HEAD > "$dest/COMMIT"
echo "official Kangaroo at commit $(cat "$dest/COMMIT") in $dest"
