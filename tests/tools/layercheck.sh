#!/usr/bin/env bash
# layercheck.sh - fail when a lower layer of a static library depends on a
# higher one.
#
#   layercheck.sh [--system LIB]... ARCHIVE SRCDIR LAYER...
#
#   ARCHIVE  the static library (ar archive, thin or not) built from SRCDIR,
#            whose members are named <layer>_<file>.c.o, as meson names the
#            objects of SRCDIR/<layer>/<file>.c (e.g. base_state.c.o)
#   SRCDIR   the source folder holding one folder per layer (e.g. preload)
#   LAYER... the layers, lowest first (e.g. base unwind record ... hook);
#            a layer may use itself and the layers before it, never after
#   --system LIB  a shared library (e.g. libc.so.6) whose dynamic symbols the
#            archive may define to interpose them (malloc, free, _exit, dlopen
#            in preload/hook/): a reference to such a name is a call to the
#            system interface, which works the same without the layer that
#            interposes it, so it is not counted against the layers.
#
# Two checks:
#   1. symbols: for each object, every undefined symbol that another object
#      of ARCHIVE defines must be defined in the same or a lower layer;
#   2. includes: in SRCDIR/<layer>/**/*.[ch], every #include "X/..." whose X
#      is a layer must name the same or a lower layer.
# Prints one line per violation and exits 1, or prints one OK line and
# exits 0. Exit 2 on a usage error or an object that matches no layer.
#
# Uses nm, ar, awk and grep. $NM and $AR override the programs.
set -u -o pipefail
shopt -s nullglob globstar

