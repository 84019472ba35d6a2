#!/usr/bin/env bash
# The seed's dirty-block tracking sequence: a disk served with guest I/O held (-S), a dirty bitmap
# file t0 set before the guest starts, then at backup time a second bitmap t1 set and the disk
# frozen with `change -l`, more writes into the overlay, the merge back, and the two bitmaps read
# back with `strata img map`. t0 holds exactly what the frozen foo.img changed; t1 holds what
# changed since it started (a little early: a superset of what changed since the freeze).
#
#   examples/dirty-tracking.sh [FOLDER]      (default: a new temporary folder, removed at the end)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
strata="${STRATA:-$root/strata}"
if [[ $# -gt 0 ]]; then dir="$1"; mkdir -p "$dir"; keep=1; else dir="$(mktemp -d)"; keep=0; fi
cd "$dir"
daemon=""
cleanup() {
    if [[ -n "$daemon" ]] && kill -0 "$daemon" 2>/dev/null; then kill "$daemon"; wait "$daemon" || true; fi
    if [[ $keep -eq 0 ]]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
guest() { qemu-io -f raw "nbd+unix:///ide0-hd0?socket=$dir/nbd.sock" "$@"; }
monitor() { echo "$*" | "$strata" monitor "$dir/qmp.sock"; }
# expect_dirty FILE "START LENGTH" ...: the bitmap file's dirty extents are exactly these.
expect_dirty() {
    local file="$1"; shift
    local got
    got="$("$strata" img map --output=json "$file" | python3 -c '
import json, sys
print(" ".join("%d+%d" % (e["start"], e["length"]) for e in json.load(sys.stdin) if e["dirty"]))')"
    local want
    want="$(for e in "$@"; do set -- $e; printf '%s+%s ' "$1" "$2"; done)"
    if [[ "$got" != "${want% }" ]]; then
        echo "dirty-tracking: $file has dirty extents '$got', expected '${want% }'" >&2
        exit 1
    fi
    echo "$file: dirty $got"
}
M=$((1024 * 1024))

step "strata img create -f raw foo.img 10G"
"$strata" img create -f raw foo.img 10G

step "strata img create -f dirty_bitmap -o cluster_size=4k t0.dbmp 10G"
"$strata" img create -f dirty_bitmap -o cluster_size=4k t0.dbmp 10G

step "strata serve -hda foo.img -S   (guest I/O held until cont)"
"$strata" serve -hda foo.img -S --nbd "unix:$dir/nbd.sock" --qmp "unix:$dir/qmp.sock" &
daemon=$!
for _ in $(seq 1 100); do [[ -S "$dir/qmp.sock" && -S "$dir/nbd.sock" ]] && break; sleep 0.1; done

step "(strata) set_dirty ide0-hd0 t0.dbmp; cont"
monitor "set_dirty ide0-hd0 t0.dbmp"
monitor "cont"

step "the guest writes 4 MiB at 0"
guest -c 'write -P 0x11 0 4M' -c flush

step "backup time: (strata) set_dirty ide0-hd0 t1.dbmp   (t1 starts; t0 goes on until the snapshot)"
monitor "set_dirty ide0-hd0 t1.dbmp"

step "the guest writes 1 MiB at 8 MiB: in t0 and in t1"
guest -c 'write -P 0x22 8M 1M' -c flush

step "(strata) change -l ide0-hd0 file=tmp_write.img   (foo.img frozen, t0 stops)"
monitor "change -l ide0-hd0 file=tmp_write.img"

step "the guest writes 1 MiB at 16 MiB into the overlay: in t1 only"
guest -c 'write -P 0x33 16M 1M' -c flush

step "backup software reads the frozen foo.img with t0.dbmp"
expect_dirty t0.dbmp "0 $((4 * M))" "$((8 * M)) $M"
qemu-io -r -U -f raw foo.img -c 'read -P 0x11 0 4M' -c 'read -P 0x22 8M 1M' -c 'read -P 0 16M 1M'

step "(strata) merge_disk tmp_write.img"
monitor "merge_disk tmp_write.img"

step "the guest writes 64 KiB at 32 MiB, now into foo.img: in t1"
guest -c 'write -P 0x44 32M 64k' -c flush

step "(strata) info block"
monitor "info block"

step "(strata) quit   (t1 is saved consistent)"
monitor "quit"
wait "$daemon"
daemon=""

step "t1 holds everything written since it started, for the next backup"
expect_dirty t1.dbmp "$((8 * M)) $M" "$((16 * M)) $M" "$((32 * M)) 65536"
"$strata" img info t1.dbmp
echo
echo "dirty tracking: OK"
