#!/usr/bin/env bash
# The seed's incremental backup workflow, with a guest writer running the whole time: t0 tracks from
# boot (an initial full backup is taken while guest I/O is still held, so t0 starts at point 0);
# at each backup time the next bitmap starts, `change -l` freezes foo.img, a copy of the frozen
# foo.img is kept as the reference of that point, `strata backup create` reads foo.img with the
# previous bitmap (an incremental: only its dirty extents), and `merge_disk` brings the drive back.
# Then every point is restored with plain `qemu-img convert` and compared with its reference, each
# image passes `qemu-img check`, and `strata backup verify` recomputes every chunk hash.
#
#   examples/backup-workflow.sh [FOLDER]      (default: a new temporary folder, removed at the end)
#   SEED=N examples/backup-workflow.sh        (repeats a writer's run; the seed is printed)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
strata="${STRATA:-$root/strata}"
if [[ $# -gt 0 ]]; then dir="$1"; mkdir -p "$dir"; keep=1; else dir="$(mktemp -d)"; keep=0; fi
cd "$dir"
daemon=""
writer=""
cleanup() {
    touch "$dir/stop-writer"
    if [[ -n "$writer" ]] && kill -0 "$writer" 2>/dev/null; then wait "$writer" || true; fi
    if [[ -n "$daemon" ]] && kill -0 "$daemon" 2>/dev/null; then kill "$daemon"; wait "$daemon" || true; fi
    if [[ $keep -eq 0 ]]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
monitor() { echo "$*" | "$strata" monitor "$dir/qmp.sock"; }
seed="${SEED:-$RANDOM}"
echo "writer seed: $seed   (SEED=$seed repeats it)"

# The guest: random writes (1 KiB to 1 MiB, random patterns) into the first 256 MiB, until told to
# stop; bounded. Each write is one qemu-io over NBD; the count goes to writes.log.
guest_writer() {
    RANDOM=$seed
    local n=0
    while [[ ! -e "$dir/stop-writer" && $n -lt 2000 ]]; do
        local len=$(( (RANDOM % 1024 + 1) * 1024 ))
        local off=$(( (RANDOM * 32768 + RANDOM) % (256 * 1024 * 1024 - len) ))
        qemu-io -f raw "nbd+unix:///ide0-hd0?socket=$dir/nbd.sock" -c "write -P $(( RANDOM % 255 + 1 )) $off $len" >/dev/null
        n=$((n + 1))
        echo "$n" >> "$dir/writes.log"
    done
}
# wait_writes N: until the writer has made N more writes than now.
wait_writes() {
    local want=$(( $(wc -l < "$dir/writes.log") + $1 ))
    for _ in $(seq 1 600); do [[ $(wc -l < "$dir/writes.log") -ge $want ]] && return; sleep 0.1; done
    echo "backup-workflow: the writer made no progress" >&2; exit 1
}
# backup_kind POINT: the kind the set's manifest records for it.
backup_kind() { "$strata" backup list --output=json SET | python3 -c "import json,sys; print(json.load(sys.stdin)[$1]['kind'])"; }
expect_kind() {
    local got; got="$(backup_kind "$1")"
    if [[ "$got" != "$2" ]]; then echo "backup-workflow: point $1 is $got, expected $2" >&2; exit 1; fi
}

step "strata img create -f raw foo.img 10G"
"$strata" img create -f raw foo.img 10G

step "strata img create -f dirty_bitmap -o cluster_size=4k t0.dbmp 10G"
"$strata" img create -f dirty_bitmap -o cluster_size=4k t0.dbmp 10G

step "strata serve -hda foo.img -S   (guest I/O held until cont)"
"$strata" serve -hda foo.img -S --nbd "unix:$dir/nbd.sock" --qmp "unix:$dir/qmp.sock" &
daemon=$!
for _ in $(seq 1 100); do [[ -S "$dir/qmp.sock" && -S "$dir/nbd.sock" ]] && break; sleep 0.1; done

step "(strata) set_dirty ide0-hd0 t0.dbmp   (t0 tracks from boot)"
monitor "set_dirty ide0-hd0 t0.dbmp"

step "initial full backup while the guest is held: point 0 (t0 is recorded as tracking)"
"$strata" backup create SET --image foo.img
cp --sparse=always foo.img ref0.img
expect_kind 0 full

step "(strata) cont; the guest writer starts"
monitor "cont"
: > writes.log
guest_writer &
writer=$!

round=0
for next in 1 2; do
    wait_writes 20
    step "backup time: (strata) set_dirty ide0-hd0 t$next.dbmp"
    "$strata" img create -f dirty_bitmap -o cluster_size=4k "t$next.dbmp" 10G >/dev/null
    monitor "set_dirty ide0-hd0 t$next.dbmp"
    step "(strata) change -l ide0-hd0 file=tmp_write.img   (foo.img frozen, t$round stops)"
    monitor "change -l ide0-hd0 file=tmp_write.img"
    step "keep the frozen foo.img as the reference of point $next"
    cp --sparse=always foo.img "ref$next.img"
    step "strata backup create SET --image foo.img --bitmap t$round.dbmp   (the writer goes on, into the overlay)"
    "$strata" backup create SET --image foo.img --bitmap "t$round.dbmp"
    expect_kind "$next" incremental
    step "(strata) merge_disk tmp_write.img"
    monitor "merge_disk tmp_write.img"
    rm -f tmp_write.img
    round=$next
done

step "the writer stops; (strata) quit"
touch stop-writer
wait "$writer"
writer=""
echo "the guest made $(wc -l < writes.log) writes"
monitor "quit"
wait "$daemon"
daemon=""

step "strata backup list SET"
"$strata" backup list SET

for point in 0 1 2; do
    image="SET/000$point.qcow2"
    step "point $point: qemu-img check, qemu-img convert, qemu-img compare with ref$point.img"
    qemu-img check -f qcow2 "$image"
    qemu-img convert -f qcow2 -O raw "$image" "restored$point.img"
    qemu-img compare -f raw -F raw "restored$point.img" "ref$point.img"
    rm -f "restored$point.img"
done

step "strata backup verify SET"
"$strata" backup verify SET

step "strata backup restore SET 1 restored1.qcow2 -O qcow2"
"$strata" backup restore SET 1 restored1.qcow2 -O qcow2
qemu-img compare -f qcow2 -F raw restored1.qcow2 ref1.img
echo
echo "backup workflow: OK"
