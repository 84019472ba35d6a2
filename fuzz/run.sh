#!/usr/bin/env bash
# Fuzzes one target with afl-fuzz for a given time, then prints executions, paths, crashes and hangs.
#
#   fuzz/run.sh [-c CONFIGURATION] [--no-build] [--build-dir DIR] [--findings DIR] TARGET SECONDS
#
# TARGET is qcow2, qcow2-read, nbd or qmp; its inputs are in the folder named by TARGET up to its
# first '-'. The driver is built (Release unless -c says otherwise; not at all with --no-build),
# copied to the build folder and its Strata assemblies instrumented with the sharpfuzz tool; a build
# folder that already holds an instrumented copy is reused as it is (delete it to rebuild). afl-fuzz
# starts from the seed corpus and writes its findings to a temporary folder unless --findings names
# one. Inputs are reproduced with the driver as built, uninstrumented.
# Exit status: 0 when nothing was found, 3 when afl saved crashes or hangs (listed at the end).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

usage() {
    sed -n '4p' "${BASH_SOURCE[0]}" | sed 's/^#  */usage: /' >&2
    exit 2
}

build=1 build_dir="" findings="" configuration=Release
while (( $# > 2 )); do
    case "$1" in
        -c) configuration="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --build-dir) build_dir="$2"; shift 2 ;;
        --findings) findings="$2"; shift 2 ;;
        *) usage ;;
    esac
done
(( $# == 2 )) || usage
target="$1" seconds="$2"
folder="$here/${target%%-*}"
[[ -d "$folder/corpus" ]] || { echo "run.sh: no target '$target' (qcow2, qcow2-read, nbd, qmp)" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+$ ]] || usage
command -v afl-fuzz >/dev/null || { echo "run.sh: afl-fuzz is missing (Debian package afl++)" >&2; exit 2; }

build_dir="${build_dir:-$(mktemp -d)}"
findings="${findings:-$(mktemp -d)}"
mkdir -p "$findings"
output="$here/Strata.Fuzz/bin/$configuration/net10.0"

if [[ ! -f "$build_dir/.instrumented" ]]; then
    if (( build )); then
        dotnet build "$here/Strata.Fuzz/Strata.Fuzz.csproj" -c "$configuration" -nologo -v quiet >/dev/null
    fi
    [[ -f "$output/Strata.Fuzz.dll" ]] || { echo "run.sh: $output holds no build of Strata.Fuzz" >&2; exit 2; }
    mkdir -p "$build_dir"
    cp -r "$output/." "$build_dir/"
    (cd "$root" && dotnet tool restore >/dev/null)
    # Only the code under test reports coverage; the driver, the test kit and libraries stay as built.
    for assembly in Strata.Block Strata.Formats Strata.Nbd Strata.Daemon; do
        (cd "$root" && dotnet sharpfuzz "$build_dir/$assembly.dll")
    done
    touch "$build_dir/.instrumented"
fi

dictionary=()
[[ -f "$folder/dict" ]] && dictionary=(-x "$folder/dict")

# afl-fuzz cannot change the core pattern or CPU governor on a shared host; nor should it pin a core.
# The driver is dotnet, which afl cannot see instrumented: SharpFuzz's fork server speaks for it.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_SKIP_BIN_CHECK=1
export AFL_NO_UI=1 AFL_FORKSRV_INIT_TMOUT=60000
# Trimming cuts inputs short, which for qcow2 mostly means a damaged refcount table and a hang per try.
export AFL_DISABLE_TRIM=1
# Each driver process first runs the seeds, so the inputs afl times never pay for compiling the code.
export STRATA_FUZZ_WARM_UP="$folder/corpus"
ulimit -c 0
status=0
# -t above the driver's own bounds (10 s of wall time, 1 s to unwind): the driver ends a hang and names it;
# -V ends the run.
timeout --signal=INT --kill-after=30 $(( seconds + 120 )) \
    afl-fuzz -i "$folder/corpus" -o "$findings/afl" -t 20000 -m none -V "$seconds" "${dictionary[@]}" \
    -- dotnet "$build_dir/Strata.Fuzz.dll" "$target" >"$findings/afl.log" 2>&1 || status=$?

stats="$findings/afl/default/fuzzer_stats"
if [[ ! -f "$stats" ]]; then
    echo "run.sh: afl-fuzz did not start (status $status); its log:" >&2
    tail -n 30 "$findings/afl.log" >&2
    exit 2
fi

stat_of() { awk -F' *: *' -v key="$1" '$1 == key { print $2 }' "$stats"; }
crashes="$(stat_of saved_crashes)" hangs="$(stat_of saved_hangs)"
echo "$target: $(stat_of execs_done) executions, $(stat_of corpus_count) paths, ${crashes} crashes, ${hangs} hangs in $(stat_of run_time) s"
echo "findings: $findings/afl/default"
found=0
for input in "$findings"/afl/default/crashes/id:* "$findings"/afl/default/hangs/id:*; do
    [[ -f "$input" ]] || continue
    if (( found < 20 )); then
        echo "  $input"
    fi
    found=$(( found + 1 ))
done
if (( found > 20 )); then
    echo "  ... and $(( found - 20 )) more"
fi
if (( found )); then
    echo "reproduce: dotnet $output/Strata.Fuzz.dll $target INPUT"
    exit 3
fi
