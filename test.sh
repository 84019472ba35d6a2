#!/usr/bin/env bash
# Runs every Strata test. Installs what the tests need when it is missing (Debian packages through
# apt-get, NuGet packages through restore), so it passes on a fresh Debian 12 machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

# The peers the interop tests drive: QEMU's tools are the oracle.
need_apt=()
command -v qemu-img >/dev/null || need_apt+=(qemu-utils)
command -v qemu-storage-daemon >/dev/null || need_apt+=(qemu-system-common)
command -v nbdinfo >/dev/null || need_apt+=(libnbd-bin)
/usr/bin/python3 -c 'import nbd' 2>/dev/null || need_apt+=(python3-libnbd)
command -v fio >/dev/null || need_apt+=(fio)
# qemu-ga, run on the host with every command that could touch the host blocked (the guest tests).
[[ -x /usr/sbin/qemu-ga ]] || command -v qemu-ga >/dev/null || need_apt+=(qemu-guest-agent)
command -v afl-fuzz >/dev/null || need_apt+=(afl++)  # the fuzz targets' smoke runs
# ./strata publishes a native executable (Native AOT), which links with the C toolchain.
command -v clang >/dev/null || need_apt+=(clang)
[[ -f /usr/include/zlib.h ]] || need_apt+=(zlib1g-dev)
# The VM tests (tests/Strata.Vm.Tests): the emulator, e2fsprogs for the guest's ext4 data disk, cpio for
# its initramfs. guest/build-initramfs.sh fetches the guest's own packages (kernel, busybox, qemu-ga)
# with apt-get download, which needs the package lists.
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
command -v debugfs >/dev/null || need_apt+=(e2fsprogs)
command -v cpio >/dev/null || need_apt+=(cpio)
# The RBD and S3 tests (issue: drives on Ceph RBD, backups in an S3 store): a single-node Ceph started by
# ceph/cluster.sh, librbd for the rbd driver, qemu-img's rbd driver and s3cmd as independent peers.
command -v ceph-mon >/dev/null || need_apt+=(ceph-mon)
command -v ceph-osd >/dev/null || need_apt+=(ceph-osd)
command -v ceph-mgr >/dev/null || need_apt+=(ceph-mgr)
command -v radosgw >/dev/null || need_apt+=(radosgw)
command -v rbd >/dev/null || need_apt+=(ceph-common)
[[ -f /usr/include/rbd/librbd.h ]] || need_apt+=(librbd-dev)
command -v s3cmd >/dev/null || need_apt+=(s3cmd)
command -v curl >/dev/null || need_apt+=(curl)
[[ -n $(find /usr/lib -name block-rbd.so -path '*qemu*' 2>/dev/null | head -n 1) ]] || need_apt+=(qemu-block-extra)
need_lists=0
apt-cache show --no-all-versions linux-image-cloud-amd64 >/dev/null 2>&1 || need_lists=1
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
if (( ${#need_apt[@]} || need_lists )); then
    "${sudo_cmd[@]}" apt-get update -qq
fi
if (( ${#need_apt[@]} )); then
    echo "test.sh: installing ${need_apt[*]}"
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

log="$(mktemp)"
ceph_dir="$(mktemp -d)"
cleanup() {
    "$root/ceph/cluster.sh" stop "$ceph_dir" >/dev/null 2>&1 || true
    rm -rf "$ceph_dir" "$log"
}
trap cleanup EXIT
status=0

# One Ceph cluster for the whole run; the tests find it through STRATA_CEPH_ENV.
"$root/ceph/cluster.sh" start "$ceph_dir"
export STRATA_CEPH_ENV="$ceph_dir/env"
dotnet test "$root/Strata.slnx" -c Release --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log" || status=$?

# One closing line for the whole run, summed over the test assemblies.
read -r passed failed skipped < <(grep -E '^ +(Passed|Failed|Skipped): +[0-9]+ *$' "$log" \
    | awk '$1=="Passed:"{p+=$2} $1=="Failed:"{f+=$2} $1=="Skipped:"{s+=$2} END {print p+0, f+0, s+0}')
# The failures again, last, with their messages: a reader of the log's tail sees what failed.
if (( failed )); then
    echo "test.sh: the failed tests:"
    grep -E -A 12 '^ +Failed [A-Za-z]' "$log" | cut -c1-400 || true
fi
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"

# The tests run the JIT build; users run ./strata, a native executable. The front door must work as
# built: the launcher's build is native (no strata.dll beside it: it did not fall back) and the demo,
# the whole live workflow, passes on it.
if (( status == 0 )); then
    echo "test.sh: ./strata demo on the native build"
    if ! "$root/strata" demo >"$log" 2>&1; then
        cat "$log" >&2
        echo "test.sh: ./strata demo failed" >&2
        status=1
    elif [[ -f "$root/artifacts/cli/strata.dll" ]]; then
        cat "$log" >&2
        echo "test.sh: ./strata did not build natively (it fell back to a JIT build)" >&2
        status=1
    else
        tail -n 1 "$log"
    fi
fi
if (( status == 0 && passed == 0 )); then
    echo "test.sh: no test ran" >&2
    exit 1
fi
exit "$status"
