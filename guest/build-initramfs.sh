#!/usr/bin/env bash
# Builds the test guest: a Debian cloud kernel and a gzip'd cpio initramfs holding busybox, qemu-ga
# (with the shared libraries it links, and their ELF interpreter), the virtio modules and the guest's
# init (guest/init). No root is needed: packages are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x`.
#
# The initramfs is two cpio archives back to back, which the kernel unpacks in order
# (Documentation/driver-api/early-userspace/buffer-format.rst): a base of Debian's files, cached
# under CACHE in a folder named after the package versions, so a second run only repacks the small
# second archive (init, hooks, and strata-agent when given), which changes with the repository.
#
# usage: build-initramfs.sh --cache DIR --out DIR [--agent BINARY] [--hooks DIR]
# writes OUT/vmlinuz and OUT/initramfs.gz, and prints the base folder it used.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

cache="" out="" agent="" hooks=""
while (( $# )); do
    case "$1" in
        --cache) cache="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --agent) agent="$2"; shift 2 ;;
        --hooks) hooks="$2"; shift 2 ;;
        *) echo "build-initramfs: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ -n "$cache" && -n "$out" ]] || { echo "usage: build-initramfs.sh --cache DIR --out DIR [--agent BINARY] [--hooks DIR]" >&2; exit 2; }
for tool in apt-get apt-cache dpkg-deb cpio gzip ldd sha256sum; do
    command -v "$tool" >/dev/null || { echo "build-initramfs: '$tool' is missing (Debian: apt-get, dpkg, cpio, gzip, libc-bin)" >&2; exit 1; }
done

# The modules the guest loads; their dependencies come from modules.dep.
wanted_modules=(virtio_pci virtio_blk virtio_console)

version_of() {
    local v
    v="$(apt-cache show --no-all-versions "$1" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)"
    [[ -n "$v" ]] || { echo "build-initramfs: apt knows no package '$1' (run apt-get update)" >&2; exit 1; }
    printf '%s' "$v"
}

# The metapackage names the versioned kernel package (linux-image-6.1.0-NN-cloud-amd64).
kernel_pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)"
[[ -n "$kernel_pkg" ]] || { echo "build-initramfs: cannot resolve linux-image-cloud-amd64 (run apt-get update)" >&2; exit 1; }
packages=("$kernel_pkg" busybox-static qemu-guest-agent)
key_text="$(for p in "${packages[@]}"; do printf '%s=%s\n' "$p" "$(version_of "$p")"; done; sha256sum < "${BASH_SOURCE[0]}")"
key="$(printf '%s' "$key_text" | sha256sum | cut -c1-16)"
base="$cache/base-$key"

# Copies an ELF program and every shared library ldd resolves for it (the interpreter included) into
# ROOT at the same paths, so the program runs in the guest as it does here.
copy_with_libs() {
    local program="$1" dest="$2" root="$3"
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$program" "$root/$dest"
    local missing
    missing="$(ldd "$program" 2>&1 | grep 'not found' || true)"
    [[ -z "$missing" ]] || { echo "build-initramfs: $(basename "$program") needs libraries this host lacks: $missing" >&2; exit 1; }
    ldd "$program" | grep -oE '/[^ ]+' | while read -r lib; do
        mkdir -p "$root/$(dirname "$lib")"
        cp -L "$lib" "$root/$lib"
    done
}

# Packs folder ROOT as a newc cpio archive, gzip'd, owned by root (the guest runs as root).
pack() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -9n) > "$2"; }

mkdir -p "$cache"
if [[ ! -f "$base/base.cpio.gz" ]]; then
    work="$(mktemp -d "$cache/.build-XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/debs" "$work/x" "$work/root"
    (cd "$work/debs" && apt-get download -q "${packages[@]}" >/dev/null 2>&1) \
        || (cd "$work/debs" && apt-get download "${packages[@]}") \
        || { echo "build-initramfs: apt-get download ${packages[*]} failed" >&2; exit 1; }
    for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/x"; done

    kver="${kernel_pkg#linux-image-}"
    root="$work/root"
    mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,data,etc,var/run,lib/modules/"$kver"}
    cp "$work/x/bin/busybox" "$root/bin/busybox"
    copy_with_libs "$work/x/usr/sbin/qemu-ga" /usr/sbin/qemu-ga "$root"

    # modules.dep is made by depmod at install time, so the package has none: busybox's depmod
    # writes it for the whole tree, and the closure of what we load is read from it.
    mods="$work/x/lib/modules/$kver"
    "$work/x/bin/busybox" depmod -b "$work/x" "$kver"
    needed=()
    for m in "${wanted_modules[@]}"; do
        line="$(grep -E "(^|/)$m\.ko(\.[a-z]+)?:" "$mods/modules.dep")" || { echo "build-initramfs: no module $m in $kernel_pkg" >&2; exit 1; }
        needed+=("${line%%:*}")
        read -ra deps <<< "${line#*:}"
        needed+=("${deps[@]}")
    done
    for rel in $(printf '%s\n' "${needed[@]}" | sort -u); do
        mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
        cp "$mods/$rel" "$root/lib/modules/$kver/$rel"
    done
    cp "$mods"/modules.builtin "$mods"/modules.order "$root/lib/modules/$kver/"
    "$work/x/bin/busybox" depmod -b "$root" "$kver"

    mkdir -p "$work/out"
    cp "$work/x/boot/vmlinuz-$kver" "$work/out/vmlinuz"
    pack "$root" "$work/out/base.cpio.gz"
    printf '%s\n' "$key_text" > "$work/out/packages.txt"
    rm -rf "$base"
    mv "$work/out" "$base"
    rm -rf "$work"
    trap - EXIT
fi

# The second archive: what comes from this repository.
mkdir -p "$out"
extra="$(mktemp -d "$out/.extra-XXXXXX")"
trap 'rm -rf "$extra"' EXIT
mkdir -p "$extra/sbin" "$extra/etc/strata/hooks"
install -m 0755 "$here/init" "$extra/init"
install -m 0755 "$here/shutdown" "$extra/sbin/shutdown"
if [[ -n "$agent" ]]; then
    copy_with_libs "$agent" /usr/sbin/strata-agent "$extra"
fi
if [[ -n "$hooks" ]]; then
    cp -R "$hooks"/. "$extra/etc/strata/hooks/"
    chmod -R a+rx "$extra/etc/strata/hooks"
fi
pack "$extra" "$out/extra.cpio.gz"
cat "$base/base.cpio.gz" "$out/extra.cpio.gz" > "$out/initramfs.gz"
rm -f "$out/extra.cpio.gz"
cp "$base/vmlinuz" "$out/vmlinuz"
echo "$base"
