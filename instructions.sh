#!/usr/bin/env bash
# Instructions per 4 KiB block moved through a pipe, counted by valgrind's callgrind:
# repeatable for a binary and a workload, where seconds on a shared machine are not.
#
#   ./instructions.sh [--blocks N] [--readers N] [--npfs BIN] [--ceiling FUSEPIPE_C] [--only plain|broadcast]
#
# Each daemon runs in the foreground under callgrind. After 200 warm-up blocks its counters
# are zeroed, `dd` moves N blocks of 4 KiB from a writer to a reader through one pipe, and
# the counters are dumped: the figure is the instructions of the daemon's serving threads
# over N (requests, copies, replies). npfs's timers (housekeeping once a second, the CPU
# check ten times a second) run on other threads and are left out: they cost per second,
# not per request, and under callgrind a run lasts long enough for them to look like
# hundreds of instructions per block, the more the busier the machine. The C ceiling has
# no timers: all of it is counted. Counted:
#   npfs, one serving thread      the cost of handling the requests: a block written and
#                                 read back by one process (repeatable), and dd to dd
#   npfs, default threads         adds what its threads cost each other under valgrind,
#                                 where they take turns (a lock's spinning never succeeds)
#   C ceiling, the same two ways  ../shared/ceiling/fusepipe.c if present (or --ceiling)
#   npfs broadcast                a write into a ring with --readers readers that never
#                                 read, and a read with 1 and with --readers readers
#                                 reading: neither may grow with the number of readers
# npfs is a copy of the release binary stripped of debug information (valgrind 3.19 cannot
# read Swift's DWARF 5), mounted with -o io_uring=off: it counts the /dev/fuse serving
# threads, as the C ceiling's, and over io_uring under valgrind 3.19 every request hangs
# (seen: one queue's thread never gets to register its entries). Needs root (mounts in /tmp), valgrind, gcc and libfuse3-dev for the
# ceiling. Figures, not a test.
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"

blocks=20000 readers=1000 npfs="" ceiling=../shared/ceiling/fusepipe.c only=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --blocks|--readers|--npfs|--ceiling|--only)
            [[ $# -ge 2 ]] || { echo "instructions.sh: $1 needs a value" >&2; exit 1; }
            case "$1" in --blocks) blocks=$2 ;; --readers) readers=$2 ;; --npfs) npfs=$2 ;; --ceiling) ceiling=$2 ;; --only) only=$2 ;; esac
            shift 2 ;;
        *) echo "instructions.sh: unknown argument $1 (see the top of $0)" >&2; exit 1 ;;
    esac
done
[[ "$blocks" =~ ^[1-9][0-9]*$ && "$readers" =~ ^[1-9][0-9]*$ ]] || { echo "instructions.sh: --blocks and --readers take positive numbers" >&2; exit 1; }
[[ -z "$only" || "$only" == plain || "$only" == broadcast ]] || { echo "instructions.sh: --only takes plain or broadcast" >&2; exit 1; }
if ! command -v valgrind >/dev/null 2>&1; then
    apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get); [[ $(id -u) -eq 0 ]] || apt_get=(sudo "${apt_get[@]}")
    "${apt_get[@]}" install -y -qq valgrind >/dev/null || { "${apt_get[@]}" update -qq && "${apt_get[@]}" install -y -qq valgrind >/dev/null; }
fi

work=$(mktemp -d)
mounts=()
cleanup() {
    for m in "${mounts[@]}"; do
        if grep -q " $m fuse" /proc/mounts; then fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; fi
        rmdir "$m" 2>/dev/null || true
    done
    jobs -p | xargs -r kill 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "$npfs" ]]; then
    swift build -c release --product npfs >/dev/null
    npfs=.build/release/npfs
fi
cp "$npfs" "$work/npfs" && strip -g "$work/npfs"
if [[ -f "$ceiling" ]]; then
    gcc -O2 $(pkg-config --cflags fuse3) -o "$work/fusepipe" "$ceiling" $(pkg-config --libs fuse3) -lpthread
fi

