#!/usr/bin/env bash
# npfs against a kernel FIFO on this machine, in one run: throughput, round-trip latency,
# fan-in, idle pipes at scale, blocked readers, and npfs's CPU per GiB moved; npfs both
# over /dev/fuse and, where the kernel has FUSE over io_uring and this is root, over
# io_uring (enable_uring is turned on for the run and put back after).
#
#   ./bench.sh [--quick] [--reps N] [--size MIB] [--rounds N] [--pipes N] [--readers N] [--out DIR]
#   ./bench.sh --cluster [--reps N] [--size MIB] [--out DIR]   (see bench-cluster.sh)
#
# Builds the release binaries, mounts npfs in a temporary directory (capacity 64K and 1M,
# each over /dev/fuse and over io_uring), and alternates the kernel FIFO and the npfs
# mounts in every measurement, rotating which goes first each repetition. Prints each repetition, then medians with min-max and the
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
# npfs over /dev/fuse ("npfs") and over io_uring ("uring"), where it can be measured.
parameter=/sys/module/fuse/parameters/enable_uring
old_uring=
systems="fifo npfs"
if [[ -w $parameter ]]; then
    old_uring=$(cat "$parameter")
    echo Y > "$parameter"
    systems="fifo npfs uring"
else
    echo "bench.sh: npfs over /dev/fuse only ($parameter is missing or not writable: a kernel without FUSE over io_uring, or not root)" >&2
