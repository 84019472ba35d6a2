#!/usr/bin/env bash
# Builds the benchmark in Release and runs `strata img bench` (the strata that ./strata builds, as
# users run it) against `qemu-img bench` side by side. Options pass through: --dir DIR (default
# /dev/shm; /var/tmp with --cache none), --runs N, --size BYTES, --quick, --out FILE, --strata PATH,
# --cache writeback|none (none: both tools get -t none, O_DIRECT; put the images on a disk file
# system, not tmpfs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v qemu-img >/dev/null || { echo "run.sh: qemu-img is missing (Debian: qemu-utils)" >&2; exit 1; }
"$root/strata" --version >/dev/null
dotnet build "$root/bench/Strata.Bench/Strata.Bench.csproj" -c Release -nologo -v quiet
exec dotnet "$root/bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll" img --strata "$root/artifacts/cli/strata" "$@"
