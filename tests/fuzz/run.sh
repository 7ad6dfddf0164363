#!/usr/bin/env bash
# The snapshot reader under libFuzzer, ASan and UBSan, for a fixed time
# (meson test `analyzer_fuzz`; by hand: tests/fuzz/run.sh SRC BUILD SECONDS).
#   1. configures BUILD/fuzz with clang (-Dfuzz=true, nothing else built) and
#      builds tests/fuzz/fuzz_snapshot;
#   2. seeds a corpus with real snapshots: the version 1 fixtures of
#      tests/golden, and version 2 files the main build's tracer writes for
#      tests/programs (leaks, threads, fork) in BUILD/fuzz-seeds;
#   3. writes the dictionary (tests/fuzz/fuzz_dict.c: magic, record tags);
#   4. runs the fuzzer for SECONDS over the reader and every command that
#      reads a snapshot; a crash, a leak, undefined behaviour or a broken
#      contract of the reader (fuzz_snapshot.c) fails the test and leaves the
#      input in BUILD/fuzz-artifacts.
# Exit 77 (skipped) when clang or its libFuzzer runtime is missing.
set -euo pipefail
src=$1 build=$2 seconds=${3:-60}
fuzzdir=$build/fuzz
if ! command -v clang >/dev/null 2>&1; then
    echo "analyzer_fuzz: clang not found: skipped"
    exit 77
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
        clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
    echo "analyzer_fuzz: clang has no libFuzzer runtime (libclang-rt-dev): skipped"
    exit 77
fi
if [ ! -f "$fuzzdir/build.ninja" ]; then
    CC=clang meson setup "$fuzzdir" "$src" -Dfuzz=true -Dtests=false -Dbench=false \
        -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
        -Dc_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C "$fuzzdir" tests/fuzz/fuzz_snapshot tests/fuzz/fuzz_dict >/dev/null
"$fuzzdir/tests/fuzz/fuzz_dict" > "$fuzzdir/snapshot.dict"

seeds=$build/fuzz-seeds corpus=$build/fuzz-corpus artifacts=$build/fuzz-artifacts
rm -rf "$seeds" "$artifacts"
mkdir -p "$seeds" "$corpus" "$artifacts"
cp "$src"/tests/golden/*.mtsnap "$seeds"/
for prog in leaky leakkinds threads forker; do
    if [ -x "$build/tests/$prog" ]; then
        "$build/analyzer/memtrail" run -o "$seeds" -- "$build/tests/$prog" >/dev/null 2>&1 || true
    fi
done
echo "analyzer_fuzz: $(ls "$seeds" | wc -l) seed snapshots, $seconds s"
# -rss_limit_mb: the reader's memory is bounded by the file (and the zstd
# ratio bound), far below this; -max_len: seeds are small, grown files too.
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
"$fuzzdir/tests/fuzz/fuzz_snapshot" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len=1048576 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    -dict="$fuzzdir/snapshot.dict" \
    "$corpus" "$seeds" 2>&1 | tail -n 25
