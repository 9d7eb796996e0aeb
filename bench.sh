#!/usr/bin/env bash
# npfs against a kernel FIFO on this machine, in one run: throughput, round-trip latency,
# fan-in, idle pipes at scale, blocked readers, and npfs's CPU per GiB moved.
#
#   ./bench.sh [--quick] [--reps N] [--size MIB] [--rounds N] [--pipes N] [--readers N] [--out DIR]
#   ./bench.sh --cluster [--reps N] [--size MIB] [--out DIR]   (see bench-cluster.sh)
#
# Builds the release binaries, mounts npfs in a temporary directory (twice: capacity 64K
# and 1M), and alternates the kernel FIFO and npfs in every measurement, swapping which
# goes first each repetition. Prints each repetition, then medians with min-max and the
# median of the per-repetition npfs/FIFO ratios; writes bench.json and bench.png (a chart
# drawn with matplotlib: Debian's python3-matplotlib, installed with apt if missing; the
# system Python's packages are never touched by pip) into the output directory. Last, it
# counts instructions per 4 KiB block with callgrind against the C ceiling daemon
# (./instructions.sh; --quick: fewer blocks and readers), into instructions.txt.
# Figures, not a test: nothing here passes or fails on speed. Needs root or fuse access.
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"

reps=5 size_mib=512 rounds=20000 pipes=10000 readers=1000 out=bench-results blocks=20000
usage() { sed -n 5p "$0" | sed 's/^#   //'; }
# Pipes across hosts: two cluster mounts of a PostgreSQL server of its own (bench-cluster.sh).
if [[ ${1:-} == --cluster ]]; then shift; exec ./bench-cluster.sh "$@"; fi
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) reps=2 size_mib=32 rounds=2000 pipes=2000 readers=200 blocks=2000; shift ;;
        --reps|--size|--rounds|--pipes|--readers|--out)
            [[ $# -ge 2 ]] || { echo "bench.sh: $1 needs a value" >&2; exit 2; }
            case $1 in
                --reps) reps=$2 ;; --size) size_mib=$2 ;; --rounds) rounds=$2 ;;
                --pipes) pipes=$2 ;; --readers) readers=$2 ;; --out) out=$2 ;;
            esac
            if [[ $1 != --out && ! $2 =~ ^[1-9][0-9]*$ ]]; then echo "bench.sh: $1 needs a positive number, not '$2'" >&2; exit 2; fi
            shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

./mount.sh --build-only >/dev/null
swift build -c release --product npfs-bench 2>&1 | grep -E "error|warning: unre" >&2 || true
bin=$PWD/.build/release/npfs
tool=$PWD/.build/release/npfs-bench
[[ -x $bin && -x $tool ]] || { echo "bench.sh: the release build failed" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/npfs-bench.XXXXXX)
fifos=$(mktemp -d /dev/shm/npfs-bench.XXXXXX)   # tmpfs, where FIFOs live in RAM
raw=$out/bench.tsv
: > "$raw"
declare -A mnt daemon
cleanup() {
    for cap in 65536 1048576; do
        [[ -n ${mnt[$cap]:-} ]] && { "$bin" unmount "${mnt[$cap]}" >/dev/null 2>&1 || fusermount3 -uz "${mnt[$cap]}" 2>/dev/null || true; }
    done
    rm -rf "$work" "$fifos"
}
trap cleanup EXIT
for cap in 65536 1048576; do
    mnt[$cap]=$work/npfs-$cap
    mkdir -p "${mnt[$cap]}"
    "$bin" mount -o "capacity=$cap" "${mnt[$cap]}"
    daemon[$cap]=$(getfattr --absolute-names --only-values -n user.npfs.pid "${mnt[$cap]}")
done
mkfifo "$work/fifo" "$work/ab" "$work/ba"
ticks=$(getconf CLK_TCK)
cpus=$(nproc)

