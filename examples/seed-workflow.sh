#!/usr/bin/env bash
# The seed workflow, as written in the design: a raw disk served to a "guest" (qemu-io over NBD),
# a live snapshot into a qcow2 overlay made with `strata img create -b`, more guest writes, then a
# live merge back into the raw disk. Every step is checked with QEMU's tools.
#
#   examples/seed-workflow.sh [FOLDER]      (default: a new temporary folder, removed at the end)
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

step "strata img create -f raw foo.img 10G"
"$strata" img create -f raw foo.img 10G

step "strata serve -hda foo.img"
"$strata" serve -hda foo.img --nbd "unix:$dir/nbd.sock" --qmp "unix:$dir/qmp.sock" &
daemon=$!
for _ in $(seq 1 100); do [[ -S "$dir/qmp.sock" && -S "$dir/nbd.sock" ]] && break; sleep 0.1; done

step "the guest writes 0x11 at 0 (4 MiB)"
guest -c 'write -P 0x11 0 4M' -c flush

step "strata img create -f qcow2 -b foo.img tmp_disk.img 10G"
"$strata" img create -f qcow2 -b foo.img tmp_disk.img 10G

step "(strata) change -l ide0-hd0 file=tmp_disk.img"
echo "change -l ide0-hd0 file=tmp_disk.img" | "$strata" monitor "$dir/qmp.sock"

step "the guest writes 0x22 at 2 MiB (4 MiB) into the overlay"
guest -c 'write -P 0x22 2M 4M' -c flush

step "foo.img is frozen: still 0x11 at 0..4 MiB and zeroes after"
qemu-io -r -U -f raw foo.img -c 'read -P 0x11 0 4M' -c 'read -P 0 4M 4M'

step "(strata) merge_disk tmp_disk.img"
echo "merge_disk tmp_disk.img" | "$strata" monitor "$dir/qmp.sock"

step "(strata) info block"
echo "info block" | "$strata" monitor "$dir/qmp.sock"

step "the guest reads its data, now served from foo.img"
guest -c 'read -P 0x11 0 2M' -c 'read -P 0x22 2M 4M'

step "(strata) quit"
echo "quit" | "$strata" monitor "$dir/qmp.sock"
wait "$daemon"
daemon=""

step "foo.img holds everything; the overlay can be deleted"
qemu-io -r -f raw foo.img -c 'read -P 0x11 0 2M' -c 'read -P 0x22 2M 4M' -c 'read -P 0 6M 4M'
qemu-img check tmp_disk.img
rm tmp_disk.img
echo
echo "seed workflow: OK"
