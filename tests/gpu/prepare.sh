#!/usr/bin/env bash
# Packs what the GPU machine runs into .device/ (run here, from the repository root): ../shared/device/prepare.sh for the
# CLI, the test project and the serving load client, with the ASP.NET Core runtime (the CLI's `serve` and the server
# tests run on it); each program xz-compressed (NAME.tar.xz) and without its copy of the demo model — the working tree
# carries models/demo once. tests/gpu/unpack.sh unpacks them there and puts the model back next to each.
# With --microbench also the BenchmarkDotNet microbenchmarks (for `tests/gpu/run.sh microbench`): the tests are left
# out then, so that everything sent stays under the device tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
programs=(src/Kangaroo.Cli/Kangaroo.Cli.csproj tests/Kangaroo.Tests/Kangaroo.Tests.csproj bench/Kangaroo.LoadBench/Kangaroo.LoadBench.csproj)
[[ ${1:-} == --microbench ]] && programs=(src/Kangaroo.Cli/Kangaroo.Cli.csproj bench/Kangaroo.Bench/Kangaroo.Bench.csproj)
rm -f .device/Kangaroo.*.tar.xz
../shared/device/prepare.sh --aspnet "${programs[@]}"
for project in "${programs[@]}"; do
  program=$(basename "$project" .csproj)
  rm -rf ".device/$program/models"
  tar cJf ".device/$program.tar.xz" -C ".device/$program" .
  rm -rf ".device/$program"
done
du -sh .device
