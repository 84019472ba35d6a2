#!/usr/bin/env bash
# Side-by-side NBD benchmark (issue 3, item 6): strata serve against qemu-storage-daemon, qemu-nbd and
# nbdkit's file plugin, exporting the same image over a unix socket, driven by fio --ioengine=nbd.
# Servers run alternately in one session (run 1: every server, run 2: every server, ...); the table
# gives medians per row and strata's ratio to each peer. The direct-file limit (fio io_uring on the
# same file) is the ceiling.
#
# usage: bench/nbd/run.sh [--dir DIR] [--runs N] [--runtime SECONDS] [--ramp SECONDS] [--size SIZE] [--quick] [--out FILE]
#                         [--cache writeback|none] [--strata-before PATH] [--servers LIST] [--formats LIST]
#   --dir      where the images live; default a tmpfs folder (/dev/shm), as disk-backed runs swing by ±40%
#   --ramp     seconds each case runs before fio starts counting (default 0); the connection is new per case
#   --strata-before  another strata binary (an older build, say) served as one more column,
#              "strata-before", alternated with the others, with strata's ratio to it
#   --servers  a comma-separated subset of strata,strata-before,qsd,qemu-nbd,nbdkit,file (default all;
#              file is fio with io_uring on the image itself, the ceiling)
#   --formats  raw, qcow2 or raw,qcow2 (default)
#   --quick    1 run of 2 s per case on a 256M image (a smoke run, not a measurement)
#   --cache    writeback (default: every server through the page cache) or none: O_DIRECT for every
#              server that has it (strata cache=none, qemu-storage-daemon cache.direct=on, qemu-nbd
#              --cache=none, fio --direct=1); nbdkit's cache=none is only a page-cache hint, so it is
#              left out. The default folder is then /var/tmp/strata-nbd-bench: tmpfs keeps data in
#              memory whatever the flag, so use a disk file system.
# nbdkit is optional: without it its column says n/a.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir=""; runs=3; runtime=5; ramp=0; size=1G; out=""; cache=writeback; before=""; only=""; formats="raw qcow2"
while (( $# )); do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        --cache) cache="$2"; shift 2
            [[ "$cache" == writeback || "$cache" == none ]] || { echo "run.sh: --cache takes writeback or none" >&2; exit 2; } ;;
        --runs) runs="$2"; shift 2 ;;
        --runtime) runtime="$2"; shift 2 ;;
        --ramp) ramp="$2"; shift 2 ;;
        --strata-before) before="$2"; shift 2
            [[ -x "$before" ]] || { echo "run.sh: --strata-before: $before is not an executable" >&2; exit 2; } ;;
        --servers) only=",$2,"; shift 2 ;;
        --formats) formats="${2//,/ }"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --quick) runs=1; runtime=2; size=256M; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for tool in fio qemu-img qemu-storage-daemon qemu-nbd nbdcopy; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install fio qemu-utils qemu-system-common libnbd-bin)" >&2; exit 1; }
done
servers=(strata)
if [[ -n "$before" ]]; then servers+=(strata-before); fi
servers+=(qsd qemu-nbd)
if [[ "$cache" == writeback ]]; then
    if command -v nbdkit >/dev/null; then servers+=(nbdkit); else echo "run.sh: nbdkit is missing (apt-get install nbdkit): its column is left out" >&2; fi
fi
wanted() { [[ -z "$only" || "$only" == *",$1,"* ]]; }
selected=()
for server in "${servers[@]}"; do if wanted "$server"; then selected+=("$server"); fi; done
servers=("${selected[@]}")
if [[ -z "$dir" ]]; then
    if [[ "$cache" == none ]]; then dir=/var/tmp/strata-nbd-bench; else dir=/dev/shm/strata-nbd-bench; fi
fi

mkdir -p "$dir"
if [[ "$cache" == none && "$(stat -f -c %T "$dir")" == tmpfs ]]; then
    echo "run.sh: warning: $dir is tmpfs, which keeps data in memory even with O_DIRECT; the numbers will measure no disk" >&2
fi
# Per server: the option that bypasses the page cache, or keeps it.
if [[ "$cache" == none ]]; then
    strata_cache=",cache=none"; qsd_direct=on; qemu_nbd_cache=none; fio_direct=1
else
    strata_cache=""; qsd_direct=off; qemu_nbd_cache=writeback; fio_direct=0
fi
work="$(mktemp -d "$dir/run.XXXXXX")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo "building strata..." >&2
"$root/strata" --version >/dev/null
strata="$root/artifacts/cli/strata"

# Fully written images, so every server reads data (no hole shortcuts).
fio --name=fill --filename="$work/disk.raw" --size="$size" --rw=write --bs=1M --ioengine=psync --refill_buffers >/dev/null
if [[ " $formats " == *" qcow2 "* ]]; then qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$work/disk.qcow2"; fi

cases=("randread 4k 1" "randread 4k 32" "randwrite 4k 1" "randwrite 4k 32" "read 1M 1" "read 1M 32" "write 1M 1" "write 1M 32")
results="$work/results.tsv"
: > "$results"

