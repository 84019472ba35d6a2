#!/usr/bin/env bash
# Regenerates the seed corpora of the fuzz targets from QEMU's tools (see README.md, "Seeds").
#   qcow2: images made by qemu-img create and written by qemu-io, small clusters so they stay small
#   nbd:   the bytes nbdinfo, qemu-io and nbdsh send in real sessions, recorded by `Strata.Fuzz record-nbd`
#   qmp:   control sessions written out here, one client's bytes per file
# Each corpus folder is emptied and refilled; crashes/ and pending/ are never touched.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

dotnet build "$here/Strata.Fuzz/Strata.Fuzz.csproj" -c Release -nologo -v quiet
driver="$here/Strata.Fuzz/bin/Release/net10.0/Strata.Fuzz.dll"

refill() {
    rm -rf "$here/$1/corpus"
    mkdir -p "$here/$1/corpus"
}

# --- qcow2 ----------------------------------------------------------------------------------------
refill qcow2
qcow2="$here/qcow2/corpus"
create() {
    local name=$1
    shift
    qemu-img create -q -f qcow2 "$@" "$work/$name" 1M
    cp "$work/$name" "$qcow2/$name"
}
create v2-c512.qcow2 -o compat=0.10,cluster_size=512
create v3-c512.qcow2 -o cluster_size=512
create v3-c1k-refcount1.qcow2 -o cluster_size=1024,refcount_bits=1
create v3-c1k-refcount64.qcow2 -o cluster_size=1024,refcount_bits=64
create v3-c4k-lazy.qcow2 -o cluster_size=4096,lazy_refcounts=on
create v3-c4k-zstd.qcow2 -o cluster_size=4096,compression_type=zstd
create v3-c16k-extl2.qcow2 -o cluster_size=16384,extended_l2=on
qemu-img create -q -f raw "$work/base.raw" 1M
(cd "$work" && create v3-c512-backing.qcow2 -o cluster_size=512 -b base.raw -F raw)

# Images with data: allocated, zero, compressed and discarded clusters, L2 tables in use.
written() {
    local name=$1 options=$2
    qemu-img create -q -f qcow2 -o "$options" "$work/$name" 1M
    qemu-io -f qcow2 "$work/$name" -c 'write -P 0x11 0 1536' -c 'write -P 0x22 300k 512' \
        -c 'write -z 600k 2k' -c 'write -c -P 0x33 800k 1k' -c 'discard 512 512' >/dev/null
    cp "$work/$name" "$qcow2/$name"
}
written v2-c512-data.qcow2 compat=0.10,cluster_size=512
written v3-c512-data.qcow2 cluster_size=512
written v3-c1k-zstd-data.qcow2 cluster_size=1024,compression_type=zstd

# A persistent bitmap (the "bitmaps" header extension) and an internal snapshot (the snapshot table).
qemu-img create -q -f qcow2 -o cluster_size=512 "$work/bitmap.qcow2" 1M
qemu-img bitmap --add "$work/bitmap.qcow2" b0
cp "$work/bitmap.qcow2" "$qcow2/v3-c512-bitmap.qcow2"
qemu-img create -q -f qcow2 -o cluster_size=512 "$work/snap.qcow2" 1M
qemu-io -f qcow2 "$work/snap.qcow2" -c 'write -P 0x44 0 512' >/dev/null
qemu-img snapshot -c s1 "$work/snap.qcow2"
cp "$work/snap.qcow2" "$qcow2/v3-c512-snapshot.qcow2"

# --- nbd ------------------------------------------------------------------------------------------
refill nbd
sock="$work/nbd.sock"
uri="nbd+unix:///fuzz?socket=$sock"
# nbdsh runs on the python3 first in PATH; Debian's python3-libnbd lives in the system's python.
nbdsh() {
    local python
    python="$(command -v python3)"
    "$python" -c 'import nbd' 2>/dev/null || python=/usr/bin/python3
    "$python" -c 'import nbdsh; nbdsh.shell()' "$@"
}
record() {
    local name=$1
    shift
    dotnet "$driver" record-nbd "$sock" "$here/nbd/corpus/$name" >/dev/null &
    local recorder=$!
    for _ in $(seq 100); do
        [[ -S $sock ]] && break
        sleep 0.1
    done
    "$@" >/dev/null
    wait "$recorder"
}
record nbdinfo-list nbdinfo --list "nbd+unix://?socket=$sock"
record nbdinfo nbdinfo "$uri"
record nbdinfo-map nbdinfo --map "$uri"
record nbdinfo-map-depth nbdinfo --map=qemu:allocation-depth "$uri"
record qemu-io qemu-io -f raw "$uri" -c 'read 0 64k' -c 'write -P 0x5a 4k 4k' -c 'write -z 64k 64k' \
    -c 'discard 128k 4k' -c 'flush' -c 'read -P 0x5a 4k 4k' -c 'write -f -P 0x5b 200k 512'
