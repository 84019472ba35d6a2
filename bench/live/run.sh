#!/usr/bin/env bash
# Live snapshot and live merge benchmarks (docs/benchmarks/live.md): strata serve against
# qemu-storage-daemon on the same files, in the same run, with fio as the guest over NBD.
# Builds in Release, then runs every benchmark, or only the one named first:
#   bench/live/run.sh [snapshot-pause|merge-speed|merge-load|snapshot-cost|bitmap-cost|bitmap-memory|backup|backup-live|backup-create|freeze-window] [options]
# freeze-window boots the test guest of guest/ (docs/guest-vm.md; needs qemu-system-x86, e2fsprogs, cpio).
# Options pass through: --dir DIR (default /dev/shm), --runs N (default 3), --quick (a smoke run,
# not a measurement), --out FILE, --seed N, --merge-timeout S (default 120), --phase S (default 3),
# --strata PATH (another strata binary; by default the one ./strata builds, as users run it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for tool in fio qemu-img qemu-io qemu-storage-daemon; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (Debian: fio qemu-utils qemu-system-common)" >&2; exit 1; }
done
fio --enghelp=nbd >/dev/null 2>&1 || { echo "run.sh: this fio has no nbd engine (Debian's fio has it)" >&2; exit 1; }
bench=live
case "${1:-}" in
    snapshot-pause|merge-speed|merge-load|snapshot-cost|bitmap-cost|bitmap-memory|backup|backup-live|backup-create|freeze-window|live) bench="$1"; shift ;;
esac
echo "building strata and the benchmark (Release)..." >&2
"$root/strata" --version >/dev/null
dotnet build "$root/bench/Strata.Bench/Strata.Bench.csproj" -c Release -nologo -v quiet >/dev/null
exec dotnet "$root/bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll" "$bench" --strata "$root/artifacts/cli/strata" "$@"
