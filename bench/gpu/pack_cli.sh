#!/usr/bin/env bash
# Packs the CLI as built at a git revision into .device/old-cli.tar.xz (without the demo model), for bench/gpu/compare.sh.
#   bash bench/gpu/pack_cli.sh REV
set -euo pipefail
rev=${1:?usage: pack_cli.sh REV}
root=$(git rev-parse --show-toplevel)
cd "$root"
work=$(mktemp -d)
trap 'git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/tree" "$rev"
dotnet publish "$work/tree/src/Kangaroo.Cli/Kangaroo.Cli.csproj" -c Release -o "$work/cli" > "$work/publish.log" 2>&1 || { tail -20 "$work/publish.log"; exit 1; }
rm -rf "$work/cli/models"
mkdir -p .device
tar cJf .device/old-cli.tar.xz -C "$work/cli" .
echo "packed $(git rev-parse --short "$rev") as .device/old-cli.tar.xz ($(du -h .device/old-cli.tar.xz | cut -f1))"
