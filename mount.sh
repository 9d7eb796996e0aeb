#!/usr/bin/env bash
# Sets npfs up on this machine and mounts it.
#
#   ./mount.sh [MOUNTPOINT] [-o OPT[,OPT...]]   install what is missing, build, mount (default /mnt/example)
#   ./mount.sh --build-only                     install what is missing and build, without mounting
#   ./mount.sh --install                        also link npfs into /usr/local/bin (for fstab and mount -t fuse.npfs)
#
# Safe to run again: an npfs already mounted there is left as it is, and a stale mount
# left by a killed daemon ("Transport endpoint is not connected") is cleared first.
# NPFS_NO_BUILD=1 skips the build; NPFS_BIN=PATH uses that binary (both for tests).
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"

build_only=0
install=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-only) build_only=1; shift ;;
        --install) install=1; shift ;;
        --help|-h) sed -n '2,10p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
mountpoint=/mnt/example
if [[ $# -gt 0 && "$1" != -* ]]; then mountpoint=$1; shift; fi

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi }

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists fuse3 2>/dev/null || missing+=(libfuse3-dev)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "npfs: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
    echo "npfs: swift is not on PATH; install the Swift 6 toolchain first" >&2
    exit 1
fi

if [[ "${NPFS_NO_BUILD:-0}" != 1 ]]; then
    echo "npfs: building (release)"
    swift build -c release --product npfs
fi
bin=${NPFS_BIN:-$PWD/.build/release/npfs}
if [[ ! -x "$bin" ]]; then
    echo "npfs: no binary at $bin" >&2
    exit 1
fi
if [[ $install -eq 1 ]]; then
    # mount(8) runs its helpers with PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.
    as_root ln -sf "$bin" /usr/local/bin/npfs
    echo "npfs: linked /usr/local/bin/npfs -> $bin"
fi
if [[ $build_only -eq 1 ]]; then
    echo "npfs: built $bin"
    exit 0
fi

mountpoint=$(realpath -m "$mountpoint")
stat_error=$(stat "$mountpoint" 2>&1 >/dev/null) || true
if [[ "$stat_error" == *"not connected"* ]]; then
    echo "npfs: clearing the stale mount at $mountpoint (its daemon died)"
    "$bin" unmount "$mountpoint"
fi
if awk -v m="$mountpoint" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    if awk -v m="$mountpoint" '$5 == m && / - fuse\.npfs / { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        echo "npfs: already mounted at $mountpoint"
        exit 0
    fi
    echo "npfs: $mountpoint is already a mount point of something else" >&2
    exit 1
fi
mkdir -p "$mountpoint"
"$bin" mount "$@" "$mountpoint"
cat <<USAGE
npfs: mounted at $mountpoint; every name there is a named pipe.
  cat $mountpoint/HELLO &          # waits for a writer
  echo hello > $mountpoint/HELLO   # the reader prints hello
  ls $mountpoint                   # the live pipes
Unmount with: $bin unmount $mountpoint
USAGE