# A record: kind, case, repetition, system, value (, daemon CPU seconds).
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" | tee -a "$raw" | awk -F'\t' '{ printf "  %-10s %-16s rep %-3s %-5s %s\n", $1, $2, $3, $4, $5 }'; }
cpu_seconds() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
threads_of() { awk '/^Threads/ { print $2 }' "/proc/$1/status"; }
order() { if (( $1 % 2 )); then echo "fifo npfs"; else echo "npfs fifo"; fi; }

# One transfer of $size_mib MiB through $1 by a dd writer and a dd reader of block $2, the
# FIFO given capacity $3; checks every byte arrived; prints seconds.
transfer() {
    local path=$1 block=$2 cap=$3 count start end got
    count=$(( size_mib * 1048576 / block ))
    start=$EPOCHREALTIME
    dd if="$path" of=/dev/null bs="$block" 2> "$work/reader.err" &
    local reader=$!
    "$tool" capacity "$cap" "$path" dd if=/dev/zero bs="$block" count="$count" status=none
    wait "$reader"
    end=$EPOCHREALTIME
    got=$(awk '/bytes/ { print $1; exit }' "$work/reader.err")
    [[ $got == $(( count * block )) ]] || { echo "bench.sh: $path: $got bytes arrived of $(( count * block ))" >&2; exit 1; }
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.6f", b - a }'
}

echo "== throughput: dd writer and reader, $size_mib MiB per run, $reps repetitions (GB/s)"
for cap in 65536 1048576; do
    for block in 4096 65536 1048576; do
        label="$((block / 1024))K/$((cap / 1024))K"
        for rep in $(seq "$reps"); do
            for system in $(order "$rep"); do
                if [[ $system == fifo ]]; then
                    seconds=$(transfer "$work/fifo" "$block" "$cap"); cpu=""
                else
                    before=$(cpu_seconds "${daemon[$cap]}")
                    seconds=$(transfer "${mnt[$cap]}/tp" "$block" "$cap")
                    cpu=$(awk -v a="$before" -v b="$(cpu_seconds "${daemon[$cap]}")" 'BEGIN { printf "%.3f", b - a }')
                fi
                record tp "$label" "$rep" "$system" "$(awk -v s="$seconds" -v n="$size_mib" 'BEGIN { printf "%.3f", n * 1048576 / s / 1e9 }')" "$cpu"
            done
        done
    done
done

echo "== round trips over two pipes, $rounds per run (microseconds)"
all_cpus="0-$((cpus - 1))"
for pin in unpinned pinned; do
    pre=()
    if [[ $pin == pinned ]]; then
        pre=(taskset -c 0)
        taskset -a -p -c 0 "${daemon[65536]}" >/dev/null
        sleep 0.3   # the daemon checks its affinity ten times a second
    fi
    for message in 1 4096; do
        for rep in $(seq "$reps"); do
            for system in $(order "$rep"); do
                if [[ $system == fifo ]]; then a=$work/ab b=$work/ba; else a=${mnt[65536]}/ping b=${mnt[65536]}/pong; fi
                us=$("${pre[@]}" "$tool" pingpong "$a" "$b" "$message" "$rounds")
                record "rtt-$pin" "${message}B" "$rep" "$system" "$us"
            done
        done
    done
    [[ $pin == pinned ]] && taskset -a -p -c "$all_cpus" "${daemon[65536]}" >/dev/null
done

echo "== fan-in: 8 writers of 512-byte records, one reader checking each ($size_mib MiB, MB/s)"
for rep in $(seq "$reps"); do
    for system in $(order "$rep"); do
        if [[ $system == fifo ]]; then p=$work/fifo; else p=${mnt[65536]}/fanin; fi
        rate=$("$tool" fanin "$p" 8 "$size_mib")
        record fanin "8x512B" "$rep" "$system" "$rate"
    done
done

