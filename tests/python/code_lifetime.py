"""memtrail must not extend a Python object's lifetime (run bare and under
`memtrail run` by tests/integration/test_cycles.c; stdout must be identical).

Compiles and runs a small module N times, the way templating engines,
namedtuple and dataclasses do with exec, keeping only a weak reference to
each code object. Bare, every code object (with its constants and names)
dies as soon as its run returns. memtrail names the frames of its stacks
without holding the code objects, so under it they die at the same moment:
the script prints how many are still alive after each round and after
`del` of a code object it kept.

The last round's code makes no object of its own: its one new object, a
pair, comes from the tuples' free list, so memtrail sees its frames first
where it follows a free-list reuse (3.9 to 3.13 with a shared libpython),
not in an allocation. Its code objects must die all the same.
"""
import gc
import sys
import weakref

SRC = "data = [str(i) * 3 for i in range(40)]\ntable = {k: len(k) for k in data}\n"
N = 400
# The first compile() sets up the compiler's own state (the ast module's
# types on 3.8 to 3.10): done here, so that the marked line holds only what
# each run leaves behind.
exec(compile(SRC, "<warm-up>", "exec"), {})


def run_once(i):
    code = compile(SRC, "<generated>", "exec")  # marker: compile
    ns = {}
    exec(code, ns)
    return weakref.ref(code)


for rnd in range(5):
    refs = [run_once(rnd * N + i) for i in range(N)]
    print("round", rnd, "alive", sum(1 for r in refs if r() is not None))

REUSE_SRC = "t = (a, b)\n"
reuse_refs = []
for i in range(N):
    code = compile(REUSE_SRC, "<reuse-only>", "exec")
    exec(code, {"a": i, "b": -i, "t": None})   # t's entry exists: no dict resize
    reuse_refs.append(weakref.ref(code))
    del code
print("reuse-only alive", sum(1 for r in reuse_refs if r() is not None))

kept = compile(SRC, "<kept>", "exec")
exec(kept, {})
ref = weakref.ref(kept)
print("kept alive", ref() is not None)
del kept
print("after del alive", ref() is not None)
gc.collect()
sys.stdout.flush()
