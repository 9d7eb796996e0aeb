#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test, including the
# integration tests, which mount npfs (under fusermount3) in temporary directories.
#   ./test.sh [extra swift test arguments, e.g. --filter DifferentialTests]
set -euo pipefail
cd "$(dirname "$0")"
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"
./mount.sh --build-only
# The tests also drive getfattr/setfattr (Debian's attr package), as users would, check
# that zsh parses the zsh completion, that groff renders the man page without warnings, and
# start PostgreSQL servers of their own.
missing=()
command -v setfattr >/dev/null 2>&1 || missing+=(attr)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v groff >/dev/null 2>&1 || missing+=(groff-base)
# The cluster tests start PostgreSQL servers of their own (Debian's server, not a system one).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# ... one of them with TLS, its certificates made by openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# ... and cut a host off in a network namespace of its own (ip netns, a veth pair).
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get); [[ $(id -u) -eq 0 ]] || apt_get=(sudo "${apt_get[@]}")
    "${apt_get[@]}" install -y -qq "${missing[@]}" >/dev/null \
        || { "${apt_get[@]}" update -qq && "${apt_get[@]}" install -y -qq "${missing[@]}" >/dev/null; }
fi
# The man page test runs swift-argument-parser's generate-manual, as ./mount.sh --install does.
swift build --product generate-manual >/dev/null
# Every blocking step in the tests has its own timeout; this one bounds the whole run.
# The tests are Swift Testing's: XCTest, with none, would only print "Executed 0 tests".
# Where the kernel has FUSE over io_uring and this is root, the first pass runs with it
# off (requests over /dev/fuse) and the integration tests run a second time with it on,
# every mount insisting on it; the fuse module's enable_uring is put back afterwards.
parameter=/sys/module/fuse/parameters/enable_uring
old_uring=
if [[ -w $parameter ]]; then
    old_uring=$(cat "$parameter")
    trap 'echo "$old_uring" > "$parameter"' EXIT
    echo N > "$parameter"
fi
timeout --kill-after=30 1200 swift test --no-parallel --disable-xctest "$@"
if [[ -n $old_uring ]]; then
    echo "test.sh: the integration tests again, with requests over io_uring"
    echo Y > "$parameter"
    [[ $# -gt 0 ]] || set -- --filter IntegrationTests
    NPFS_TEST_TRANSPORT=io_uring timeout --kill-after=30 1200 swift test --skip-build --no-parallel --disable-xctest "$@"
else
    echo "test.sh: no second pass over io_uring ($parameter is missing or not writable: not root, or a kernel without it)"
fi
