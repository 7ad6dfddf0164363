#!/usr/bin/env bash
# The unit tests again under a sanitizer, in a build of their own under the
# main build directory (meson test `sanitize_asan` and `sanitize_tsan`; by
# hand: tests/sanitize/run.sh SRC BUILD asan|tsan).
#   asan  BUILD/sanitize-asan: -Db_sanitize=address,undefined with
#         -fno-sanitize-recover=all (the first undefined behaviour ends the
#         process). Runs every test of suite unit but the ones below: the
#         analyzer's (format/ and analyzer/, the `memtrail` program they
#         start included) and the preload's units, preload_ringdrive with
#         its leak scan among them.
#   tsan  BUILD/sanitize-tsan: -Db_sanitize=thread. Runs preload_ringdrive
#         (tests/unit/preload/ringdrive.c): the rings, the thread registry,
#         the stack table, the writer's drain and requests, and the leak
#         scan's stop-the-world, under several producer threads; and
#         preload_sampset (sampsetdrive.c): byte sampling's address set,
#         its lock-free lookups beside adds, removals and resizes. Criterion's
#         runner does not start under TSan ("Could not initialize inheritable
#         arena"), so the criterion tests preload_ring and preload_stacktab
#         cannot run there; ringdrive, plain C, stands in for them. The leak
#         scan stops the threads with its signal there, not by ptrace: a
#         thread ptrace stops inside TSan's runtime (an atomic operation,
#         which TSan makes a critical section under a lock per variable)
#         holds that lock, and the writer's next atomic access to the
#         variable waits for ever (ringdrive.c says more). TSan's own thread
#         blocks every signal, so each scan waits 1 s for it and reads
#         memory through process_vm_readv. The scan's reads of the stopped
#         threads' memory are not instrumented (MTP_NO_SANITIZE_SCAN: the
#         stop orders them, which TSan cannot see).
# Each mode builds only the targets its tests need, -Dbuildtype=debugoptimized
# -Dbench=false, with CC (default cc).
#
# Not run under a sanitizer:
#   - libmemtrail.so preloaded into programs (suite integration): a sanitized
#     libmemtrail.so cannot be LD_PRELOADed into a program that is not (the
#     sanitizer's runtime must be loaded first and owns malloc, which
#     memtrail interposes). The sanitized `memtrail run` of analyzer_cli
#     preloads the main build's libmemtrail.so instead (MEMTRAIL_LIB).
#   - preload_exports (reads libmemtrail.so's symbol table: no code of the
#     tracer runs), preload_layers and analyzer_layers (nm scripts),
#     analyzer_fuzz (a libFuzzer build with ASan and UBSan of its own).
#   - python_exports: it dlopens libmemtrail_reader.so into the system's
#     Python, which a sanitized library cannot be loaded into (the runtime
#     must come first); the code it would run is the analyzer's, which the
#     analyzer's units run sanitized.
#
# BUILD is the main build directory, built: its libmemtrail.so is the one
# analyzer_cli preloads.
#
# Fails when a test fails or on any sanitizer report, printed at the end.
# ASan, LeakSanitizer and TSan write theirs to BUILD/sanitize-MODE-reports
# (log_path), from every process the tests start: criterion counts a test
# whose worker leaked as passed. UBSan ends the process at its first report
# (status 86: no test expects it), and writes the report there too, or, from
# GCC's runtime, on stderr, which the test log keeps and which is searched.
# LeakSanitizer is left out, with a line saying so, where it cannot run
# (under ptrace). Exit 77 (skipped) when CC cannot build and run a program
# with the sanitizer.
set -euo pipefail
src=$1 build=$2 mode=${3:-}
cc=${CC:-cc}
case "$mode" in
asan) sanitize=address,undefined ;;
tsan) sanitize=thread ;;
*) echo "usage: tests/sanitize/run.sh SRC BUILD asan|tsan" >&2; exit 2 ;;
esac
name=sanitize_$mode
build=$(cd "$build" && pwd)
dir=$build/sanitize-$mode reports=$build/sanitize-$mode-reports
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Can this compiler build, and this machine run, a sanitized program?
echo 'int main(void) { return 0; }' > "$work/probe.c"
if ! "$cc" -fsanitize="$sanitize" -o "$work/probe" "$work/probe.c" >/dev/null 2>&1; then
    echo "$name: $cc cannot link with -fsanitize=$sanitize (its runtime is missing): skipped"
    exit 77
