#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test, including the
# integration tests, which mount npfs (under fusermount3) in temporary directories.
#   ./test.sh [extra swift test arguments, e.g. --filter DifferentialTests]
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"
./mount.sh --build-only
# The tests also drive getfattr/setfattr (Debian's attr package), as users would.
if ! command -v setfattr >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y -qq attr >/dev/null; else sudo apt-get install -y -qq attr >/dev/null; fi
fi
# The man page test runs swift-argument-parser's generate-manual, as ./mount.sh --install does.
swift build --product generate-manual >/dev/null
# Every blocking step in the tests has its own timeout; this one bounds the whole run.
# The tests are Swift Testing's: XCTest, with none, would only print "Executed 0 tests".
timeout --kill-after=30 1200 swift test --no-parallel --disable-xctest "$@"
