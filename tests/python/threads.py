"""Four threading.Thread workers, each allocating K bytes objects of its own
size at its own line (run by tests/integration/test_python.c).

Worker i calls ALLOC[i] K times; the object is made in alloc<i> at the line
marked `# SITE:t<i>`, so the innermost frame of each block is that line and the
next one out is `worker` at the line marked `# CALL:worker`. The objects are
kept in a list per thread, allocated before the threads start with room for
all K (so no list grows in a worker). The threads are joined, then the
snapshot "threads" is taken.

Output: "SITE t<i> <bytes> <blocks> 0" per thread, then "SNAP <path>".
"""
import sys
import threading

import memtrail

K = 50


def alloc0(n):
    return b"0" * n  # SITE:t0


def alloc1(n):
    return b"1" * n  # SITE:t1


def alloc2(n):
    return b"2" * n  # SITE:t2


def alloc3(n):
    return b"3" * n  # SITE:t3


ALLOC = [alloc0, alloc1, alloc2, alloc3]
SIZES = [1000, 3000, 20000, 300000]     # small and large (pymalloc and RAW underneath)


def worker(i, out):
    alloc = ALLOC[i]
    n = SIZES[i]
    for j in range(K):
        out[j] = alloc(n)  # CALL:worker


def main():
    kept = [[None] * K for _ in range(4)]
    threads = [threading.Thread(target=worker, args=(i, kept[i])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert all(len(b) == SIZES[i] for b in kept[i])
        print("SITE t%d %d %d 0" % (i, K * sys.getsizeof(kept[i][0]), K))
    print("SNAP %s" % memtrail.snapshot("threads"))


main()  # CALL:main
