#!/usr/bin/env bash
# Packs what tests/gpu/run.sh needs on the GPU machine into .device/ (run here, from the repository root):
# ../shared/device/prepare.sh for the CLI and the test project, minus their copies of the demo model — the working tree
# carries models/demo once and run.sh puts it back next to both there, which keeps what is sent under the device
# tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
../shared/device/prepare.sh src/Kangaroo.Cli/Kangaroo.Cli.csproj tests/Kangaroo.Tests/Kangaroo.Tests.csproj
rm -rf .device/Kangaroo.Tests/models .device/Kangaroo.Cli/models
du -sh .device
