#!/usr/bin/env bash
# memtrail's one entry point for a fresh Debian 12 machine (run as root):
#   ./build.sh demo   install what is missing, build, trace the demo program
#                     (examples/demo.c), print its report; a new build is
#                     configured without the test suite (-Dtests=false)
#   ./build.sh test   install what is missing, build with the test suite, run it
set -euo pipefail
cd "$(dirname "$0")"

BUILD=${MEMTRAIL_BUILD:-build}
# What the program, the tracer, the man pages and the completions need.
PACKAGES=(meson ninja-build pkg-config gcc libunwind-dev libelf-dev libdw-dev
          libiberty-dev zlib1g-dev libzstd-dev)
# The test suite is built with criterion and g++ (a C++ test program). The
# Python tests also use Debian's python3.11 with its headers and numpy
# (the pyenv interpreters under /root/.pyenv are used when present); the
# export tests have `go tool pprof` (golang-go) read the pprof profiles; the
# leak tests compare with valgrind --leak-check=full; the reader's fuzz test
# builds with clang and its libFuzzer runtime; the real-world tests run
# sqlite3 and git traced (and ninja, a build dependency); the install tests
# build the Debian packages (debhelper), render the man pages (groff-base)
# and run the completions in bash with bash-completion and in zsh; the
# symbolizer's tests read libc's inlined functions from libc6-dbg's DWARF;
# the pytest plugin's test runs Debian's python3-pytest.
TEST_PACKAGES=(libcriterion-dev g++ python3.11 python3.11-dev python3-numpy golang-go valgrind clang
               libclang-rt-14-dev chromium sqlite3 git debhelper groff-base bash-completion zsh
               libc6-dbg python3-pytest)

install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "build.sh: installing ${missing[*]}"
        if [ "$(id -u)" != 0 ]; then
            echo "build.sh: run as root to install packages (or install them yourself)" >&2
            exit 2
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# configure_and_build [MESON_OPTION...]: sets $BUILD up, or reconfigures it
# (its options kept but those given), then builds it.
configure_and_build() {
    if [ -f "$BUILD/build.ninja" ]; then
        meson setup --reconfigure "$BUILD" "$@" >/dev/null
    else
        meson setup "$BUILD" "$@" >/dev/null
    fi
    ninja -C "$BUILD"
}

cmd=${1:-}
case "$cmd" in
demo)
    install_missing "${PACKAGES[@]}"
    if [ -f "$BUILD/build.ninja" ]; then
        configure_and_build
    else
        configure_and_build -Dtests=false
    fi
    out="$BUILD/demo-snapshots"
    rm -rf "$out"
    "$BUILD/analyzer/memtrail" run -o "$out" -- "$BUILD/examples/demo"
    snap=$(ls "$out"/memtrail.*.exit.mtsnap | head -n 1)
    "$BUILD/analyzer/memtrail" report "$snap" --top 10
    ;;
test)
    install_missing "${PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    configure_and_build -Dtests=true
    set +e
    meson test -C "$BUILD" --print-errorlogs --num-processes 2 2>&1 | tee "$BUILD/test-output.txt"
    status=${PIPESTATUS[0]}
    set -e
    # One plain summary line from meson's own counts.
    awk '/^Ok:/ {ok=$2} /^Expected Fail:/ {xf=$3} /^Fail:/ {f=$2} /^Unexpected Pass:/ {up=$3}
         /^Skipped:/ {s=$2} /^Timeout:/ {t=$2}
         END {printf "%d passed, %d failed, %d skipped\n", ok+xf, f+up+t, s}' "$BUILD/test-output.txt"
    exit "$status"
    ;;
*)
    echo "usage: ./build.sh demo | test" >&2
    exit 2
    ;;
esac
