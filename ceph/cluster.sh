#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for Strata's RBD and S3 tests and benchmarks: one monitor, one
# manager, one OSD (memstore: the data lives in the OSD's memory), and a RADOS gateway (the S3 API) on
# loopback, all in one folder, run as the calling user without systemd.
#
#   ceph/cluster.sh start DIR     start a cluster in DIR (created; must not hold a running cluster)
#   ceph/cluster.sh stop DIR      stop it (the daemons this script started, by the PIDs it recorded)
#   ceph/cluster.sh status DIR    `ceph -s` of it
#   ceph/cluster.sh osd-stop DIR  stop the OSD politely (a fault for tests: clients' requests then wait);
#                                 memstore first writes what it holds to its folder, so nothing is lost
#   ceph/cluster.sh osd-start DIR start the stopped OSD again and wait until its placement groups serve
#
# After start, DIR/env holds the settings a client needs, in shell syntax:
#   CEPH_CONF                     the cluster's ceph.conf (librados and the ceph/rbd tools read it)
#   STRATA_RBD_POOL               a pool made for RBD images
#   AWS_ENDPOINT_URL              the gateway's S3 endpoint, http://127.0.0.1:PORT
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
#                                 a gateway user's keys
# With STRATA_CEPH_AUTH=cephx in the environment of start, the cluster authenticates every client
# with cephx, as production clusters do (the default is none: a test cluster on loopback). DIR/env
# then also holds:
#   STRATA_RBD_USER, STRATA_RBD_KEYRING
#                                 a client (client.strata) allowed RBD images in STRATA_RBD_POOL
#                                 only, and its keyring
#   STRATA_RBD_OTHER_POOL         a second pool that user may not touch
# The ceph tools then use client.admin's keyring, which ceph.conf names.
# Packages (Debian): ceph-mon ceph-osd ceph-mgr radosgw ceph-common.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status|osd-stop|osd-start DIR" >&2; exit 2; }
(( $# == 2 )) || usage
cmd=$1
dir=$2
# The pool made for RBD images, and with cephx a second one its client may not touch.
pool=rbd
other_pool=rbd-other
auth=${STRATA_CEPH_AUTH:-none}
[[ $auth == none || $auth == cephx ]] || { echo "ceph/cluster.sh: STRATA_CEPH_AUTH is none or cephx, not '$auth'" >&2; exit 2; }

# A port nobody listens on now, picked by the kernel.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ceph_() { ceph -c "$dir/ceph.conf" --connect-timeout 10 "$@"; }

# Waits up to $1 seconds for "$2..." to succeed.
wait_for() {
    local limit=$1; shift
    local i
    for (( i = 0; i < limit * 4; i++ )); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    return 1
}

# A daemon exits but can stay a zombie until its parent reaps it: read its state, not kill -0.
running() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

start_daemon() {  # name, command...
    local name=$1; shift
    # setsid: the daemons outlive this script; their PIDs are recorded for stop.
    setsid "$@" </dev/null >>"$dir/log/$name.out" 2>&1 &
    echo $! >"$dir/run/$name.pid"
}

fail() {
    echo "ceph/cluster.sh: $*" >&2
    for f in "$dir"/log/*.log "$dir"/log/*.out; do
        [[ -s $f ]] && { echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; }
    done
    stop
    exit 1
}

# The cluster is thrown away: the OSD is killed at once (a memstore OSD stopped politely first writes
# all it holds to its folder), the others get two seconds to exit.
stop() {
    local f pid i signal
    for f in "$dir"/run/*.pid; do
        [[ -f $f ]] || continue
        pid=$(cat "$f")
        signal=TERM
        [[ $(basename "$f") == osd.* ]] && signal=KILL
        running "$pid" && kill -"$signal" "$pid" 2>/dev/null || true
    done
    for f in "$dir"/run/*.pid; do
        [[ -f $f ]] || continue
        pid=$(cat "$f")
        for (( i = 0; i < 20; i++ )); do running "$pid" || break; sleep 0.1; done
        running "$pid" && kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

start_osd() {
    start_daemon osd.0 ceph-osd -c "$dir/ceph.conf" -i 0 -f
    wait_for 30 bash -c "ceph -c '$dir/ceph.conf' --connect-timeout 10 osd stat -f json | grep -q '\"num_up_osds\":1'"
}

# A fault for the tests: the OSD stops (SIGTERM: it tells the monitor it is going down, and memstore
# writes its objects to the OSD's folder), so clients' requests wait for it. osd-start undoes it.
osd_stop() {
    local f=$dir/run/osd.0.pid pid i
    [[ -f $f ]] || { echo "ceph/cluster.sh: $dir has no running OSD" >&2; exit 1; }
    pid=$(cat "$f")
    running "$pid" && kill -TERM "$pid" 2>/dev/null || true
    for (( i = 0; i < 600; i++ )); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then echo "ceph/cluster.sh: the OSD did not stop within 60 s" >&2; exit 1; fi
    rm -f "$f"
}

# The OSD again, on the store osd-stop left; back when the RBD pool's placement groups serve.
osd_start() {
    [[ -f $dir/ceph.conf ]] || { echo "ceph/cluster.sh: $dir holds no cluster" >&2; exit 1; }
    ! { [[ -f $dir/run/osd.0.pid ]] && running "$(cat "$dir/run/osd.0.pid")"; } || { echo "ceph/cluster.sh: the OSD of $dir is running; osd-stop it first" >&2; exit 1; }
    dir=$(cd "$dir" && pwd)
    start_osd || { echo "ceph/cluster.sh: the OSD did not come up again" >&2; tail -n 15 "$dir/log/osd.0.log" >&2; exit 1; }
    # Listing the pool asks every one of its placement groups, so it succeeds once they all serve.
    wait_for 60 rados -c "$dir/ceph.conf" --rados-osd-op-timeout 5 -p "$pool" ls \
        || { echo "ceph/cluster.sh: the RBD pool did not serve again: $(ceph_ health detail 2>&1 | head -5)" >&2; exit 1; }
}

# The [global] lines on authentication: none, or cephx with each daemon's keyring in its folder.
auth_settings() {
    if [[ $auth == cephx ]]; then
        cat <<CONF
# cephx, as production clusters run: every daemon and client proves who it is with its key.
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring/\$name.keyring
CONF
    else
        cat <<CONF
# A test cluster on loopback: no authentication. The gateway then still needs "secure" among the
# monitor client modes, or it waits forever for its configuration.
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
CONF
    fi
}

# cephx: the monitor's key and client.admin's, made before the monitor's store (which imports both).
make_first_keys() {
    mkdir -p "$dir/keyring"
    ceph-authtool --create-keyring "$dir/keyring/mon.a.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring "$dir/keyring/client.admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
    ceph-authtool "$dir/keyring/mon.a.keyring" --import-keyring "$dir/keyring/client.admin.keyring" >/dev/null
}

# cephx: a daemon's key, registered with the monitor and written where ceph.conf looks for it.
daemon_key() {  # entity, caps...
    local entity=$1; shift
    ceph_ auth get-or-create "$entity" "$@" -o "$dir/keyring/$entity.keyring" >/dev/null
}

start() {
    if compgen -G "$dir/run/*.pid" >/dev/null; then
        echo "ceph/cluster.sh: $dir already holds a cluster; stop it first" >&2
        exit 1
    fi
    mkdir -p "$dir"/{run,log,mon/ceph-a,mgr/ceph-x,osd/ceph-0,rgw}
    dir=$(cd "$dir" && pwd)
    local fsid mon_port rgw_port
    fsid=$(cat /proc/sys/kernel/random/uuid)
    mon_port=$(free_port)
    rgw_port=$(free_port)
    cat >"$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
$(auth_settings)
# The ceph tool gives up after 10 s instead of 300 when the monitor is gone.
client mount timeout = 10
rados mon op timeout = 30
rados osd op timeout = 60
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = true
# One OSD: one copy of everything, placement by OSD, few placement groups, no autoscaler.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
# Warnings a throwaway cluster in a temporary folder always has; they keep HEALTH_OK away.
mon data avail warn = 1
mon data avail crit = 0
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
mon warn on pool no redundancy = false
mgr initial modules =

[client]
# Clients (rbd, fio, qemu, strata, several at once) would all claim client.admin's admin socket and
# print an error each time; they need none.
admin socket =

[mon]
mon data = $dir/mon/\$cluster-\$id

[mgr]
mgr data = $dir/mgr/\$cluster-\$id

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${STRATA_CEPH_OSD_BYTES:-6442450944}
osd journal size = 0
# SIGTERM (osd-stop) then unmounts the store, which makes memstore save its objects for osd-start;
# stop uses SIGKILL and saves nothing.
osd fast shutdown = false

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
CONF

    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
    local mon_keyring=()
    if [[ $auth == cephx ]]; then
        make_first_keys
        mon_keyring=(--keyring "$dir/keyring/mon.a.keyring")
    fi
    ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" "${mon_keyring[@]}" >>"$dir/log/mkfs.out" 2>&1 \
        || fail "the monitor's store could not be made"
    start_daemon mon.a ceph-mon -c "$dir/ceph.conf" -i a -f
    wait_for 30 ceph_ mon stat || fail "the monitor did not answer"
    [[ $auth == cephx ]] && daemon_key mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *'
    start_daemon mgr.x ceph-mgr -c "$dir/ceph.conf" -i x -f

    local uuid osd_id
    uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(ceph_ osd new "$uuid") || fail "the OSD could not be registered"
    [[ $osd_id == 0 ]] || fail "the OSD got id $osd_id, not 0"
    [[ $auth == cephx ]] && daemon_key osd.0 mon 'allow profile osd' mgr 'allow profile osd' osd 'allow *'
    ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$uuid" >>"$dir/log/mkfs.out" 2>&1 \
        || fail "the OSD's store could not be made"
    start_osd || fail "the OSD did not come up"

    ceph_ osd pool create "$pool" 8 8 >/dev/null 2>&1 || fail "the RBD pool could not be made"
    ceph_ osd pool application enable "$pool" rbd >/dev/null 2>&1

    if [[ $auth == cephx ]]; then
        daemon_key client.rgw mon 'allow rw' osd 'allow rwx' mgr 'allow rw'
        daemon_key client.strata mon 'profile rbd' osd "profile rbd pool=$pool" mgr "profile rbd pool=$pool"
        ceph_ osd pool create "$other_pool" 8 8 >/dev/null 2>&1 || fail "the second pool could not be made"
        ceph_ osd pool application enable "$other_pool" rbd >/dev/null 2>&1
    fi

    start_daemon client.rgw radosgw -c "$dir/ceph.conf" -n client.rgw -f
    local key secret
    key=STRATATESTKEY$(printf '%07d' $((RANDOM * 7)))
    secret=$(head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
    wait_for 45 curl -sf "http://127.0.0.1:$rgw_port/" || fail "the gateway did not answer"
    radosgw-admin -c "$dir/ceph.conf" user create --uid=strata-test --display-name="Strata tests" \
        --access-key="$key" --secret-key="$secret" >/dev/null || fail "the gateway user could not be made"

    wait_for 45 bash -c "ceph -c '$dir/ceph.conf' --connect-timeout 10 health | grep -q HEALTH_OK" \
        || fail "the cluster did not reach HEALTH_OK: $(ceph_ health detail 2>&1 | head -5)"

    cat >"$dir/env" <<ENV
CEPH_CONF=$dir/ceph.conf
STRATA_RBD_POOL=$pool
AWS_ENDPOINT_URL=http://127.0.0.1:$rgw_port
AWS_ACCESS_KEY_ID=$key
AWS_SECRET_ACCESS_KEY=$secret
AWS_REGION=us-east-1
ENV
    if [[ $auth == cephx ]]; then
        cat >>"$dir/env" <<ENV
STRATA_RBD_USER=strata
STRATA_RBD_KEYRING=$dir/keyring/client.strata.keyring
STRATA_RBD_OTHER_POOL=$other_pool
ENV
    fi
    echo "ceph/cluster.sh: cluster up in $dir (settings in $dir/env)"
}

case $cmd in
    start) start ;;
    stop) [[ -d $dir ]] && stop ;;
    status) ceph_ -s ;;
    osd-stop) osd_stop ;;
    osd-start) osd_start ;;
    *) usage ;;
esac
