"""Instructions per malloc/free pair of a bench_malloc run under callgrind,
by component of memtrail's cost (docs/performance.md, issue 19).

usage: cg_breakdown.py CALLGRIND_OUT PAIRS

CALLGRIND_OUT is the profile of the traced bench_malloc process (the largest
file of `valgrind --tool=callgrind --trace-children=yes ... memtrail run
--leak-check=off -- bench_malloc -t 1 -n PAIRS`). Instruction counts do not
depend on the machine's load, so two builds compare exactly; they are not
times (a cache miss costs more than an instruction).
"""
import collections
import re
import subprocess
import sys

f, pairs = sys.argv[1], int(sys.argv[2])
out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", f], capture_output=True, text=True).stdout
groups = [
 ("unwind (walk, memo, own frames)", r"\b(join|mtp_cfi_unwind_from|walk_cfi|mtp_unwind|mtp_native_stack|walk|rule_for|mtp_cfi_rule|rule_miss|compute_rule|unw_|_ULx86)"),
 ("stack interning", r"\b(mtp_stack_intern|table_intern|node_matches|index_find|__memcmp)"),
 ("hooks, counter, ring push", r"\b(malloc_picked|calloc_picked|free_slow|mtp_record_|mtp_ring_|mtp_enter|record\.h|hook\.h|hooks\.c:(malloc|free|calloc))"),
 ("writer: drain, live table", r"\b(drain|mtp_lm_|bucket_find|mtp_live_|forget|livemap|live\.c)"),
 ("exit snapshot, leak scan", r"\b(mark_|leakscan|addrindex|scan|snapwrite|zstd|ZSTD|symbol|dwarf|dw_|elf_)"),
 ("the program (bench, libc malloc/free)", r"(bench_malloc|malloc\.c|arena\.c|memset|memcpy)"),
]
tot = collections.Counter(); total = 0
for line in out.splitlines():
    m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)", line)
    if not m: continue
    n = int(m.group(1).replace(",", "")); name = m.group(2)
    if "PROGRAM TOTALS" in name: total = n; continue
    for g, pat in groups:
        if re.search(pat, name):
            tot[g] += n; break
    else:
        tot["other"] += n
print("%-42s %12s" % ("component", "Ir per pair"))
for g, _ in groups + [("other", "")]:
    print("%-42s %12.0f" % (g, tot[g] / pairs))
print("%-42s %12.0f" % ("total", total / pairs))
