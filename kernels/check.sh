#!/usr/bin/env bash
# Compiles every kernel to PTX with clang (no GPU, no CUDA toolkit needed), so a broken kernel fails CI, not a GPU run.
# NVRTC compiles the same files at run time; clang_prelude.h declares what NVRTC provides built in.
# Exit status: 0 every kernel compiles, 1 one does not, 3 no clang on PATH (nothing checked; build.cake tells them apart).
# The kernels take their launch constants as -D defines from the launchers that own them; this reads the same
# declarations (`public static readonly KernelDefine Name = new("NAME", 123);`), so each value is written once.
# `check.sh --defines` prints them.
set -euo pipefail
cd "$(dirname "$0")"
defines=$(sed -nE 's/^ *(public |internal )?static readonly KernelDefine [A-Za-z]+ = new\("([A-Z][A-Z0-9_]*)", ([0-9]+)\);.*/-D\2=\3/p' \
  ../src/Kangaroo.Backends.Cuda/Launchers/*.cs)
if [ "${1:-}" = "--defines" ]; then
  echo "$defines"
  exit 0
fi
clang=$(command -v clang-19 || command -v clang-14 || command -v clang || true)
if [ -z "$clang" ]; then
  echo "kernels/check.sh: clang is not installed: none of clang-19, clang-14, clang is on PATH; it compiles the CUDA" \
       "kernels to PTX (no GPU or CUDA toolkit needed). Install it (Debian/Ubuntu: apt-get install clang-14)." >&2
  exit 3
fi
status=0
for f in *.cu; do
  if "$clang" -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_80 -Xclang -target-feature -Xclang +ptx70 -std=c++17 -O2 \
       -include clang_prelude.h $defines -Werror -Wno-unknown-cuda-version -S -o /dev/null "$f"; then
    echo "ok      $f"
  else
    echo "FAILED  $f"; status=1
  fi
done
exit $status