echo "== scale: $pipes idle pipes held open (ls and ls -l in seconds, daemon memory per pipe)"
mkdir "$fifos/dir"
n=${daemon[65536]}
for system in fifo npfs; do
    if [[ $system == fifo ]]; then dir=$fifos/dir; flag=--fifo; else dir=${mnt[65536]}; flag=; fi
    rss_before=$(rss_kib "$n")
    coproc HOLD { "$tool" hold "$dir" "$pipes" $flag; }
    read -r ready <&"${HOLD[0]}"
    [[ $ready == ready ]] || { echo "bench.sh: holding $pipes pipes failed" >&2; exit 1; }
    if [[ $system == npfs ]]; then
        sleep 1.5   # let the daemon settle (idle names, trims)
        record scale memory 1 npfs "$(awk -v a="$rss_before" -v b="$(rss_kib "$n")" -v p="$pipes" 'BEGIN { printf "%.0f", (b - a) * 1024 / p }')"
    fi
    for rep in $(seq "$reps"); do
        for listing in ls "ls -l"; do
            start=$EPOCHREALTIME
            $listing "$dir" > /dev/null
            record scale "$listing" "$rep" "$system" "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')"
        done
        if [[ $system == npfs ]]; then
            start=$EPOCHREALTIME
            "$bin" status "$dir" > /dev/null
            record scale "npfs status" "$rep" npfs "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')"
        fi
    done
    hold_pid=$HOLD_PID
    eval "exec ${HOLD[1]}>&-"
    wait "$hold_pid"
done

echo "== $readers readers blocked in empty pipes (daemon threads and memory)"
threads_before=$(threads_of "$n") rss_before=$(rss_kib "$n")
coproc READERS { "$tool" readers "${mnt[65536]}" "$readers"; }
read -r ready <&"${READERS[0]}"
sleep 1
record blocked threads-before 1 npfs "$threads_before"
record blocked threads-during 1 npfs "$(threads_of "$n")"
record blocked memory-per-reader 1 npfs "$(awk -v a="$rss_before" -v b="$(rss_kib "$n")" -v p="$readers" 'BEGIN { printf "%.0f", (b - a) * 1024 / p }')"
readers_pid=$READERS_PID
eval "exec ${READERS[1]}>&-"
wait "$readers_pid"

# Summary, JSON and chart.
# The chart needs matplotlib: the python3 on the PATH if it has it, else Debian's
# (/usr/bin/python3 with python3-matplotlib, installed if missing).
python=python3
if ! python3 -c 'import matplotlib' 2>/dev/null && [[ -x /usr/bin/python3 ]]; then
    python=/usr/bin/python3
    if ! "$python" -c 'import matplotlib' 2>/dev/null; then
        echo "bench.sh: installing python3-matplotlib for the chart (apt)" >&2
        apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get); [[ $(id -u) -eq 0 ]] || apt_get=(sudo -n "${apt_get[@]}")
        { "${apt_get[@]}" install -y -qq python3-matplotlib >/dev/null 2>&1 \
            || { "${apt_get[@]}" update -qq >/dev/null 2>&1 && "${apt_get[@]}" install -y -qq python3-matplotlib >/dev/null 2>&1; }; } \
            || echo "bench.sh: python3-matplotlib could not be installed: no chart" >&2
    fi
fi
"$python" - "$raw" "$out" "$reps" "$size_mib" "$rounds" "$pipes" "$readers" "$(uname -r)" "$cpus" <<'PY'
import json, statistics, sys, datetime
raw, out, reps, size_mib, rounds, pipes, readers, kernel, cpus = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(raw) if line.strip()]
data = {}
for kind, case, rep, system, value, cpu in rows:
    entry = data.setdefault((kind, case), {})
    entry.setdefault(system, {})[int(rep)] = float(value)
    if cpu:
        entry.setdefault("cpu", {})[int(rep)] = float(cpu)

def summary(values):
    v = sorted(values)
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "reps": values}

