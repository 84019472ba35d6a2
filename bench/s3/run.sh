#!/usr/bin/env bash
# Backup and restore throughput of a disk to and from an S3 store (the Ceph gateway of
# ceph/cluster.sh), strata against s3cmd moving the same bytes, side by side in one run:
#   strata backup create s3://B/strata-N --image disk.img     vs  s3cmd put disk.img s3://B/s3cmd-N
#   strata backup restore s3://B/strata-N 0 out.img           vs  s3cmd get s3://B/s3cmd-N out.img
# The disk is random data (nothing to skip or compress). Each tool's objects are deleted once it
# has read them back, so the memstore OSD holds one copy at a time (about twice its size in memory:
# on a shared machine a 4 GiB disk may not fit; --size 1G then, and say so). Prints a Markdown table: medians, the min-max band, MiB/s,
# and strata's throughput as a ratio of s3cmd's.
# Options: --size BYTES (default 4G), --runs N (default 3), --dir DIR (the disk, restores and
# strata's staging; default /var/tmp), --env FILE (a running cluster's env file; default: a cluster
# of its own, sized for the disk, stopped at the end), --out FILE (also write the table there).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size=4G runs=3 dir=/var/tmp env_file="" out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --size) size="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --env) env_file="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 1 ;;
    esac
done
for tool in s3cmd qemu-img; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 1; }
done
bytes="$(numfmt --from=iec "$size")"
"$root/strata" --version >/dev/null
strata="$root/artifacts/cli/strata"
work="$(mktemp -d "$dir/strata-s3-bench.XXXXXX")"
cluster=""
cleanup() {
    [[ -z "$cluster" ]] || "$root/ceph/cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
    rm -rf "$work" ${cluster:+"$cluster"}
}
trap cleanup EXIT
if [[ -z "$env_file" ]]; then
    cluster="$(mktemp -d /tmp/strata-s3-bench-ceph.XXXXXX)"
    # memstore keeps about twice what is written in memory; room for one copy of the disk and metadata.
    # (The device size is a cap, not an allocation.)
    STRATA_CEPH_OSD_BYTES=$((bytes * 2 + (1 << 30))) "$root/ceph/cluster.sh" start "$cluster" >/dev/null
    env_file="$cluster/env"
fi
set -a; . "$env_file"; set +a
export TMPDIR="$work" AWS_EC2_METADATA_DISABLED=true
host="${AWS_ENDPOINT_URL#http://}"
s3() { s3cmd --no-ssl --host="$host" --host-bucket="$host" --access_key="$AWS_ACCESS_KEY_ID" --secret_key="$AWS_SECRET_ACCESS_KEY" --config=/dev/null --no-progress "$@"; }
bucket="bench$(head -c 5 /dev/urandom | od -An -tx1 | tr -d ' \n')"
s3 mb "s3://$bucket" >/dev/null

echo "run.sh: writing a $size disk of random data in $work" >&2
head -c "$bytes" /dev/urandom > "$work/disk.img"

now() { date +%s.%N; }
# The gateway frees a deleted object's data only at its garbage collection (hours later by default):
# run it now, or the OSD fills up and the next upload stalls (RGW answers 408).
collect() { radosgw-admin -c "$CEPH_CONF" gc process --include-all >/dev/null 2>&1 || echo "run.sh: radosgw-admin gc process failed" >&2; }
# Runs a command and prints its seconds. A failed attempt (the gateway on a loaded machine can
# answer 408 to a slow request) is reported, counted in the notes and run again, up to twice.
timed() {
    local t0
    for attempt in 1 2 3; do
        t0="$(now)"
        if "$@" >"$work/last.log" 2>&1; then
            echo "$(now) - $t0" | bc -l
            return
        fi
        echo "run.sh: failed (attempt $attempt): $*: $(tail -1 "$work/last.log")" >&2
        echo "$*" >>"$work/failures"
    done
    exit 1
}

declare -A seconds
for ((run = 1; run <= runs; run++)); do
    # One tool's copy in the store at a time: the memstore OSD holds it in memory.
    seconds[strata-backup]+="$(timed "$strata" backup create "s3://$bucket/strata-$run" --image "$work/disk.img") "
    seconds[strata-restore]+="$(timed "$strata" backup restore "s3://$bucket/strata-$run" 0 "$work/out.img") "
    cmp "$work/disk.img" "$work/out.img" || { echo "run.sh: strata's restore differs from the disk" >&2; exit 1; }
    rm -f "$work/out.img"
    s3 del --recursive --force "s3://$bucket/strata-$run/" >/dev/null
    collect
    seconds[s3cmd-put]+="$(timed s3 put "$work/disk.img" "s3://$bucket/s3cmd-$run/disk.img") "
    seconds[s3cmd-get]+="$(timed s3 get "s3://$bucket/s3cmd-$run/disk.img" "$work/out.img") "
    cmp "$work/disk.img" "$work/out.img" || { echo "run.sh: s3cmd's download differs from the disk" >&2; exit 1; }
    rm -f "$work/out.img"
    s3 del --recursive --force "s3://$bucket/s3cmd-$run/" >/dev/null
    collect
    echo "run.sh: run $run of $runs done" >&2
done
s3 rb "s3://$bucket" >/dev/null

# median, min, max of a list of seconds
stats() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f %.2f", m, v[1], v[NR] }'; }
mibs() { echo "$bytes / 1048576 / $1" | bc -l | xargs printf "%.0f"; }
{
    echo "| operation | tool | median s | band (min-max) s | MiB/s (median) | strata / s3cmd |"
    echo "| --- | --- | ---: | ---: | ---: | ---: |"
    for op in backup:strata-backup:s3cmd-put restore:strata-restore:s3cmd-get; do
        IFS=: read -r name ours theirs <<<"$op"
        read -r om omin omax <<<"$(stats "${seconds[$ours]}")"
        read -r tm tmin tmax <<<"$(stats "${seconds[$theirs]}")"
        ratio="$(echo "$tm / $om" | bc -l | xargs printf "%.2f")"
        echo "| $name | strata | $om | $omin-$omax | $(mibs "$om") | ${ratio}x |"
        echo "| $name | s3cmd | $tm | $tmin-$tmax | $(mibs "$tm") | |"
    done
    echo
    echo "$size of random data, $runs runs; strata $("$strata" --version), $(s3cmd --version)."
    [[ ! -s "$work/failures" ]] || echo "Attempts that failed and were run again: $(cut -d' ' -f1-3 "$work/failures" | sort | uniq -c | xargs)."
} | tee ${out:+"$out"}
