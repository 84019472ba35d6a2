#!/usr/bin/env bash
# Side-by-side RBD benchmark (issue 15, docs/benchmarks/rbd.md): fio through `strata serve` on an RBD
# image against qemu-storage-daemon's rbd driver exporting the same image over NBD, and against fio's
# own rbd engine (librbd called directly: the ceiling any server on librbd can reach). Servers run
# alternately in one session, each run starting with the next server in turn, so a change in the
# machine's load falls on all of them; the table gives medians per case, strata's ratio to each peer
# taken within each run, and the band of those ratios over the runs.
#
# usage: bench/rbd/run.sh [--env FILE] [--runs N] [--runtime SECONDS] [--ramp SECONDS] [--size SIZE]
#                         [--servers LIST] [--strata PATH] [--strata-env 'VAR=VALUE ...'] [--cache MODE] [--latency]
#                         [--floor] [--quick] [--out FILE]
#   --env      the env file of a running cluster (ceph/cluster.sh start DIR writes DIR/env); by default
#              a throwaway cluster is started in a temporary folder and stopped at the end
#   --servers  a comma-separated subset of strata,qsd,fio-rbd (default all three)
#   --strata   another strata binary; by default the one ./strata builds, as users run it
#   --strata-env  one more column, "strata-env": the same strata with these environment variables (a
#              runtime setting to try, say DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0), alternated
#              with the others, with its ratios to the peers
#   --cache    librbd's cache, the same on every side (docs/benchmarks/rbd.md, "Cache modes"):
#              writeback (default): the servers' default cache mode (librbd's cache on), each server
#                sent one 4 KiB write and an NBD flush before the cases, as a guest's file system does
#                when it mounts, which ends librbd's write-through start (QEMU drops a flush that follows
#                no write); fio's rbd engine flushes once at its start itself
#              writethrough: the cache on but never past write-through: the servers get no flush, fio's
#                rbd engine a ceph.conf with rbd_cache_max_dirty = 0 (its own first flush changes nothing)
#              none: librbd's cache off: strata cache=none, qsd cache.direct=on, fio --direct=1 (its rbd
#                engine then sets rbd_cache=false), as QEMU maps cache.direct=on
#   --latency  one more table: each request's mean latency as fio saw it against librbd's own
#              (its rd_latency/wr_latency counters, read through an admin socket per side): what is
#              left is the path outside librbd (the server, its socket and fio's nbd engine, or fio's
#              rbd engine alone); and the CPU time per request of fio, the server, the OSD and the
#              whole machine (/proc: what a request costs on 2 shared cores)
#   --floor    one more column, "nbd-floor": nbdkit's null plugin (no storage at all: reads are zeroes,
#              writes are dropped) behind the same fio nbd engine and socket. Its latency is what the NBD
#              round trip alone costs on this machine with nbdkit's threads, which any NBD server on
#              librbd adds to librbd's own latency; with --latency a last table sets strata's time
#              outside librbd against it at queue depth 1
#   --size     the RBD image's size (default 1G; a memstore OSD holds about twice that in memory)
#   --quick    1 run of 2 s per case on a 256M image (a smoke run, not a measurement)
# Every case works on one image, written whole first so that reads return data, not absent objects.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
env_file=""; strata_env=""; cache=writeback; latency=""; floor=""; runs=3; runtime=5; ramp=0; size=1G; out=""; only=",strata,qsd,fio-rbd,"; strata=""
while (( $# )); do
    case "$1" in
        --env) env_file="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --runtime) runtime="$2"; shift 2 ;;
        --ramp) ramp="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --servers) only=",$2,"; shift 2 ;;
        --strata) strata="$2"; shift 2
            [[ -x "$strata" ]] || { echo "run.sh: --strata: $strata is not an executable" >&2; exit 2; } ;;
        --strata-env) strata_env="$2"; shift 2 ;;
        --cache) cache="$2"; shift 2
            [[ "$cache" =~ ^(writeback|writethrough|none)$ ]] || { echo "run.sh: --cache: $cache is not writeback, writethrough or none" >&2; exit 2; } ;;
        --latency) latency=1; shift ;;
        --floor) floor=1; shift ;;
        --quick) runs=1; runtime=2; size=256M; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for tool in fio rbd qemu-storage-daemon qemu-io python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (Debian: fio ceph-common qemu-system-common qemu-block-extra qemu-utils)" >&2; exit 1; }
