#!/bin/sh
# snapsame.sh OLD_BUILD NEW_BUILD: are the snapshots the same bytes?
#
# Runs each case below under OLD's and NEW's `memtrail run`, with the same
# environment, the same program binaries (OLD's test programs), the same
# working and output directories, and address randomization off (setarch -R),
# so that only libmemtrail.so differs. Each side's library is copied to the
# same path before its run (MEMTRAIL_LIB), so module paths match too.
# tests/tools/snapnorm.py zeroes what legitimately differs (times, pids,
# the library's build id) and recomputes the CRCs; the normalized files are
# then compared with cmp. NEW is run up to 3 times (SNAPSAME_RETRIES) until
# one run matches OLD's; if none does, OLD is run again, and a case whose two
# OLD runs differ as well is reported as nondeterministic (with the records
# that differ) rather than as a difference. SNAPSAME_KEEP=1 keeps the files.
#
# Exit status: 0 when every deterministic case is identical, 1 otherwise.
set -eu

OLD=$(cd "${1:-/tmp/old-build}" && pwd)
NEW=$(cd "${2:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3.11
PROGS=$OLD/tests
RETRIES=${SNAPSAME_RETRIES:-3}

WORK=$(mktemp -d /tmp/snapsame.XXXXXX)
[ -n "${SNAPSAME_KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lib" "$WORK/cwd"

# name|command (the program binaries are OLD's for both sides)
CASES="leaky|$PROGS/leaky
growth|$PROGS/growth 5 2
threads|$PROGS/threads
leakkinds|$PROGS/leakkinds
py_cycles_garbage|$PY $SRC/tests/python/cycles_garbage.py"

# run SIDE BUILD NAME CMD...: snapshots land in $WORK/SIDE/NAME, renamed
# SEQ.TRIGGER.mtsnap (the pid is left out).
run() {
    side=$1 build=$2 name=$3
    shift 3
    rm -rf "$WORK/out" "$WORK/lib/libmemtrail.so"
    mkdir -p "$WORK/out" "$WORK/$side/$name"
    cp "$build/preload/libmemtrail.so" "$WORK/lib/libmemtrail.so"
    (cd "$WORK/cwd" && env -i PATH=/usr/bin:/bin HOME="$WORK/cwd" LANG=C PYTHONHASHSEED=0 \
        MEMTRAIL_LIB="$WORK/lib/libmemtrail.so" \
        setarch "$(uname -m)" -R "$build/analyzer/memtrail" run -o "$WORK/out" -- "$@" \
        >/dev/null 2>"$WORK/$side/$name.stderr") || {
        echo "snapsame: $side $name failed:" >&2
        cat "$WORK/$side/$name.stderr" >&2
        return 1
    }
    for f in "$WORK/out"/memtrail.*.mtsnap; do
        b=$(basename "$f")
        mv "$f" "$WORK/$side/$name/${b#memtrail.*.}"
    done
    /usr/bin/python3 "$HERE/snapnorm.py" --lib /libmemtrail.so "$WORK/$side/$name"/*.mtsnap
}

# same A B: the two directories hold the same file names and normalized bytes.
same() {
    a=$1 b=$2
    [ "$(cd "$a" && ls ./*.mtsnap)" = "$(cd "$b" && ls ./*.mtsnap)" ] || return 1
    for f in "$a"/*.mtsnap; do
        cmp -s "$f.norm" "$b/$(basename "$f").norm" || return 1
    done
}

status=0
echo "$CASES" | while IFS='|' read -r name cmd; do
    # shellcheck disable=SC2086  # cmd is split into words on purpose
    run old "$OLD" "$name" $cmd
    files=$(cd "$WORK/old/$name" && ls ./*.mtsnap | sed 's|^\./||' | tr '\n' ' ')
    bytes=$(cat "$WORK/old/$name"/*.mtsnap | wc -c)
    # A Python arena or a thread's block can land elsewhere when the writer
    # thread's own mmaps interleave differently: NEW gets RETRIES runs.
    found=0
    for try in $(seq 1 "$RETRIES"); do
        rm -rf "$WORK/new/$name"
        # shellcheck disable=SC2086
        run new "$NEW" "$name" $cmd
        if same "$WORK/old/$name" "$WORK/new/$name"; then
            found=$try
            break
        fi
    done
    if [ "$found" -gt 0 ]; then
        echo "same       $name: $files($bytes bytes; NEW run $found of $RETRIES)"
        continue
    fi
    # shellcheck disable=SC2086
    run old2 "$OLD" "$name" $cmd
    if same "$WORK/old/$name" "$WORK/old2/$name"; then
        echo "DIFFERENT  $name: $files"
        for f in "$WORK/old/$name"/*.mtsnap; do
            g="$WORK/new/$name/$(basename "$f")"
            [ -e "$g" ] || { echo "    $(basename "$f"): missing in NEW"; continue; }
            echo "    $(basename "$f") old/new: $(/usr/bin/python3 "$HERE/snapnorm.py" --cmp "$f.norm" "$g.norm")"
        done
        echo fail >"$WORK/failed"
    else
        echo "nondeterministic $name: OLD differs from itself, by record:"
        for f in "$WORK/old/$name"/*.mtsnap; do
            b=$(basename "$f")
            [ -e "$WORK/new/$name/$b" ] && [ -e "$WORK/old2/$name/$b" ] || {
                echo "    $b: not written by every run"; continue; }
            echo "    $b old/old: $(/usr/bin/python3 "$HERE/snapnorm.py" --cmp "$f.norm" "$WORK/old2/$name/$b.norm")"
            echo "    $b old/new: $(/usr/bin/python3 "$HERE/snapnorm.py" --cmp "$f.norm" "$WORK/new/$name/$b.norm")"
        done
    fi
done
[ -e "$WORK/failed" ] && status=1
exit $status