result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "machine": {"kernel": kernel, "cpus": int(cpus)},
          "settings": {"repetitions": int(reps), "mebibytes_per_run": int(size_mib), "round_trips": int(rounds),
                       "idle_pipes": int(pipes), "blocked_readers": int(readers)},
          "throughput_gb_per_s": [], "round_trip_us": [], "fan_in_mb_per_s": None, "scale": {}, "blocked_readers": {}}
lines = []
def fmt(s, digits):
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"
def ratios(entry):
    return [entry["npfs"][r] / entry["fifo"][r] for r in sorted(entry["npfs"]) if r in entry["fifo"] and entry["fifo"][r] > 0]

lines.append(f"{'throughput, GB/s':<28}{'FIFO median [min-max]':<26}{'npfs median [min-max]':<26}{'npfs/FIFO by rep (median)':<34}{'npfs CPU s/GiB'}")
for (kind, case), entry in data.items():
    if kind != "tp": continue
    block, cap = case.split("/")
    r = ratios(entry)
    gib = int(size_mib) / 1024
    cpu = [c / gib for c in entry.get("cpu", {}).values()]
    item = {"block": block, "capacity": cap, "fifo": summary(list(entry["fifo"].values())),
            "npfs": summary(list(entry["npfs"].values())), "ratio": summary(r),
            "npfs_daemon_cpu_s_per_gib": summary(cpu) if cpu else None}
    result["throughput_gb_per_s"].append(item)
    by_rep = " ".join(f"{x:.2f}" for x in r) + f" ({statistics.median(r):.2f})"
    lines.append(f"{block + ' blocks, ' + cap + ' cap':<28}{fmt(item['fifo'], 3):<26}{fmt(item['npfs'], 3):<26}"
                 f"{by_rep:<34}" + (f"{statistics.median(cpu):.2f}" if cpu else ""))
lines.append("")
lines.append(f"{'round trip, us':<28}{'FIFO median [min-max]':<26}{'npfs median [min-max]':<26}{'npfs/FIFO by rep (median)'}")
for (kind, case), entry in data.items():
    if not kind.startswith("rtt-"): continue
    r = ratios(entry)
    item = {"message": case, "pinned": kind == "rtt-pinned", "fifo": summary(list(entry["fifo"].values())),
            "npfs": summary(list(entry["npfs"].values())), "ratio": summary(r)}
    result["round_trip_us"].append(item)
    lines.append(f"{case + ', ' + kind[4:]:<28}{fmt(item['fifo'], 1):<26}{fmt(item['npfs'], 1):<26}"
                 f"{' '.join(f'{x:.2f}' for x in r)} ({statistics.median(r):.2f})")
entry = data[("fanin", "8x512B")]
r = ratios(entry)
result["fan_in_mb_per_s"] = {"writers": 8, "record_bytes": 512, "fifo": summary(list(entry["fifo"].values())),
                             "npfs": summary(list(entry["npfs"].values())), "ratio": summary(r)}
lines.append("")
lines.append(f"{'fan-in 8 writers, MB/s':<28}{fmt(result['fan_in_mb_per_s']['fifo'], 0):<26}"
             f"{fmt(result['fan_in_mb_per_s']['npfs'], 0):<26}{' '.join(f'{x:.2f}' for x in r)} ({statistics.median(r):.2f})")
lines.append("")
lines.append(f"{pipes} idle pipes: {'tmpfs FIFOs':<24}{'npfs'}")
for listing in ("ls", "ls -l"):
    entry = data[("scale", listing)]
    s = {k: summary(list(entry[k].values())) for k in ("fifo", "npfs")}
    result["scale"][listing.replace(" ", "_") + "_seconds"] = s
    lines.append(f"  {listing + ', s':<18}{fmt(s['fifo'], 3):<24}{fmt(s['npfs'], 3)}")