# count LABEL KIND N -- DAEMON ARGS... MOUNTPOINT: prints LABEL and the daemon's
# instructions per block (KIND alternate: one process writes a block and reads it back,
# so nothing ever waits and only the once-a-second housekeeping varies; pair: one dd writer and one dd
# reader, whose requests wait or not as the two happen to meet; idle: one dd writer
# while N readers hold the pipe open and never read; fanout: one dd writer and N readers,
# each reading every block, the figure then per block and reader).
count() {
    local label=$1 kind=$2 n=$3; shift 4
    local mnt=${!#} out=$work/count$((++counted))
    mkdir -p "$out"
    mounts+=("$mnt")
    # npfs: only inside its serving threads (the entry of each, ServingLoop.startWorker's closure).
    local only_serving=()
    [[ $(basename "$1") == npfs ]] && only_serving=(--toggle-collect='*ServingLoopC11startWorker*')
    valgrind --tool=callgrind "${only_serving[@]}" --callgrind-out-file="$out/cg" "$@" >"$out/log" 2>&1 &
    local vg=$!
    for _ in $(seq 300); do grep -q " $mnt fuse" /proc/mounts && break; sleep 0.2; done
    grep -q " $mnt fuse" /proc/mounts || { echo "instructions.sh: $label did not mount: $(tail -3 "$out/log")" >&2; exit 1; }
    local pipe=$mnt/P holder="" hold_in="" total moved=$blocks per=1
    if [[ $kind == idle ]]; then
        coproc HOLDER { python3 -c '
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds = [os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK) for _ in range(int(sys.argv[2]))]
print("ready", flush=True)
sys.stdin.read()' "$pipe" "$n"; }
        holder=$HOLDER_PID hold_in=${HOLDER[1]}
        local ready; read -r ready <&"${HOLDER[0]}"
        [[ $ready == ready ]] || { echo "instructions.sh: holding $n readers failed" >&2; exit 1; }
    fi
    move() {   # move BLOCKS
        case $kind in
            alternate) timeout 1800 python3 -c '
import os, sys
fd, block = os.open(sys.argv[1], os.O_RDWR), bytes(4096)
for _ in range(int(sys.argv[2])):
    os.write(fd, block)
    assert len(os.read(fd, 4096)) == 4096' "$pipe" "$1" ;;
            pair) timeout 1800 sh -c "dd if='$pipe' of=/dev/null bs=4k 2>/dev/null & dd if=/dev/zero of='$pipe' bs=4k count=$1 2>/dev/null; wait" ;;
            idle) timeout 1800 dd if=/dev/zero of="$pipe" bs=4k count="$1" 2>/dev/null ;;
            fanout)
                # The readers' opens wait for the writer's, which completes them all at
                # once, before its first write: every reader gets every block.
                local i pids=()
                for i in $(seq "$n"); do cat "$pipe" > /dev/null & pids+=($!); done
                for _ in $(seq 600); do [[ $(getfattr --only-values -n user.npfs.readers "$pipe" 2>/dev/null) == "$n" ]] && break; sleep 0.2; done
                timeout 1800 dd if=/dev/zero of="$pipe" bs=4k count="$1" 2>/dev/null
                wait "${pids[@]}" ;;
        esac
    }
    move 20
    callgrind_control -z "$vg" >/dev/null 2>&1
    [[ $kind == fanout ]] && { moved=$((blocks / n > 0 ? blocks / n : 1)); per=$n; }
    move "$moved"
    callgrind_control -d "$vg" >/dev/null 2>&1
    if [[ -n "$holder" ]]; then eval "exec $hold_in>&-"; wait "$holder" 2>/dev/null || true; fi
    fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
    wait "$vg" 2>/dev/null || true
    rmdir "$mnt" 2>/dev/null || true
    total=$(grep -h "^summary:" "$out"/cg.*1 | awk '{ print $2 }' | head -1)
    printf '%-52s %8d\n' "$label" "$((total / moved / per))"
}

counted=0
echo "== instructions per 4 KiB block moved ($blocks blocks, callgrind)"
if [[ "$only" != broadcast ]]; then
for kind in alternate pair; do
    echo "-- $kind"
    count "npfs, one serving thread" "$kind" 0 -- "$work/npfs" mount -f -o threads=1,io_uring=off "$(mktemp -d)"
    if [[ -x "$work/fusepipe" ]]; then
        count "C ceiling, one serving thread" "$kind" 0 -- "$work/fusepipe" -s -f -o maxwrite=1048576,cap=65536 "$(mktemp -d)"
    fi
done
count "npfs, default threads" pair 0 -- "$work/npfs" mount -f -o io_uring=off "$(mktemp -d)"
if [[ -x "$work/fusepipe" ]]; then
    count "C ceiling, default threads" pair 0 -- "$work/fusepipe" -f -o maxwrite=1048576,cap=65536 "$(mktemp -d)"
fi
fi
[[ "$only" == plain ]] && exit 0
echo "== broadcast (npfs, one serving thread)"
count "ring, a write with $readers readers that never read" idle "$readers" -- \
    "$work/npfs" mount -f -o delivery=broadcast,mode=ring,overflow=overwrite,threads=1,io_uring=off "$(mktemp -d)"
for r in 1 "$readers"; do
    count "fifo, $r readers reading: per block and reader" fanout "$r" -- \
        "$work/npfs" mount -f -o delivery=broadcast,threads=1,io_uring=off "$(mktemp -d)"
done
