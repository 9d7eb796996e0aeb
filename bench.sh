#!/usr/bin/env bash
# Throughput of npfs against a kernel FIFO, measured in the same run on this machine.
#   ./bench.sh [MEBIBYTES]   (default 1024 per measurement; builds release first)
# Prints MB/s for each write size and the ratio npfs/FIFO. Figures, not a test: nothing fails.
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"
total_mib=${1:-1024}
./mount.sh --build-only >/dev/null
bin=$PWD/.build/release/npfs
work=$(mktemp -d)
mnt="$work/mnt"
mkdir "$mnt"
"$bin" mount "$mnt"
cleanup() { "$bin" unmount "$mnt" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
mkfifo "$work/fifo"

# One transfer of $total_mib MiB in writes of $1 bytes through path $2, read in 1 MiB
# reads; prints MB/s (10^6 bytes per second).
measure() {
    local block=$1 path=$2
    local count=$(( total_mib * 1048576 / block ))
    dd if="$path" of=/dev/null bs=1M status=none &
    local reader=$!
    local start end
    start=$(date +%s%N)
    dd if=/dev/zero of="$path" bs="$block" count="$count" status=none
    wait "$reader"
    end=$(date +%s%N)
    echo $(( count * block * 1000 / (end - start) ))
}

printf '%-12s %12s %12s %8s\n' "write size" "FIFO MB/s" "npfs MB/s" "ratio"
for block in 4096 65536 131072 1048576; do
    fifo=$(measure "$block" "$work/fifo")
    npfs=$(measure "$block" "$mnt/bench")
    printf '%-12s %12s %12s %8s\n' "$block" "$fifo" "$npfs" "$(awk -v a="$npfs" -v b="$fifo" 'BEGIN { printf "%.2f", a / b }')"
done
