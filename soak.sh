#!/usr/bin/env bash
# The soak: builds npfs and npfs-soak (release), mounts npfs in a temporary directory and,
# for a while, runs 64 writer/reader pairs, 8 writers sharing one more pipe and 4 churning
# clients, killing clients at random (SIGKILL, SIGINT) and starting them again. Then it
# checks that nothing was lost, torn, interleaved or duplicated, that the daemon lived,
# and that its RSS fell back, and prints those figures. Exit status 0 only if all held.
#   ./soak.sh [--duration SECONDS] [--pairs N] [--shared-writers N] [--churners N] [--kill-every MS] [--seed N]
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"
./mount.sh --build-only >/dev/null
swift build -c release --product npfs-soak >/dev/null
exec .build/release/npfs-soak run --npfs "$PWD/.build/release/npfs" "$@"