done
fio --enghelp=rbd >/dev/null 2>&1 || { echo "run.sh: this fio has no rbd engine (Debian's fio has it)" >&2; exit 1; }
fio --enghelp=nbd >/dev/null 2>&1 || { echo "run.sh: this fio has no nbd engine (Debian's fio has it)" >&2; exit 1; }
servers=()
for server in strata qsd fio-rbd; do [[ "$only" == *",$server,"* ]] && servers+=("$server"); done
if [[ -n "$strata_env" ]]; then servers+=(strata-env); fi
if [[ -n "$floor" ]]; then
    command -v nbdkit >/dev/null || { echo "run.sh: --floor needs nbdkit (Debian: nbdkit)" >&2; exit 1; }
    servers+=(nbd-floor)
fi
(( ${#servers[@]} )) || { echo "run.sh: --servers names none of strata,qsd,fio-rbd" >&2; exit 2; }

work="$(mktemp -d /tmp/strata-rbd-bench.XXXXXX)"
pids=()
cluster=""
image=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -n "$image" ]]; then rbd -c "$CEPH_CONF" rm --no-progress "$pool/$image" >/dev/null 2>&1 || true; fi
    if [[ -n "$cluster" ]]; then "$root/ceph/cluster.sh" stop "$cluster" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "$env_file" ]]; then
    cluster="$work/ceph"
    echo "starting a throwaway Ceph cluster in $cluster..." >&2
    "$root/ceph/cluster.sh" start "$cluster" >&2
    env_file="$cluster/env"
fi
[[ -f "$env_file" ]] || { echo "run.sh: --env: $env_file is no file" >&2; exit 2; }
CEPH_CONF="$(sed -n 's/^CEPH_CONF=//p' "$env_file")"
pool="$(sed -n 's/^STRATA_RBD_POOL=//p' "$env_file")"
[[ -n "$CEPH_CONF" && -n "$pool" ]] || { echo "run.sh: $env_file sets no CEPH_CONF or STRATA_RBD_POOL: not a ceph/cluster.sh env file" >&2; exit 2; }
export CEPH_CONF

if [[ " ${servers[*]} " == *" strata"* && -z "$strata" ]]; then
    echo "building strata..." >&2
    "$root/strata" --version >/dev/null
    strata="$root/artifacts/cli/strata"
fi

image="bench$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
rbd -c "$CEPH_CONF" create --size "$size" "$pool/$image"
fio_rbd=(--ioengine=rbd --clientname=admin --pool="$pool" --rbdname="$image")
echo "writing the image $pool/$image ($size) whole..." >&2
fio --name=fill "${fio_rbd[@]}" --rw=write --bs=1M --iodepth=8 --size="$size" --refill_buffers >/dev/null

# The cache mode's settings for each side (see --cache).
strata_cache=""; qsd_cache=""; fio_rbd_options=(); fio_rbd_conf="$CEPH_CONF"
[[ "$cache" != none ]] || { strata_cache=",cache=none"; qsd_cache=",cache.direct=on"; fio_rbd_options=(--direct=1); }

