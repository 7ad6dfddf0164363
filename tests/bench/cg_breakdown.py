"""Instructions per malloc/free pair of a bench_malloc run under callgrind,
by component of memtrail's cost (docs/performance.md, issue 19).

usage: cg_breakdown.py CALLGRIND_OUT PAIRS

CALLGRIND_OUT is the profile of the traced bench_malloc process (the largest
file of `valgrind --tool=callgrind --trace-children=yes ... memtrail run
--leak-check=off -- bench_malloc -t 1 -n PAIRS`). Instruction counts do not
depend on the machine's load, so two builds compare exactly; they are not
times (a cache miss costs more than an instruction).

usage: cg_breakdown.py --python CALLGRIND_OUT

The same per allocation event of a CPython process (the profile of the
traced interpreter: `valgrind --tool=callgrind --trace-children=yes ...
memtrail run [--native] --leak-check=off -- python3.11 py_workload.py 5`),
the events counted as the calls mtp_py_stack makes to the thread-state
getter (one per stack taken).
"""
import collections
import re
import subprocess
import sys

python = sys.argv[1] == "--python"
if python:
    f = sys.argv[2]
    tree = subprocess.run(["callgrind_annotate", "--tree=caller", "--threshold=100", f],
                          capture_output=True, text=True).stdout
    pairs = max([int(m.group(1).replace(",", "")) for m in
                 re.finditer(r"< \S*:mtp_py_stack \(([\d,]+)x\)", tree)] or [1])
else:
    f, pairs = sys.argv[1], int(sys.argv[2])
out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", f], capture_output=True, text=True).stdout
pygroups = [
 ("Python walk (frames, memo)", r"\b(mtp_py_stack|memo_walk|memo_stack|memo_hybrid|plain_stack|py_walk|held_tstate|PyGILState_GetThisThreadState|_PyThreadState_UncheckedGet|pthread_getspecific|mtp_py_code_register)"),
 ("native unwind (--native)", r"\b(join|mtp_cfi_unwind_from|walk_cfi|mtp_unwind|mtp_native_stack|walk|rule_for|mtp_cfi_rule|rule_miss|compute_rule|unw_|_ULx86)"),
 ("splice (--native)", r"\b(hybrid_stack|splice)"),
 ("stack interning", r"\b(mtp_stack_intern|intern_hashed|table_intern|node_matches|index_find|__memcmp|mtp_py_retain)"),
 ("hooks, counter, ring push", r"\b(w_malloc|w_calloc|w_realloc|w_free|w_newref|retrace|malloc_picked|calloc_picked|free_slow|mtp_record_|mtp_ring_|mtp_enter|record\.h|hook\.h|hooks\.c:(malloc|free|calloc))"),
 ("writer: drain, live table", r"\b(drain|mtp_lm_|bucket_find|mtp_live_|forget|livemap|live\.c)"),
 ("exit snapshot, symbols", r"\b(mark_|leakscan|addrindex|scan|snapwrite|mtp_snapshot|zstd|ZSTD|symbol|mtp_sym|dwarf|dw_|elf_|frames_of|emit_|mtf_)"),
 ("the interpreter (libpython, libc)", r"(libpython|python3\.|Python-3|Objects/|Python/|Modules/|malloc\.c|memset|memcpy|memmove)"),
]
groups = pygroups if python else [
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
print("%-42s %12s" % ("component", "Ir per event (%d)" % pairs if python else "Ir per pair"))
for g, _ in groups + [("other", "")]:
    print("%-42s %12.0f" % (g, tot[g] / pairs))
print("%-42s %12.0f" % ("total", total / pairs))