fi
leaks=1
if [ "$mode" = asan ] && ! ASAN_OPTIONS=detect_leaks=1 "$work/probe" >/dev/null 2>&1; then
    leaks=0
    echo "$name: LeakSanitizer cannot run here (under ptrace?): leaks are not checked"
fi
if ! ASAN_OPTIONS=detect_leaks=$leaks "$work/probe" >"$work/probe.out" 2>&1; then
    echo "$name: a -fsanitize=$sanitize program does not run here: skipped"
    head -n 5 "$work/probe.out"
    exit 77
fi

opts=(-Db_sanitize="$sanitize" -Db_lundef=false -Dbuildtype=debugoptimized -Dbench=false
      -Dtests=true)
if [ "$mode" = asan ]; then
    opts+=(-Dc_args=-fno-sanitize-recover=all -Dcpp_args=-fno-sanitize-recover=all)
fi
if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$src" "${opts[@]}" >"$work/setup.log" 2>&1 ||
        { cat "$work/setup.log"; exit 1; }
else
    CC=$cc meson setup "$dir" "$src" "${opts[@]}" >"$work/setup.log" 2>&1 ||
        { cat "$work/setup.log"; exit 1; }
fi

# The tests, and the targets they need (their executables and depends), but
# the programs of tests/programs/: nothing runs them in the sanitized build
# (analyzer_cli's `memtrail run` runs system programs). libmemtrail.so is
# built, unused: a sanitized preload must at least build.
if [ "$mode" = asan ]; then
    select=(exclude preload_exports preload_layers analyzer_layers analyzer_fuzz
            sanitize_asan sanitize_tsan python_exports)
else
    select=(include preload_ringdrive preload_sampset)
fi
meson introspect "$dir" --tests --targets >"$work/intro.json"
python3 - "$dir" "$work/intro.json" "${select[@]}" >"$work/selected" <<'EOF'
import json, os, sys
builddir, intro, how, names = sys.argv[1], sys.argv[2], sys.argv[3], set(sys.argv[4:])
d = json.load(open(intro))
def unused(t):
    srcs = [f for ts in t['target_sources'] for f in ts['sources']]
    return srcs and all('/tests/programs/' in f for f in srcs)
files = {t['id']: t['filename'] for t in d['targets'] if not unused(t)}
tests, targets = [], set()
for t in d['tests']:
    if 'memtrail:unit' not in t['suite'] or (t['name'] in names) != (how == 'include'):
        continue
    tests.append(t['name'])
    for dep in t['depends']:
        targets.update(os.path.relpath(f, builddir) for f in files.get(dep, []))
print(' '.join(tests))
print(' '.join(sorted(targets)))
EOF
read -r -a tests < <(sed -n 1p "$work/selected")
read -r -a targets < <(sed -n 2p "$work/selected")
if ! ninja -C "$dir" "${targets[@]}" >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log"
    echo "$name: the $mode build failed"
    exit 1
fi

rm -rf "$reports" "$dir"/meson-logs/testlog*
mkdir -p "$reports"
export ASAN_OPTIONS="detect_leaks=$leaks:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86:log_path=$reports/ubsan"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan"
lib=$(printf %q "$build/preload/libmemtrail.so")
status=0
meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 --timeout-multiplier 3 \
    --wrapper "env MEMTRAIL_LIB=$lib" "${tests[@]}" >"$work/test.log" 2>&1 ||
    status=$?
grep -E '^ *[0-9]+/[0-9]+ ' "$work/test.log" || true
# The tests' own output (meson names the log after the wrapper: testlog-env.txt).
report='runtime error:|ERROR: [A-Za-z]+Sanitizer|WARNING: ThreadSanitizer'
if cat "$dir"/meson-logs/testlog*.txt 2>/dev/null | grep -qE "$report"; then
    status=1
    cat "$dir"/meson-logs/testlog*.txt | grep -nE -A 12 "$report" | head -n 100
fi
if [ -n "$(find "$reports" -type f)" ]; then
    status=1
    find "$reports" -type f | sort | while read -r f; do
        echo "--- $f"
        head -n 60 "$f"
    done
elif [ "$status" != 0 ]; then
    cat "$work/test.log"
fi
if [ "$status" != 0 ]; then
    echo "$name: FAILED (a test failed or a sanitizer reported; logs in $dir/meson-logs)"
    exit 1
fi
echo "$name: no report from ${tests[*]} under -fsanitize=$sanitize"
