"""Call chains that change shape between allocations, for the Python walk's
memo (preload/python/pystack.c; tests/integration/test_pymemo.c).

Every object allocated at a marked line is kept alive to the end, so the
exit snapshot holds every stack the walk produced. The run is deterministic
with PYTHONHASHSEED=0 (a fixed LCG, no hash-ordered iteration), so a run
with MEMTRAIL_PY_MEMO=0 (every stack walked in full) and one with the memo
must give the same stacks with the same blocks. Shapes:
  - recursion whose depth changes from one call to the next, allocating on
    the way down and up (frames at the same places, other callers);
  - generators resumed from different callers (a frame whose caller
    changes while it stays alive);
  - list() of a generator: the list's array grows at its caller's line
    each time the generator's frame has left the chain, so that stack is
    the one before it less its inner frame (every word of it shared);
  - exec() of code compiled, run and dropped in turn, two sources whose
    allocations sit at different lines and files: a new code object often
    lands at the address of the one just freed, running at the same offset
    in a frame at the same place (prints EXEC <file> <line> <blocks>);
  - exceptions raised through frames, allocations in handlers;
  - coroutines switching, lambdas, comprehensions, a class body;
  - a chain deeper than the memo holds (400 frames) and back;
  - a frame in the middle of a chain calling on from one line, then from
    another, its callers and callees the same: two walks of the same depth
    that differ in that frame alone, 13 frames from the inner end and 2 to
    9 from the outer end (the memo compares four frames at a time from
    there: each place in a group of four);
  - one function called from one call instruction, in turn directly and
    through functools.partial (C): the same frames at the same positions,
    but entered from C every other time, a run of the evaluation loop of its
    own (3.11 marks it only in the frame's entry flag: --native splices
    the partial's C frames between it and its caller).
Prints "DONE <blocks kept>".
"""
import asyncio
import functools
import sys

keep = []
state = [12345]


def rnd(n):
    state[0] = (state[0] * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
    return (state[0] >> 33) % n


def down(depth, tag):
    keep.append([tag, depth])             # ALLOC:down
    if depth > 0:
        down(depth - 1, tag)
    keep.append((tag, depth, 0))          # ALLOC:up


def gen(n):
    for i in range(n):
        keep.append({"i": i})             # ALLOC:gen
        yield i


def items(n):
    for i in range(n):
        yield [i]                         # ALLOC:item


def listed(n):
    keep.append(list(items(n)))           # ALLOC:listed


def resume_a(g):
    return next(g, None)


def resume_b(g):
    return resume_a(g) if rnd(2) else next(g, None)


SRC_A = "def run(k):\n    keep.append(bytearray(k))\n    return k\nrun(%d)\n"
SRC_B = "def run(k):\n    x = k\n    keep.append(bytearray(x + 1))\n    return x\nrun(%d)\n"


def exec_loop(rounds):
    counts = {}
    for r in range(rounds):
        which = r % 2
        src = (SRC_A if which == 0 else SRC_B) % (40 + r % 7)
        name = "<shape-%s>" % ("A" if which == 0 else "B")
        code = compile(src, name, "exec")
        exec(code, {"keep": keep})
        del code
        counts[name] = counts.get(name, 0) + 1
    print("EXEC <shape-A> 2 %d" % counts.get("<shape-A>", 0))
    print("EXEC <shape-B> 3 %d" % counts.get("<shape-B>", 0))


def fail(depth):
    if depth == 0:
        raise ValueError("x" * 10)
    fail(depth - 1)


def handlers(rounds):
    for r in range(rounds):
        try:
            fail(rnd(6))
        except ValueError:
            keep.append(["handled", r])   # ALLOC:handler


async def worker(name, n):
    for i in range(n):
        keep.append((name, i, "co"))      # ALLOC:coro
        await asyncio.sleep(0)


async def coros():
    await asyncio.gather(worker("a", 30), worker("b", 20), worker("c", 25))


class Shape:
    table = [(i, i * i) for i in range(20)]   # ALLOC:classbody

    def method(self, n):
        return [(n, j) for j in range(n)]    # ALLOC:comprehension


def deep(n):
    if n == 0:
        keep.append(["deep"])             # ALLOC:deep
        return
    if n % 97 == 0:
        keep.append(["deep-mid", n])      # ALLOC:deepmid
    deep(n - 1)


def chain(n, tag):
    if n == 0:
        keep.append([tag, "mid"])         # ALLOC:middle
        return
    chain(n - 1, tag)


def middle(rounds, pad):
    if pad:
        middle(rounds, pad - 1)
        return
    for r in range(rounds):
        if r % 2:
            chain(12, r)
        else:
            chain(12, r)


def entered(tag):
    keep.append([tag, "entered"])         # ALLOC:entered


def entries(rounds):
    calls = (entered, functools.partial(entered))
    for r in range(rounds):
        calls[r % 2](r)


def main():
    sys.setrecursionlimit(2000)
    gens = [gen(50) for _ in range(3)]
    for r in range(300):
        down(rnd(40), r)
        g = gens[rnd(3)]
        if rnd(2):
            resume_a(g)
        else:
            resume_b(g)
        if r % 50 == 0:
            deep(400)
        listed(rnd(40) + 10)
        f = (lambda k: keep.append((k, "lambda")))   # ALLOC:lambda
        f(r)
        keep.append(Shape().method(rnd(5) + 1))
    for pad in range(8):
        middle(20, pad)
    entries(100)
    exec_loop(200)
    handlers(200)
    asyncio.run(coros())
    print("DONE %d" % len(keep))


main()