fi
declare -A mnt daemon
cleanup() {
    for key in "${!mnt[@]}"; do
        "$bin" unmount "${mnt[$key]}" >/dev/null 2>&1 || fusermount3 -uz "${mnt[$key]}" 2>/dev/null || true
    done
    [[ -n $old_uring ]] && echo "$old_uring" > "$parameter"
    rm -rf "$work" "$fifos"
}
trap cleanup EXIT
for cap in 65536 1048576; do
    for system in ${systems#fifo }; do
        key=$system-$cap
        mnt[$key]=$work/$key
        mkdir -p "${mnt[$key]}"
        if [[ $system == uring ]]; then transport=on; else transport=off; fi
        "$bin" mount -o "capacity=$cap,io_uring=$transport" "${mnt[$key]}"
        daemon[$key]=$(getfattr --absolute-names --only-values -n user.npfs.pid "${mnt[$key]}")
    done
done
mkfifo "$work/fifo" "$work/ab" "$work/ba"
ticks=$(getconf CLK_TCK)
cpus=$(nproc)

# A record: kind, case, repetition, system, value (, daemon CPU seconds).
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" | tee -a "$raw" | awk -F'\t' '{ printf "  %-10s %-16s rep %-3s %-5s %s\n", $1, $2, $3, $4, $5 }'; }
cpu_seconds() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
threads_of() { awk '/^Threads/ { print $2 }' "/proc/$1/status"; }
# The systems, rotated by the repetition ($1), so that each goes first in turn.
order() {
    local list=($systems) i n=${#list[@]} out=()
    for ((i = 0; i < n; i++)); do out+=("${list[$(( (i + $1) % n ))]}"); done
    echo "${out[*]}"
}

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
                    before=$(cpu_seconds "${daemon[$system-$cap]}")
                    seconds=$(transfer "${mnt[$system-$cap]}/tp" "$block" "$cap")
                    cpu=$(awk -v a="$before" -v b="$(cpu_seconds "${daemon[$system-$cap]}")" 'BEGIN { printf "%.3f", b - a }')
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
        for system in ${systems#fifo }; do taskset -a -p -c 0 "${daemon[$system-65536]}" >/dev/null; done
        sleep 0.3   # the daemon checks its affinity ten times a second (and repins its rings' threads)
    fi
    for message in 1 4096; do
        for rep in $(seq "$reps"); do
            for system in $(order "$rep"); do
                if [[ $system == fifo ]]; then a=$work/ab b=$work/ba; else a=${mnt[$system-65536]}/ping b=${mnt[$system-65536]}/pong; fi
                us=$("${pre[@]}" "$tool" pingpong "$a" "$b" "$message" "$rounds")
                record "rtt-$pin" "${message}B" "$rep" "$system" "$us"
            done
        done
    done
    if [[ $pin == pinned ]]; then
        for system in ${systems#fifo }; do taskset -a -p -c "$all_cpus" "${daemon[$system-65536]}" >/dev/null; done
        sleep 0.3
    fi
done

echo "== request round trips: one process writes a message into a pipe and reads it back, $rounds per run (microseconds per write and read)"
for pin in unpinned pinned; do
    pre=()
    [[ $pin == pinned ]] && pre=(taskset -c 0)   # the client only: the daemon as it runs
    for message in 1 4096; do
        for rep in $(seq "$reps"); do
            for system in $(order "$rep"); do
                if [[ $system == fifo ]]; then p=$work/fifo; else p=${mnt[$system-65536]}/self; fi
                record "requests-$pin" "${message}B" "$rep" "$system" "$("${pre[@]}" "$tool" requests "$p" "$message" "$rounds")"
            done
        done
    done
done

echo "== fan-in: 8 writers of 512-byte records, one reader checking each ($size_mib MiB, MB/s)"
for rep in $(seq "$reps"); do
    for system in $(order "$rep"); do
        if [[ $system == fifo ]]; then p=$work/fifo; else p=${mnt[$system-65536]}/fanin; fi
        rate=$("$tool" fanin "$p" 8 "$size_mib")
        record fanin "8x512B" "$rep" "$system" "$rate"
    done
done

echo "== scale: $pipes idle pipes held open (ls and ls -l in seconds, daemon memory per pipe)"
mkdir "$fifos/dir"
n=${daemon[npfs-65536]}
for system in fifo npfs; do
    if [[ $system == fifo ]]; then dir=$fifos/dir; flag=--fifo; else dir=${mnt[npfs-65536]}; flag=; fi
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
for system in ${systems#fifo }; do
    n=${daemon[$system-65536]}
    threads_before=$(threads_of "$n") rss_before=$(rss_kib "$n")
    coproc READERS { "$tool" readers "${mnt[$system-65536]}" "$readers"; }
    read -r ready <&"${READERS[0]}"
    sleep 1
    record blocked threads-before 1 "$system" "$threads_before"
    record blocked threads-during 1 "$system" "$(threads_of "$n")"
    record blocked memory-per-reader 1 "$system" "$(awk -v a="$rss_before" -v b="$(rss_kib "$n")" -v p="$readers" 'BEGIN { printf "%.0f", (b - a) * 1024 / p }')"
    readers_pid=$READERS_PID
    eval "exec ${READERS[1]}>&-"
    wait "$readers_pid"
done
# What the rings map (the io_uring mount's user.npfs.transport), after the blocked readers.
if [[ $systems == *uring* ]]; then
    getfattr --absolute-names --only-values -n user.npfs.transport "${mnt[uring-65536]}" | tr '\n' ' ' | sed 's/ $/\n/' \
        | sed 's/^/  io_uring mount after them: /'
fi

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
        entry.setdefault("cpu-" + system, {})[int(rep)] = float(cpu)

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
def ratios(entry, over="npfs", under="fifo"):
    if over not in entry or under not in entry: return []
    return [entry[over][r] / entry[under][r] for r in sorted(entry[over]) if r in entry[under] and entry[under][r] > 0]
def by_rep(r):
    return (" ".join(f"{x:.2f}" for x in r) + f" ({statistics.median(r):.2f})") if r else "-"
uring = any("uring" in entry for entry in data.values())
systems = ["fifo", "npfs"] + (["uring"] if uring else [])
names = {"fifo": "FIFO", "npfs": "npfs /dev/fuse", "uring": "npfs io_uring"}
def summaries(entry):
    return {k: summary(list(entry[k].values())) for k in systems if k in entry}
def row(label, entry, digits, extra=""):
    s = summaries(entry)
    cells = "".join(f"{fmt(s[k], digits) if k in s else '-':<24}" for k in systems)
    text = f"{label:<24}{cells}{by_rep(ratios(entry)):<26}"
    if uring: text += f"{by_rep(ratios(entry, 'uring', 'npfs')):<26}"
    return text + extra
def header(title, extra=""):
    cells = "".join(f"{names[k] + ' median':<24}" for k in systems)
    return f"{title:<24}{cells}{'npfs/FIFO by rep (med)':<26}" + (f"{'io_uring/npfs by rep':<26}" if uring else "") + extra

gib = int(size_mib) / 1024
lines.append(header("throughput, GB/s", "daemon CPU s/GiB: /dev/fuse, io_uring" if uring else "npfs CPU s/GiB"))
for (kind, case), entry in data.items():
    if kind != "tp": continue
    block, cap = case.split("/")
    item = {"block": block, "capacity": cap, **summaries(entry), "ratio": summary(ratios(entry))}
    cpu = {}
    for k in ("npfs", "uring"):
        values = [c / gib for c in entry.get("cpu-" + k, {}).values()]
        if values: cpu[k] = summary(values)
    item["npfs_daemon_cpu_s_per_gib"] = cpu.get("npfs")
    if uring:
        item["uring_over_npfs"] = summary(ratios(entry, "uring", "npfs"))
        item["uring_daemon_cpu_s_per_gib"] = cpu.get("uring")
    result["throughput_gb_per_s"].append(item)
    extra = ", ".join(f"{cpu[k]['median']:.2f}" for k in ("npfs", "uring") if k in cpu)
    lines.append(row(block + " blocks, " + cap + " cap", entry, 3, extra))
lines.append("")
lines.append(header("round trip, us"))
for (kind, case), entry in data.items():
    if not kind.startswith("rtt-"): continue
    item = {"message": case, "pinned": kind == "rtt-pinned", **summaries(entry), "ratio": summary(ratios(entry))}
    if uring: item["uring_over_npfs"] = summary(ratios(entry, "uring", "npfs"))
    result["round_trip_us"].append(item)
    lines.append(row(case + ", " + kind[4:], entry, 1))
lines.append("")
lines.append(header("write+read back, us"))
result["request_round_trip_us"] = []
for (kind, case), entry in data.items():
    if not kind.startswith("requests-"): continue
    item = {"message": case, "client_pinned": kind == "requests-pinned", **summaries(entry), "ratio": summary(ratios(entry))}
    if uring: item["uring_over_npfs"] = summary(ratios(entry, "uring", "npfs"))
    result["request_round_trip_us"].append(item)
    lines.append(row(case + ", " + ("client on CPU 0" if kind == "requests-pinned" else "unpinned"), entry, 1))
entry = data[("fanin", "8x512B")]
result["fan_in_mb_per_s"] = {"writers": 8, "record_bytes": 512, **summaries(entry), "ratio": summary(ratios(entry))}
if uring: result["fan_in_mb_per_s"]["uring_over_npfs"] = summary(ratios(entry, "uring", "npfs"))
lines.append("")
lines.append(row("fan-in 8 writers, MB/s", entry, 0))
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
for k in systems[1:]:
    blocked = {case: data[("blocked", case)][k][1] for case in ("threads-before", "threads-during", "memory-per-reader")}
    result["blocked_readers" if k == "npfs" else "blocked_readers_uring"] = {
        "count": int(readers), "daemon_threads_before": blocked["threads-before"],
        "daemon_threads_during": blocked["threads-during"], "daemon_bytes_per_blocked_reader": blocked["memory-per-reader"]}
    lines.append(f"{readers} blocked readers, {names[k]}: daemon threads {blocked['threads-before']:.0f} before, "
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
series = [("fifo", "64K", "FIFO, 64K capacity", "#9ab"), ("npfs", "64K", "npfs /dev/fuse, 64K capacity", "#e83"),
          ("fifo", "1024K", "FIFO, 1M capacity", "#456"), ("npfs", "1024K", "npfs /dev/fuse, 1M capacity", "#a30")]
if uring:
    series[2:2] = [("uring", "64K", "npfs io_uring, 64K capacity", "#4a4")]
    series += [("uring", "1024K", "npfs io_uring, 1M capacity", "#161")]
width = 0.8 / len(series)
for i, (system, cap, label, color) in enumerate(series):
    values = [next((t[system]["median"] for t in result["throughput_gb_per_s"] if t["block"] == b and t["capacity"] == cap), 0) for b in blocks]
    left.bar([x + (i - (len(series) - 1) / 2) * width for x in range(len(blocks))], values, width, label=label, color=color)
left.set_xticks(range(len(blocks)), ["4 KiB", "64 KiB", "1 MiB"])
left.set_xlabel("block size (dd bs, writer and reader)")
left.set_ylabel("GB/s (log scale, higher is better)")
left.set_yscale("log")
top = max(t[s]["median"] for t in result["throughput_gb_per_s"] for s in systems)
bottom = min(t[s]["median"] for t in result["throughput_gb_per_s"] for s in systems)
ticks = [x for x in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if bottom / 2 <= x <= top * 4]
left.set_ylim(bottom / 2, top * 4)
left.set_yticks(ticks, [f"{x:g}" for x in ticks])
left.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
left.set_title("Throughput")
left.legend(fontsize=8, ncol=2, loc="upper left")
cases = [(t["message"], t["pinned"]) for t in result["round_trip_us"]]
labels = [f"{m}\n{'one CPU' if p else 'unpinned'}" for m, p in cases]
bars = [("fifo", "kernel FIFO", "#9ab"), ("npfs", "npfs /dev/fuse", "#e83")] + ([("uring", "npfs io_uring", "#4a4")] if uring else [])
step = 0.8 / len(bars)
for i, (system, label, color) in enumerate(bars):
    right.bar([x + (i - (len(bars) - 1) / 2) * step for x in range(len(cases))], [t[system]["median"] for t in result["round_trip_us"]], step, label=label, color=color)
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
