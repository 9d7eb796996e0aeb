#!/usr/bin/env bash
# Sets npfs up on this machine and mounts it.
#
#   ./mount.sh [MOUNTPOINT] [-o OPT[,OPT...]]   install what is missing, build, install npfs into
#                                               /usr/local/bin, mount (default /mnt/example)
#   ./mount.sh --build-only                     install what is missing and build, nothing else
#   ./mount.sh --install                        install what is missing, build, and install a copy
#                                               of npfs into /usr/local/bin (for the shell, fstab
#                                               and mount -t fuse.npfs), its man page npfs(1) and
#                                               bash and zsh completions, without mounting
#   ./mount.sh --uninstall                      remove all that --install put in place (mounts
#                                               are left alone: unmount them with npfs unmount)
#   ./mount.sh --io-uring [--persistent]        let the kernel offer FUSE over io_uring to mounts
#                                               made from now on (Linux 6.14+ built with
#                                               CONFIG_FUSE_IO_URING): sets the fuse module's
#                                               enable_uring to Y, with --persistent at every boot
#                                               too (modprobe.d and tmpfiles.d); needs root
#   ./mount.sh --no-io-uring                    set it back to N and remove what --persistent wrote
#
# Options and the mount point may come in any order. Safe to run again: an npfs already
# mounted there is left as it is, and a stale mount left by a killed daemon ("Transport
# endpoint is not connected") is cleared first. A failed mount leaves no directory behind.
# /usr/local/bin/npfs is a copy, not a link into this clone's build folder: another clone,
# a rebuild or a removed clone does not change the npfs that is installed.
# NPFS_NO_BUILD=1 skips the build, NPFS_BIN=PATH uses that binary, NPFS_NO_LINK=1 leaves
# /usr/local/bin alone, NPFS_PREFIX=DIR installs under DIR instead of /usr/local, and
# NPFS_GENERATE_MANUAL=PATH is swift-argument-parser's generate-manual, NPFS_ETC=DIR writes
# --persistent's files under DIR instead of /etc (all for tests).
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"

fail() { echo "npfs: $*" >&2; exit 1; }

build_only=0
install_only=0
uninstall=0
io_uring=""
persistent=0
mountpoint=""
mount_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-only) build_only=1; shift ;;
        --install) install_only=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        --io-uring) io_uring=on; shift ;;
        --no-io-uring) io_uring=off; shift ;;
        --persistent) persistent=1; shift ;;
        --help|-h) sed -n '2,28p' "$0"; exit 0 ;;
        -o) [[ $# -ge 2 ]] || fail "-o needs a value (see ./mount.sh --help)"
            mount_args+=(-o "$2"); shift 2 ;;
        -o*) mount_args+=(-o "${1#-o}"); shift ;;
        -*) fail "unknown option $1 (see ./mount.sh --help)" ;;
        *) [[ -z "$mountpoint" ]] || fail "more than one mount point: '$mountpoint' and '$1'"
           [[ -n "$1" ]] || fail "the mount point is an empty string"
           mountpoint=$1; shift ;;
    esac
done

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi }

# What --install puts in place, under $NPFS_PREFIX or /usr/local.
prefix=${NPFS_PREFIX:-/usr/local}
installed_binary=$prefix/bin/npfs
installed_files=("$prefix/share/man/man1/npfs.1" "$prefix/share/bash-completion/completions/npfs"
                 "$prefix/share/zsh/site-functions/_npfs")