side_conf() { # side -> the ceph.conf that side reads: the cluster's, plus its own settings if it has any
    local -a own=()
    [[ "$1" != fio-rbd || "$cache" != writethrough ]] || own+=("rbd cache max dirty = 0")
    [[ -z "$latency" ]] || own+=("admin socket = $work/$1.asok")
    if (( ${#own[@]} == 0 )); then echo "$CEPH_CONF"; return; fi
    # client.admin, everyone's user here: a section of its own wins over [client] and [global].
    { cat "$CEPH_CONF"; printf '\n[client.admin]\n'; printf '%s\n' "${own[@]}"; } > "$work/$1.conf"
    echo "$work/$1.conf"
}

librbd_latency() { # dump rw -> librbd's mean latency in µs (reads or writes) in a perf dump of its admin socket
    [[ -s "$1" ]] || { echo nan; return; }
    python3 -c '
import json, sys
counters = next(v for k, v in json.load(sys.stdin).items() if k.startswith("librbd-"))
c = counters["rd_latency" if "read" in sys.argv[1] else "wr_latency"]
print("%.1f" % (c["sum"] / c["avgcount"] * 1e6 if c["avgcount"] else 0))' "$2" < "$1"
}
latencies="$work/latency.tsv"
osd_pid="$(cat "$(dirname "$CEPH_CONF")/run/osd.0.pid" 2>/dev/null || echo 0)"

cpu_snapshot() { # server-pid -> seconds, the machine's busy CPU ticks, the server's and the OSD's
    local proc
    printf '%s ' "$(date +%s.%N)"
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat | tr '\n' ' '
    for proc in "$1" "$osd_pid"; do
        if [[ -r "/proc/$proc/stat" ]]; then sed 's/.*) //' "/proc/$proc/stat" | awk '{printf "%d ", $12 + $13}'; else printf '0 '; fi
    done
    echo
}

cpu_per_request() { # before after iops -> µs of CPU per request: the machine, the server, the OSD
    python3 -c '
import os, sys
before, after = [list(map(float, a.split())) for a in sys.argv[1:3]]
requests = float(sys.argv[3]) * (after[0] - before[0])
tick = os.sysconf("SC_CLK_TCK")
print("\t".join("%.0f" % ((after[i] - before[i]) / tick * 1e6 / requests) for i in (1, 2, 3)))' "$1" "$2" "$3"
}
: > "$latencies"

cases=("randread 4k 1" "randread 4k 32" "randwrite 4k 1" "randwrite 4k 32" "read 1M 8" "write 1M 8")
results="$work/results.tsv"
: > "$results"

start_server() { # name -> sets uri, pid
    local name="$1" sock="$work/$1.sock"
    rm -f "$sock"
    case "$name" in
        strata|strata-env)
            local -a environment=()
            [[ "$name" == strata ]] || read -r -a environment <<<"$strata_env"
            env "${environment[@]}" "$strata" serve --drive "id=disk,file=rbd:$pool/$image:conf=$(side_conf "$name"),format=raw$strata_cache" \
                    --nbd "unix:$sock" --qmp "unix:$work/qmp.sock" >"$work/$name.log" 2>&1 & ;;
        qsd) qemu-storage-daemon --blockdev "driver=rbd,node-name=r,pool=$pool,image=$image,conf=$(side_conf "$name")$qsd_cache" \
                --nbd-server "addr.type=unix,addr.path=$sock" \
                --export "type=nbd,id=e,node-name=r,name=disk,writable=on" >"$work/$name.log" 2>&1 & ;;
        nbd-floor) nbdkit -f -U "$sock" null size="$size" >"$work/$name.log" 2>&1 & ;;
    esac
    pid=$!
    pids+=("$pid")
    uri="nbd+unix:///disk?socket=$sock"
    for _ in $(seq 400); do
        if [[ -S "$sock" ]]; then
            # The guest's first flush (--cache writeback): librbd leaves write-through for good. One
            # write goes first: QEMU drops a flush that follows no write (bdrv_co_flush compares
            # write_gen with flushed_gen), so a lone flush never reached QSD's librbd.
            [[ "$cache" != writeback ]] || qemu-io -f raw -c "write -P 0x5a 0 4k" -c flush "$uri" >/dev/null
            return
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "run.sh: $name did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

fio_case() { # rw bs qd fio-options... -> prints MiB/s, IOPS, the mean latency in µs and fio's CPU µs per request
    local rw="$1" bs="$2" qd="$3"; shift 3
    CEPH_CONF="$fio_rbd_conf" fio --name=b --rw="$rw" --bs="$bs" --iodepth="$qd" --size="$size" --ramp_time="$ramp" --runtime="$runtime" --time_based \
        --output-format=json "$@" 2>"$work/fio.err" | sed -n '/^{/,$p' | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
if j["error"]: sys.exit("fio failed: error %d" % j["error"])
d = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
print("%.1f\t%.0f\t%.1f\t%.0f" % (d["bw_bytes"] / 1048576, d["iops"], d["lat_ns"]["mean"] / 1000,
                               (j["usr_cpu"] + j["sys_cpu"]) / 100 / d["iops"] * 1e6))' || { cat "$work/fio.err" >&2; exit 1; }
}

for run in $(seq "$runs"); do
    n=${#servers[@]}
    for (( k = 0; k < n; k++ )); do
        server="${servers[$(( (run - 1 + k) % n ))]}"
        echo "run $run/$runs: $server" >&2
        if [[ "$server" == fio-rbd ]]; then
            pid=0
            fio_rbd_conf="$(side_conf fio-rbd)"
            target=("${fio_rbd[@]}" "${fio_rbd_options[@]}")
        else
            start_server "$server"
            target=(--ioengine=nbd --uri="$uri")
        fi
        for c in "${cases[@]}"; do
            read -r rw bs qd <<<"$c"
            asok="$work/$server.asok" dump="$work/perf.json"
            if [[ -n "$latency" && "$server" == fio-rbd ]]; then
                # fio's librbd lives as long as the case: its counters are read near the case's end.
                rm -f "$dump"
                # fio connects twice (setup, then the job): a second before the job's end, it is the job's.
                (for _ in $(seq 200); do [[ -S "$asok" ]] && break; sleep 0.05; done
                 sleep "$(python3 -c "print(max($ramp + $runtime - 1, 0.5))")"
                 ceph --admin-daemon "$asok" perf dump > "$dump" 2>/dev/null || rm -f "$dump") &
                dumper=$!
            elif [[ -n "$latency" && "$server" != nbd-floor ]]; then
                ceph --admin-daemon "$asok" perf reset all >/dev/null
            fi
            before="$(cpu_snapshot "${pid:-0}")"
            read -r mib iops lat fio_cpu < <(fio_case "$rw" "$bs" "$qd" "${target[@]}")
            after="$(cpu_snapshot "${pid:-0}")"
            [[ -n "${lat:-}" ]] || { echo "run.sh: fio failed on $server ($c)" >&2; exit 1; }
            printf '%s\t%s\t%s\t%s\t%s\n' "$rw $bs QD$qd" "$server" "$run" "$mib" "$iops" >> "$results"
            if [[ -n "$latency" ]]; then
                if [[ "$server" == fio-rbd ]]; then wait "$dumper"
                elif [[ "$server" == nbd-floor ]]; then rm -f "$dump"  # no librbd in it: nothing inside librbd
                else ceph --admin-daemon "$asok" perf dump > "$dump"; fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rw $bs QD$qd" "$server" "$run" "$lat" "$(librbd_latency "$dump" "$rw")" \
                    "$fio_cpu" "$(cpu_per_request "$before" "$after" "$iops")" >> "$latencies"
            fi
        done
        if [[ "$server" != fio-rbd ]]; then
            rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
            printf '%s\t%s\t%s\t%s\t0\n' "peak RSS (MiB)" "$server" "$run" "$(( rss / 1024 ))" >> "$results"
            kill "$pid"; wait "$pid" 2>/dev/null || true
        fi
    done
done

table="$(python3 "$here/table.py" "$results" "$runs" "$runtime" "$ramp" "$size" "$(uptime)" "$strata_env" "$cache" "$latencies")"
echo "$table"
if [[ -n "$out" ]]; then echo "$table" > "$out"; fi
