#!/usr/bin/env bash
# Packs what the GPU machine runs into .device/ (run here, from the repository root): ../shared/device/prepare.sh for the
# CLI and the test project, plus the BenchmarkDotNet microbenchmarks; each program xz-compressed (NAME.tar.xz) and
# without its copy of the demo model — the working tree carries models/demo once. tests/gpu/run.sh unpacks them there
# and puts the model back next to each. All of it stays under the device tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
../shared/device/prepare.sh src/Kangaroo.Cli/Kangaroo.Cli.csproj tests/Kangaroo.Tests/Kangaroo.Tests.csproj bench/Kangaroo.Bench/Kangaroo.Bench.csproj
for program in Kangaroo.Cli Kangaroo.Tests Kangaroo.Bench; do
  rm -rf ".device/$program/models"
  tar cJf ".device/$program.tar.xz" -C ".device/$program" .
  rm -rf ".device/$program"
done
du -sh .device