NM=${NM:-nm}
AR=${AR:-ar}
system_syms=
while [ $# -gt 0 ] && [ "$1" = --system ]; do
    [ $# -ge 2 ] || break
    s=$("$NM" -D --defined-only "$2" 2>/dev/null | awk 'NF == 3 { sub(/@.*/, "", $3); print $3 }') ||
        { echo "layers: $NM -D $2 failed" >&2; exit 2; }
    [ -n "$s" ] || { echo "layers: no dynamic symbols in $2" >&2; exit 2; }
    system_syms+=$s$'\n'
    shift 2
done
if [ $# -lt 3 ]; then
    echo "usage: $0 [--system LIB]... ARCHIVE SRCDIR LAYER..." >&2
    exit 2
fi
archive=$1
srcdir=${2%/}
shift 2
layers=("$@")
label=${srcdir##*/}

if [ ! -r "$archive" ]; then
    echo "layers: cannot read $archive" >&2
    exit 2
fi
for l in "${layers[@]}"; do
    if [ ! -d "$srcdir/$l" ]; then
        echo "layers: no folder $srcdir/$l for layer $l" >&2
        exit 2
    fi
done

# --- 1. symbols ------------------------------------------------------------
# `nm -g` prints, for each member, a "member:" line and then its external
# symbols: "addr T name" when defined, "U name" (or w/v, weak) when not.
members=$("$AR" t "$archive") || { echo "layers: $AR t $archive failed" >&2; exit 2; }
symbols=$("$NM" -g "$archive" 2>/dev/null) || { echo "layers: $NM -g $archive failed" >&2; exit 2; }

sym_out=$(
    { printf '%s' "$system_syms" | awk 'NF { print "SYSTEM", $1 }'
      printf '%s\n' "$members" | awk '{ print "MEMBER", $0 }'
      printf '%s\n' "$symbols"; } |
    awk -v layers="${layers[*]}" -v label="$label" '
    function base(p) { sub(/.*\//, "", p); return p }
    # "base_state.c.o" -> rank of "base"; longest layer prefix wins.
    function rank_of(obj,    i, best, bestlen) {
        best = 0; bestlen = 0
        for (i = 1; i <= nl; i++)
            if (index(obj, L[i] "_") == 1 && length(L[i]) > bestlen) {
                best = i; bestlen = length(L[i])
            }
        return best
    }
    # "base_state.c.o" -> "base/state.c"
    function src_of(obj,    r, f) {
        r = rank[obj]; f = substr(obj, length(L[r]) + 2)
        sub(/\.o$/, "", f)
        return L[r] "/" f
    }
    BEGIN { nl = split(layers, L, " ") }
    $1 == "SYSTEM" { sys[$2] = 1; next }
    $1 == "MEMBER" {
        obj = base($2)
        if (!(obj in rank)) {
            nobj++
            rank[obj] = rank_of(obj)
            if (!rank[obj]) print "NOLAYER " obj
        }
        next
    }
    /:$/ { cur = base(substr($0, 1, length($0) - 1)); next }
    NF == 2 && ($1 == "U" || $1 == "w" || $1 == "v") { und[cur, $2] = 1; next }
    NF == 3 && $2 ~ /^[A-TV-Z]$/ { if (!($3 in def)) def[$3] = cur; next }
    END {
        for (k in und) {
            split(k, p, SUBSEP); obj = p[1]; s = p[2]
            if (!(s in def) || def[s] == obj) continue
            if (s in sys) { sysrefs++; continue }
            refs++
            if (rank[def[s]] > rank[obj])
                printf "VIOLATION layers: %s/%s calls %s from %s\n",
                    label, src_of(obj), s, src_of(def[s])
        }
        printf "COUNT %d %d %d\n", nobj, refs, sysrefs
    }' | sort
)

# The lines the awk programs print as "VIOLATION <message>", without the tag.
violations_in() {
    printf '%s\n' "$1" | grep '^VIOLATION ' | awk '{ sub(/^VIOLATION /, ""); print }'
}

status=0
nolayer=$(printf '%s\n' "$sym_out" | grep '^NOLAYER ' | awk '{ print $2 }')
if [ -n "$nolayer" ]; then
    for o in $nolayer; do
        echo "layers: $archive member $o is named after no layer (${layers[*]})" >&2
    done
    exit 2
fi
violations=$(violations_in "$sym_out")
read -r _ nobjects nrefs nsysrefs < <(printf '%s\n' "$sym_out" | grep '^COUNT ')
if [ -z "${nobjects:-}" ]; then
    echo "layers: could not read the symbols of $archive" >&2
    exit 2
fi
if [ -n "$violations" ]; then
    printf '%s\n' "$violations"
    status=1
fi

# --- 2. includes -----------------------------------------------------------
nincludes=0
for ((i = 0; i < ${#layers[@]}; i++)); do
    l=${layers[i]}
    files=("$srcdir/$l"/**/*.[ch])
    [ ${#files[@]} -gt 0 ] || continue
    out=$(grep -H -o '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"/]*/[^"]*"' "${files[@]}" |
        awk -v layers="${layers[*]}" -v own="$((i + 1))" -v srcdir="$srcdir" -v label="$label" '
        BEGIN { nl = split(layers, L, " "); for (j = 1; j <= nl; j++) R[L[j]] = j }
        {
            file = $0; sub(/:[^:]*$/, "", file)
            inc = $0; sub(/^[^"]*"/, "", inc); sub(/"$/, "", inc)
            top = inc; sub(/\/.*/, "", top)
            if (!(top in R)) next
            n++
            if (R[top] > own) {
                rel = substr(file, length(srcdir) + 2)
                printf "VIOLATION layers: %s/%s includes %s from higher layer %s\n", label, rel, inc, top
            }
        }
        END { printf "COUNT %d\n", n }')
    v=$(violations_in "$out")
    c=$(printf '%s\n' "$out" | grep '^COUNT ' | awk '{ print $2 }')
    if [ -z "$c" ]; then
        echo "layers: could not read the includes of $srcdir/$l" >&2
        exit 2
    fi
    nincludes=$((nincludes + ${c:-0}))
    if [ -n "$v" ]; then
        printf '%s\n' "$v"
        status=1
    fi
done

if [ $status -eq 0 ]; then
    order=$(printf '%s\n' "${layers[@]}" | awk '{ printf "%s%s", (NR > 1 ? " < " : ""), $0 }')
    sys=
    [ -z "$system_syms" ] || sys="; $nsysrefs calls to interposed system functions not counted"
    echo "layers: $nobjects objects, $nrefs cross-file references, $nincludes layer includes, all one way ($label: $order$sys)"
fi
exit $status