# FUSE over io_uring: the kernel offers it at a mount's start only while the fuse module's
# enable_uring is Y, which only root can set.
if [[ -n $io_uring ]]; then
    [[ $install_only -eq 0 && $build_only -eq 0 && $uninstall -eq 0 && -z "$mountpoint" && ${#mount_args[@]} -eq 0 ]] \
        || fail "--io-uring and --no-io-uring take no other argument than --persistent"
    [[ $io_uring == on || $persistent -eq 0 ]] || fail "--persistent goes with --io-uring (--no-io-uring removes its files anyway)"
    parameter=/sys/module/fuse/parameters/enable_uring
    [[ -e $parameter ]] || fail "this kernel ($(uname -r)) has no FUSE over io_uring: it needs Linux 6.14 or later built with CONFIG_FUSE_IO_URING"
    etc=${NPFS_ETC:-/etc}
    boot_files=("$etc/modprobe.d/npfs-io-uring.conf" "$etc/tmpfiles.d/npfs-io-uring.conf")
    value=N; [[ $io_uring == on ]] && value=Y
    echo "$value" | as_root tee "$parameter" >/dev/null || fail "cannot write $parameter (root only)"
    if [[ $io_uring == on ]]; then
        said="npfs: FUSE over io_uring enabled ($parameter is Y): mounts made from now on are offered it"
        if [[ $persistent -eq 1 ]]; then
            # A fuse module reads its option when it loads; a fuse built into the kernel
            # gets the value from systemd-tmpfiles at boot.
            as_root mkdir -p -- "$etc/modprobe.d" "$etc/tmpfiles.d"
            echo "options fuse enable_uring=1" | as_root tee "${boot_files[0]}" >/dev/null
            echo "w $parameter - - - - Y" | as_root tee "${boot_files[1]}" >/dev/null
            said+=", and at every boot (${boot_files[*]})"
        fi
        echo "$said"
    else
        for file in "${boot_files[@]}"; do [[ -e $file ]] && as_root rm -f -- "$file"; done
        echo "npfs: FUSE over io_uring disabled ($parameter is N); mounts made before keep what they were given"
    fi
    exit 0
fi

if [[ $uninstall -eq 1 ]]; then
    [[ $install_only -eq 0 && $build_only -eq 0 && -z "$mountpoint" && ${#mount_args[@]} -eq 0 ]] \
        || fail "--uninstall takes no other argument"
    removed=0
    for file in "$installed_binary" "${installed_files[@]}"; do
        if [[ -e "$file" || -L "$file" ]]; then as_root rm -f -- "$file"; echo "npfs: removed $file"; removed=1; fi
    done
    [[ $removed -eq 1 ]] || echo "npfs: nothing installed under $prefix"
    exit 0
fi
mountpoint=${mountpoint:-/mnt/example}

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists fuse3 2>/dev/null || missing+=(libfuse3-dev)
# libpq, PostgreSQL's client library, for mounts whose pipes live in a cluster (-o cluster=).
pkg-config --exists libpq 2>/dev/null || missing+=(libpq-dev)
# liburing, for FUSE requests over io_uring (used when the kernel offers it).
pkg-config --exists liburing 2>/dev/null || missing+=(liburing-dev)
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
# A copy, put in place by a rename: a daemon running the previous one keeps it.
if [[ "${NPFS_NO_LINK:-0}" == 1 ]]; then
    :
elif [[ -L "$installed_binary" ]] || ! cmp -s "$bin" "$installed_binary"; then
    staged="$installed_binary.new.$$"
    if as_root install -D -m 0755 "$bin" "$staged" && as_root mv -f -- "$staged" "$installed_binary"; then
        echo "npfs: installed $installed_binary"
    else
        as_root rm -f -- "$staged" 2>/dev/null || true
        echo "npfs: could not install $installed_binary" >&2
    fi
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
    # OPTIONS (every -o), FILES, EXAMPLES and SEE ALSO, which generate-manual cannot make.
    "$bin" finish-manual < "$pages/npfs.1" > "$pages/npfs.1.finished"
    mv "$pages/npfs.1.finished" "$pages/npfs.1"
    "$bin" --generate-completion-script bash > "$pages/npfs.bash"
    "$bin" --generate-completion-script zsh > "$pages/_npfs"
    as_root install -D -m 0644 "$pages/npfs.1" "${installed_files[0]}"
    as_root install -D -m 0644 "$pages/npfs.bash" "${installed_files[1]}"
    as_root install -D -m 0644 "$pages/_npfs" "${installed_files[2]}"
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