start_server() { # name format -> sets uri, pid
    local name="$1" format="$2" image="$work/disk.$2" sock="$work/$1.sock"
    rm -f "$sock"
    case "$name" in
        strata|strata-before)
            local binary="$strata"
            [[ "$name" == strata ]] || binary="$before"
            "$binary" serve --drive "id=disk,file=$image,format=$format$strata_cache" --nbd "unix:$sock" --qmp "unix:$work/qmp.sock" >/dev/null 2>&1 & ;;
        qsd) qemu-storage-daemon --blockdev "driver=file,node-name=f,filename=$image,aio=threads,cache.direct=$qsd_direct" \
                --blockdev "driver=$format,node-name=fmt,file=f" --nbd-server "addr.type=unix,addr.path=$sock" \
                --export "type=nbd,id=e,node-name=fmt,name=disk,writable=on" >/dev/null 2>&1 & ;;
        qemu-nbd) qemu-nbd -f "$format" -x disk --cache="$qemu_nbd_cache" --aio=threads -t -k "$sock" --shared=8 "$image" >/dev/null 2>&1 & ;;
        nbdkit) nbdkit -f --unix "$sock" --exportname=disk file "$image" >/dev/null 2>&1 & ;;
    esac
    pid=$!
    pids+=("$pid")
    uri="nbd+unix:///disk?socket=$sock"
    for _ in $(seq 200); do [[ -S "$sock" ]] && return; sleep 0.05; done
    echo "run.sh: $name did not start" >&2; exit 1
}

fio_case() { # rw bs qd target... -> prints MiB/s and IOPS
    local rw="$1" bs="$2" qd="$3"; shift 3
    fio --name=b --rw="$rw" --bs="$bs" --iodepth="$qd" --size="$size" --ramp_time="$ramp" --runtime="$runtime" --time_based --group_reporting \
        --output-format=json "$@" 2>/dev/null | sed -n '/^{/,$p' | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
print("%.1f\t%.0f" % (d["bw_bytes"] / 1048576, d["iops"]))'
}

for run in $(seq "$runs"); do
    for format in $formats; do
        for server in "${servers[@]}"; do
            [[ "$server" == nbdkit && "$format" == qcow2 ]] && continue  # the file plugin serves raw only
            echo "run $run/$runs: $server $format" >&2
            start_server "$server" "$format"
            for c in "${cases[@]}"; do
                read -r rw bs qd <<<"$c"
                printf '%s\t%s\t%s\t%s\t%s\n' "$format" "$rw $bs QD$qd" "$server" "$run" "$(fio_case "$rw" "$bs" "$qd" --ioengine=nbd --uri="$uri")" >> "$results"
            done
            t0=$(date +%s.%N)
            nbdcopy "$uri" null: 
            t1=$(date +%s.%N)
            printf '%s\t%s\t%s\t%s\t%s\t0\n' "$format" "nbdcopy whole disk" "$server" "$run" \
                "$(/usr/bin/python3 -c "import sys; print('%.1f' % ($(stat -c %s "$work/disk.raw") / 1048576 / ($t1 - $t0)))")" >> "$results"
            rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
            printf '%s\t%s\t%s\t%s\t%s\t0\n' "$format" "peak RSS (MiB)" "$server" "$run" "$(( rss / 1024 ))" >> "$results"
            kill "$pid"; wait "$pid" 2>/dev/null || true
        done
        if [[ "$format" == raw ]] && wanted file; then
            echo "run $run/$runs: direct file (io_uring)" >&2
            for c in "${cases[@]}"; do
                read -r rw bs qd <<<"$c"
                printf '%s\t%s\t%s\t%s\t%s\n' raw "$rw $bs QD$qd" "file io_uring" "$run" "$(fio_case "$rw" "$bs" "$qd" --ioengine=io_uring --direct="$fio_direct" --filename="$work/disk.raw")" >> "$results"
            done
        fi
    done
done

table="$(/usr/bin/python3 - "$results" "$runs" "$runtime" "$ramp" "$size" "$cache" "$dir" "$(uptime)" <<'PY'
import sys, statistics, collections, platform, os
path, runs, runtime, ramp, size, cache, folder, load = sys.argv[1:9]
rows = collections.OrderedDict()
for line in open(path):
    fmt, case, server, run, mib, iops = line.rstrip("\n").split("\t")
    rows.setdefault((fmt, case), collections.defaultdict(dict))[server][run] = float(mib)
present = {server for by in rows.values() for server in by}
servers = [s for s in ["strata", "strata-before", "qsd", "qemu-nbd", "nbdkit", "file io_uring"] if s in present]
peers = [p for p in ["nbdkit", "qsd", "strata-before"] if p in present and "strata" in present]
mode = "O_DIRECT (strata cache=none, qsd cache.direct=on, qemu-nbd --cache=none, fio --direct=1)" if cache == "none" else "page cache"
ramped = f" after a {ramp} s ramp" if float(ramp) > 0 else ""
print(f"runs: {runs} x {runtime} s per case{ramped}, image {size} in {folder}, {os.cpu_count()} CPUs, {mode}; MiB/s (peak RSS in MiB), medians")
print(f"load at the end: {load.strip()}")
print()
# A ratio is taken within each run (the servers of one run saw the same load), then its median and
# its band (lowest and highest run) are shown: the band says how far the machine's noise reaches.
def ratios(by, peer):
    return sorted(by["strata"][r] / by[peer][r] for r in by["strata"] if r in by.get(peer, {}) and by[peer][r] > 0)
def cell(case, values):
    if not values: return "n/a"
    text = f"{statistics.median(values):.2f}x"
    if len(values) > 1: text += f" ({values[0]:.2f}-{values[-1]:.2f})"
    return text + (" (lower is better)" if case.startswith("peak RSS") else "")
print("| image | case | " + " | ".join(servers) + "".join(f" | strata/{p}" for p in peers) + " |")
print("|---|---|" + "---|" * (len(servers) + len(peers)))
for (fmt, case), by in rows.items():
    med = {s: statistics.median(v.values()) for s, v in by.items()}
    cells = [f"{med[s]:.0f}" if s in med else "n/a" for s in servers]
    print(f"| {fmt} | {case} | " + " | ".join(cells) + "".join(f" | {cell(case, ratios(by, p))}" for p in peers) + " |")
PY
)"
echo "$table"
if [[ -n "$out" ]]; then echo "$table" > "$out"; fi
