"""Calls into the test extension mtext (tests/python/ext/mtext.c), run by
tests/integration/test_python.c with and without `memtrail run --native`.
The test builds mtext for this interpreter and puts it on PYTHONPATH.

Each call keeps one block allocated in C: PyMem_Malloc (`# SITE:pymem`),
malloc with the GIL held (`# SITE:cmalloc`), malloc reported with
PyTraceMalloc_Track in domain 7 (`# SITE:tracked`) and malloc with the GIL
released (`# SITE:nogil`: no Python stack is available there) and malloc by
a thread of the extension's own while this one, holding the GIL, runs Python
code (`# SITE:other`: that Python stack is not the other thread's). Then the
snapshot "ext" is taken; then every block is freed and the snapshot "released"
is taken.

Output: "SITE <name> <bytes> 1 0" per site, "SNAP ext <path>",
"SNAP released <path>".
"""
import mtext

import memtrail

N_PYMEM = 12345
N_CMALLOC = 23456
N_TRACKED = 34567
N_NOGIL = 45678
N_OTHER = 56789
TRACK_DOMAIN = 7


def main():
    mtext.pymem_alloc(N_PYMEM)  # SITE:pymem
    mtext.c_alloc(N_CMALLOC)  # SITE:cmalloc
    mtext.tracked_alloc(TRACK_DOMAIN, N_TRACKED)  # SITE:tracked
    mtext.nogil_alloc(N_NOGIL)  # SITE:nogil
    mtext.other_start(N_OTHER)
    while not mtext.other_done():  # SITE:other
        pass
    for name, n in (("pymem", N_PYMEM), ("cmalloc", N_CMALLOC), ("tracked", N_TRACKED),
                    ("nogil", N_NOGIL), ("other", N_OTHER)):
        print("SITE %s %d 1 0" % (name, n))
    print("SNAP ext %s" % memtrail.snapshot("ext"))
    mtext.release()
    print("SNAP released %s" % memtrail.snapshot("released"))


main()  # CALL:main