status = summary(list(data[("scale", "npfs status")]["npfs"].values()))
result["scale"]["npfs_status_seconds"] = status
lines.append(f"  {'npfs status, s':<18}{'':<24}{fmt(status, 3)}")
memory = data[("scale", "memory")]["npfs"][1]
result["scale"]["npfs_daemon_bytes_per_idle_pipe"] = memory
lines.append(f"  npfs daemon memory per idle pipe: {memory:.0f} bytes")
blocked = {case: data[("blocked", case)]["npfs"][1] for case in ("threads-before", "threads-during", "memory-per-reader")}
result["blocked_readers"] = {"count": int(readers), "daemon_threads_before": blocked["threads-before"],
                             "daemon_threads_during": blocked["threads-during"],
                             "daemon_bytes_per_blocked_reader": blocked["memory-per-reader"]}
lines.append(f"{readers} blocked readers: daemon threads {blocked['threads-before']:.0f} before, "
             f"{blocked['threads-during']:.0f} during; {blocked['memory-per-reader']:.0f} bytes of daemon memory each")
print("\n== summary (medians of " + reps + " repetitions)")
print("\n".join(lines))
json.dump(result, open(out + "/bench.json", "w"), indent=1)
print(f"\nfigures: {out}/bench.json")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
except ImportError:
    sys.exit(0)
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
blocks = ["4K", "64K", "1024K"]
width = 0.2
series = [("fifo", "64K", "FIFO, 64K capacity", "#9ab"), ("npfs", "64K", "npfs, 64K capacity", "#e83"),
          ("fifo", "1024K", "FIFO, 1M capacity", "#456"), ("npfs", "1024K", "npfs, 1M capacity", "#a30")]
for i, (system, cap, label, color) in enumerate(series):
    values = [next((t[system]["median"] for t in result["throughput_gb_per_s"] if t["block"] == b and t["capacity"] == cap), 0) for b in blocks]
    left.bar([x + (i - 1.5) * width for x in range(len(blocks))], values, width, label=label, color=color)
left.set_xticks(range(len(blocks)), ["4 KiB", "64 KiB", "1 MiB"])
left.set_xlabel("block size (dd bs, writer and reader)")
left.set_ylabel("GB/s (log scale, higher is better)")
left.set_yscale("log")
top = max(t[s]["median"] for t in result["throughput_gb_per_s"] for s in ("fifo", "npfs"))
bottom = min(t[s]["median"] for t in result["throughput_gb_per_s"] for s in ("fifo", "npfs"))
ticks = [x for x in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if bottom / 2 <= x <= top * 4]
left.set_ylim(bottom / 2, top * 4)
left.set_yticks(ticks, [f"{x:g}" for x in ticks])
left.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
left.set_title("Throughput")
left.legend(fontsize=8, ncol=2, loc="upper left")
cases = [(t["message"], t["pinned"]) for t in result["round_trip_us"]]
labels = [f"{m}\n{'one CPU' if p else 'unpinned'}" for m, p in cases]
for i, (system, label, color) in enumerate([("fifo", "kernel FIFO", "#9ab"), ("npfs", "npfs", "#e83")]):
    right.bar([x + (i - 0.5) * 0.35 for x in range(len(cases))], [t[system]["median"] for t in result["round_trip_us"]], 0.35, label=label, color=color)
right.set_xticks(range(len(cases)), labels)
right.set_ylabel("microseconds per round trip (lower is better)")
right.set_title("Ping-pong latency over two pipes")
right.legend(fontsize=8)
fig.suptitle(f"npfs vs kernel FIFO, {cpus} CPUs, Linux {kernel}, medians of {reps} repetitions")
fig.tight_layout()
fig.savefig(out + "/bench.png", dpi=90)
print(f"chart: {out}/bench.png")
PY

# Instructions per block: countable where seconds are not (see ./instructions.sh).
./instructions.sh --npfs "$bin" --blocks "$blocks" --readers "$readers" 2>/dev/null | tee "$out/instructions.txt"
