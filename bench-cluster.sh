#!/usr/bin/env bash
# Pipes across hosts (-o cluster=): two npfs mounts of one PostgreSQL server, as two hosts,
# on this machine. Run by `./bench.sh --cluster`; prints figures and writes cluster.json.
#
#   ./bench-cluster.sh [--reps N] [--size MIB] [--storage MIB] [--out DIR]
#
# Starts a PostgreSQL server of its own (Debian's postgresql, installed if missing; initdb
# in a temporary directory, run by a user made for it and removed after, a free port of
# 127.0.0.1, a password role), mounts A and B in temporary directories and measures, with
# the writer on A and the reader on B: dd throughput in 64 KiB and 4 KiB blocks (median of
# --reps), the 1-byte wake-up (a byte written on A until the read on B returns: half of a
# round trip A -> B -> A, 200 of them, p50 and p99) and the open rendezvous (a writer's
# open on A while a reader waits on B, 50 of them, p50), and storage: npfs's tables
# (pg_total_relation_size) once --storage MiB (default 1024, 0: skip) have moved through
# a pipe and it is closed, as autovacuum leaves them (no manual VACUUM; up to 3 minutes).
# Figures, not a test.
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"

reps=3 size_mib=64 storage_mib=1024 out=bench-results
while [[ $# -gt 0 ]]; do
    case $1 in
        --reps|--size|--storage|--out)
            [[ $# -ge 2 ]] || { echo "bench-cluster.sh: $1 needs a value" >&2; exit 2; }
            case $1 in --reps) reps=$2 ;; --size) size_mib=$2 ;; --storage) storage_mib=$2 ;; --out) out=$2 ;; esac
            shift 2 ;;
        *) echo "bench-cluster.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench-cluster.sh: needs root (it makes a user for the server)" >&2; exit 1; }
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
./mount.sh --build-only >/dev/null
bin=$PWD/.build/release/npfs
mkdir -p "$out"

