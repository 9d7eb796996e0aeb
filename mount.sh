#!/usr/bin/env bash
# Sets npfs up on this machine and mounts it.
#
#   ./mount.sh [MOUNTPOINT] [-o OPT[,OPT...]]   install what is missing, build, link npfs into
#                                               /usr/local/bin, mount (default /mnt/example)
#   ./mount.sh --build-only                     install what is missing and build, nothing else
#   ./mount.sh --install                        install, build and link npfs into /usr/local/bin
#                                               (for the shell, fstab and mount -t fuse.npfs), its
#                                               man page npfs(1) and bash and zsh completions,
#                                               without mounting
#
# Options and the mount point may come in any order. Safe to run again: an npfs already
# mounted there is left as it is, and a stale mount left by a killed daemon ("Transport
# endpoint is not connected") is cleared first. A failed mount leaves no directory behind.
# NPFS_NO_BUILD=1 skips the build, NPFS_BIN=PATH uses that binary, NPFS_NO_LINK=1 leaves
# /usr/local/bin alone, NPFS_PREFIX=DIR installs under DIR instead of /usr/local, and
# NPFS_GENERATE_MANUAL=PATH is swift-argument-parser's generate-manual (all for tests).
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"

fail() { echo "npfs: $*" >&2; exit 1; }

build_only=0
install_only=0
mountpoint=""
mount_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-only) build_only=1; shift ;;
        --install) install_only=1; shift ;;
        --help|-h) sed -n '2,17p' "$0"; exit 0 ;;
        -o) [[ $# -ge 2 ]] || fail "-o needs a value (see ./mount.sh --help)"
            mount_args+=(-o "$2"); shift 2 ;;
        -o*) mount_args+=(-o "${1#-o}"); shift ;;
        -*) fail "unknown option $1 (see ./mount.sh --help)" ;;
        *) [[ -z "$mountpoint" ]] || fail "more than one mount point: '$mountpoint' and '$1'"
           [[ -n "$1" ]] || fail "the mount point is an empty string"
           mountpoint=$1; shift ;;
    esac
done
mountpoint=${mountpoint:-/mnt/example}

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
command -v swift >/dev/null 2>&1 || fail "swift is not on PATH; install the Swift 6 toolchain first"

if [[ "${NPFS_NO_BUILD:-0}" != 1 ]]; then
    echo "npfs: building (release)"
    swift build -c release --product npfs
fi
bin=${NPFS_BIN:-$PWD/.build/release/npfs}
[[ -x "$bin" ]] || fail "no binary at $bin"
if [[ $build_only -eq 1 ]]; then
    echo "npfs: built $bin"
    exit 0
fi

# `npfs` on the PATH, for the README's commands; mount(8) finds its helpers in
# /usr/local/bin too (its PATH is /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin).
prefix=${NPFS_PREFIX:-/usr/local}
link=$prefix/bin/npfs
if [[ "${NPFS_NO_LINK:-0}" == 1 ]]; then
    :
elif [[ -e "$link" && ! -L "$link" ]]; then
    echo "npfs: $link exists and is not a link; left as it is" >&2
elif [[ "$(readlink "$link" 2>/dev/null)" != "$bin" ]]; then
    if as_root mkdir -p "$(dirname "$link")" && as_root ln -sfn "$bin" "$link"; then echo "npfs: linked $link -> $bin"; else echo "npfs: could not link $link" >&2; fi
fi
if [[ $install_only -eq 1 ]]; then
    # The man page, from the command definitions (swift-argument-parser's generate-manual),
    # and the shell completions the same definitions give.
    generate=${NPFS_GENERATE_MANUAL:-$PWD/.build/release/generate-manual}
    if [[ "${NPFS_NO_BUILD:-0}" != 1 ]]; then
        swift build -c release --product generate-manual >/dev/null
    fi
    [[ -x "$generate" ]] || fail "no generate-manual at $generate"
    pages=$(mktemp -d)
    trap 'rm -rf "$pages"' EXIT
    "$generate" "$bin" --output-directory "$pages" --section 1 >/dev/null
    "$bin" --generate-completion-script bash > "$pages/npfs.bash"
    "$bin" --generate-completion-script zsh > "$pages/_npfs"
    as_root install -D -m 0644 "$pages/npfs.1" "$prefix/share/man/man1/npfs.1"
    as_root install -D -m 0644 "$pages/npfs.bash" "$prefix/share/bash-completion/completions/npfs"
    as_root install -D -m 0644 "$pages/_npfs" "$prefix/share/zsh/site-functions/_npfs"
    echo "npfs: installed $prefix/share/man/man1/npfs.1 (man npfs) and bash and zsh completions"
    exit 0
fi

mountpoint=$(realpath -m -- "$mountpoint")
# Listing reaches the daemon (a stat may be answered from the kernel's cache for a second).
list_error=$(ls -f -- "$mountpoint" 2>&1 >/dev/null) || true
if [[ "$list_error" == *"not connected"* ]]; then
    echo "npfs: clearing the stale mount at $mountpoint (its daemon died)"
    "$bin" unmount "$mountpoint"
fi
fstype=$(findmnt -rn -o FSTYPE --mountpoint "$mountpoint" 2>/dev/null | tail -n 1) || true
if [[ "$fstype" == fuse.npfs ]]; then
    echo "npfs: already mounted at $mountpoint"
    exit 0
elif [[ -n "$fstype" ]]; then
    fail "$mountpoint is already a mount point of something else ($fstype)"
fi
# Create what is missing of the path, and take it away again if the mount fails.
created=""
probe=$mountpoint
while [[ ! -e "$probe" ]]; do created=$probe; probe=$(dirname -- "$probe"); done
mkdir -p -- "$mountpoint"
if ! "$bin" mount "${mount_args[@]}" "$mountpoint"; then
    if [[ -n "$created" ]]; then
        dir=$mountpoint
        while rmdir -- "$dir" 2>/dev/null && [[ "$dir" != "$created" ]]; do dir=$(dirname -- "$dir"); done
    fi
    exit 1
fi
cat <<USAGE
npfs: mounted at $mountpoint; every name there is a named pipe.
  cat $mountpoint/HELLO &          # waits for a writer
  echo hello > $mountpoint/HELLO   # the reader prints hello
  ls $mountpoint                   # the live pipes
  npfs status $mountpoint          # what each pipe is doing
Unmount with: npfs unmount $mountpoint
USAGE