record qemu-io-readonly qemu-io -r -f raw "nbd+unix:///fuzz-ro?socket=$sock" -c 'read 0 128k' -c 'read 250k 6k'
record nbdsh-structured nbdsh -c '
h.set_export_name("fuzz")
h.add_meta_context("base:allocation")
h.add_meta_context("qemu:allocation-depth")
h.connect_unix("'"$sock"'")
h.pread(4096, 0)
h.pread(65536, 65536)
h.pread_structured(8192, 126976, lambda *args: 0, nbd.CMD_FLAG_DF)
h.pwrite(b"\x01" * 4096, 8192, nbd.CMD_FLAG_FUA)
h.zero(4096, 16384, nbd.CMD_FLAG_NO_HOLE)
h.zero(4096, 20480, nbd.CMD_FLAG_FAST_ZERO)
h.trim(4096, 131072)
h.cache(4096, 0)
h.flush()
h.block_status(262144, 0, lambda *args: 0)
h.block_status(262144, 0, lambda *args: 0, nbd.CMD_FLAG_REQ_ONE)
'
record nbdsh-simple nbdsh -c '
h.set_request_structured_replies(False)
h.set_export_name("fuzz")
h.connect_unix("'"$sock"'")
h.pread(4096, 0)
h.pwrite(b"\x02" * 512, 1024)
h.zero(4096, 8192)
h.trim(4096, 196608)
h.flush()
h.pread(512, 1024)
'
record nbdsh-export-name nbdsh -c '
h.set_handshake_flags(0)
h.set_export_name("fuzz")
h.connect_unix("'"$sock"'")
h.pread(512, 0)
'
record nbdsh-options nbdsh -c '
h.set_opt_mode(True)
h.connect_unix("'"$sock"'")
h.opt_list(lambda *args: 0)
h.set_export_name("fuzz-ro")
h.opt_info()
h.opt_list_meta_context(lambda *args: 0)
h.add_meta_context("base:allocation")
h.set_export_name("fuzz")
h.opt_go()
h.block_status(65536, 0, lambda *args: 0)
'

# --- qmp ------------------------------------------------------------------------------------------
refill qmp
qmp="$here/qmp/corpus"
printf '%s\r\n' '{"execute":"qmp_capabilities"}' '{"execute":"query-status"}' '{"execute":"query-commands","id":1}' \
    '{"execute":"query-block","id":"b"}' '{"execute":"quit"}' >"$qmp/session-quit"
printf '%s\n' '{"execute":"query-status"}' '{"execute":"qmp_capabilities","id":[1,{"a":null}]}' \
    '{"execute":"qmp_capabilities"}' '{"execute":"stop"}' '{"execute":"query-status"}' '{"execute":"cont"}' >"$qmp/negotiation"
printf '%s' '{"execute":"qmp_capabilities"}{"execute":"query-jobs"}  {"execute":"query-block-jobs"}' \
    $'\n{"execute":\n "job-cancel", "arguments": {"id": "j1"}}' >"$qmp/several-per-line"
printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"blockdev-snapshot-sync","arguments":{"device":"ide0-hd0","snapshot-file":"s.qcow2","format":"qcow2"}}' \
    '{"execute":"transaction","arguments":{"actions":[{"type":"blockdev-snapshot-sync","data":{"device":"d","snapshot-file":"x"}}]}}' \
    '{"execute":"block-commit","arguments":{"device":"d","top":"t","base":"b","speed":0,"auto-finalize":true}}' \
    '{"execute":"job-complete","arguments":{"id":"c"}}' '{"execute":"job-dismiss","arguments":{"id":"c"}}' \
    '{"execute":"block-job-pause","arguments":{"device":"d"}}' >"$qmp/commands"
printf '%s\n' '{"execute":"qmp_capabilities"}' '[1,2]' '"text"' '42' '{"execute":1}' '{"arguments":{}}' \
    '{"execute":"query-status","arguments":[]}' '{"execute":"no-such-command","id":3.5}' '{"execute":"qu\u0069t"}' \
    '{"execute":"query-status", "id": "\ud83d\ude00"}' '{bad json}' >"$qmp/errors"

echo "seeds: $(ls "$qcow2" | wc -l) qcow2, $(ls "$here/nbd/corpus" | wc -l) nbd, $(ls "$qmp" | wc -l) qmp"