work=$(mktemp -d /tmp/npfs-cluster-bench.XXXXXX)
user=npfsbench$$
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PGPASSWORD=bench$RANDOM$RANDOM
cleanup() {
    for m in "$work/a" "$work/b"; do mountpoint -q "$m" 2>/dev/null && { "$bin" unmount "$m" >/dev/null 2>&1 || fusermount3 -uz "$m"; }; done
    [[ -f $work/data/postmaster.pid ]] && setpriv --reuid="$user" --regid="$user" --init-groups -- "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1
    userdel "$user" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$user"
mkdir -p "$work/data" "$work/a" "$work/b"
echo "$PGPASSWORD" > "$work/pw"
chown -R "$user:$user" "$work"
as_server() { setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"; }
as_server "$pgbin/initdb" -D "$work/data" -U npfs --pwfile="$work/pw" --auth=scram-sha-256 --no-sync >/dev/null
as_server "$pgbin/pg_ctl" -D "$work/data" -l "$work/server.log" -w -o "-p $port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
"$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U npfs -d postgres -c "CREATE DATABASE npfs" >/dev/null
url="postgresql://npfs@127.0.0.1:$port/npfs"
"$bin" mount -o "cluster=$url,host=a" "$work/a"
"$bin" mount -o "cluster=$url,host=b" "$work/b"

median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
throughput() {   # block size, count -> MB/s
    local bs=$1 count=$2 name=T$RANDOM
    (timeout 300 dd if="$work/b/$name" of=/dev/null bs="$bs" 2>/dev/null &)
    local t0=$EPOCHREALTIME
    timeout 300 dd if=/dev/zero of="$work/a/$name" bs="$bs" count="$count" 2>/dev/null
    local t1=$EPOCHREALTIME
    sleep 0.2
    python3 -c "print(f'{$bs * $count / ($t1 - $t0) / 1e6:.1f}')"
}
declare -A tp
for block in 65536 4096; do
    count=$(( size_mib * 1048576 / block / (block == 4096 ? 8 : 1) ))
    values=()
    for rep in $(seq "$reps"); do
        v=$(throughput "$block" "$count")
        echo "throughput $((block / 1024)) KiB blocks, rep $rep: $v MB/s"
        values+=("$v")
    done
    tp[$block]=$(printf '%s\n' "${values[@]}" | median)
done

latency=$(python3 - "$work/a" "$work/b" <<'EOF'
import os, sys, time, statistics
a, b = sys.argv[1], sys.argv[2]
pid = os.fork()
if pid == 0:   # host B's side: answers every byte from A
    r = os.open(b + "/ping", os.O_RDONLY); w = os.open(b + "/pong", os.O_WRONLY)
    while (byte := os.read(r, 1)):
        os.write(w, byte)
    os._exit(0)
w = os.open(a + "/ping", os.O_WRONLY); r = os.open(a + "/pong", os.O_RDONLY)
trips = []
for _ in range(200):
    t0 = time.perf_counter(); os.write(w, b"x"); os.read(r, 1); trips.append((time.perf_counter() - t0) / 2 * 1000)
os.close(w); os.waitpid(pid, 0)
opens = []
for i in range(50):   # a reader waits on B; the writer's open on A
    child = os.fork()
    if child == 0:
        fd = os.open(b + "/r%d" % i, os.O_RDONLY); os.read(fd, 1); os._exit(0)
    time.sleep(0.05)
    t0 = time.perf_counter(); fd = os.open(a + "/r%d" % i, os.O_WRONLY); opens.append((time.perf_counter() - t0) * 1000)
    os.close(fd); os.waitpid(child, 0)
q = statistics.quantiles(trips, n=100)
print(f"{statistics.median(trips):.2f} {q[98]:.2f} {statistics.median(opens):.2f}")
EOF
)
read -r wake50 wake99 open50 <<<"$latency"

tables_size() {   # bytes in npfs's tables, with their indexes and TOAST
    "$pgbin/psql" -qtA -h 127.0.0.1 -p "$port" -U npfs -d npfs \
        -c "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'npfs' AND c.relkind = 'r'"
}
storage_closed=null storage_after=null storage_seconds=null
if (( storage_mib > 0 )); then
    (timeout 900 dd if="$work/b/BULK" of=/dev/null bs=65536 2>/dev/null &)
    timeout 900 dd if=/dev/zero of="$work/a/BULK" bs=65536 count=$(( storage_mib * 16 )) 2>/dev/null
    sleep 1
    storage_closed=$(tables_size)
    t0=$SECONDS
    while (( SECONDS - t0 < 180 )); do
        storage_after=$(tables_size)
        (( storage_after <= 64 * 1048576 )) && break
        sleep 5
    done
    storage_seconds=$(( SECONDS - t0 ))
fi
echo
echo "cluster, writer on host A, reader on host B (loopback, server and mounts on this machine):"
printf '  64 KiB blocks  %6s MB/s   (target >= 40)\n' "${tp[65536]}"
printf '   4 KiB blocks  %6s MB/s   (target >= 8)\n' "${tp[4096]}"
printf '  1-byte wake-up p50 %s ms, p99 %s ms   (targets <= 1.5, <= 5)\n' "$wake50" "$wake99"
printf '  open rendezvous p50 %s ms   (target <= 5)\n' "$open50"
if (( storage_mib > 0 )); then
    printf '  tables after %s MiB through a pipe, closed: %s MiB, %s MiB %s s later (target <= 64 MiB)\n' "$storage_mib" \
        "$(( storage_closed / 1048576 ))" "$(( storage_after / 1048576 ))" "$storage_seconds"
fi
cat > "$out/cluster.json" <<EOF
{"throughput_mb_s": {"64K": ${tp[65536]}, "4K": ${tp[4096]}}, "wakeup_ms": {"p50": $wake50, "p99": $wake99}, "rendezvous_ms": {"p50": $open50}, "storage_bytes": {"moved_mib": $storage_mib, "at_close": $storage_closed, "after": $storage_after, "seconds": $storage_seconds}}
EOF
echo "wrote $out/cluster.json"
