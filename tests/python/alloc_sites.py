"""Allocation sites of known size, run under `memtrail run` by
tests/integration/test_python.c (also with PYTHONMALLOC=malloc and -X dev).

Each allocating statement sits on its own line, marked `# SITE:name`; the test
finds the line by its marker. The sites are in a function and bind locals, so
no dict grows there (a module global would resize the module's dict at the
site). Every object made at a site is a single allocation (bytes, str, tuple,
an instance of a __slots__ class) or an object plus one buffer (bytearray,
set), none of them taken from a free list, so the sizes the allocators were
asked for add up to sys.getsizeof(obj) (which counts the GC header of GC
objects: it is part of their allocation).

Output, one line per site: "SITE <name> <bytes> <blocks> <mem_bytes>": bytes
and blocks live at that line, mem_bytes of them allocated from the MEM domain
(the rest from OBJ); then the snapshot "sites" is taken and "SNAP <path>"
printed, with every object still alive.
"""
import sys

import memtrail


class Pt(object):
    __slots__ = ("a", "b", "c")


def main():
    n_big = 100000 + sys.version_info[1]   # large: pymalloc passes it to RAW, once
    n_small = 200
    n_ba = 50000
    n_str = 30000
    n_wide = 1000
    n_tuple = 300
    n_set = 200
    euro = "\u20ac"

    b_big = b"x" * n_big  # SITE:bytes_big
    b_small = b"y" * n_small  # SITE:bytes_small
    ba = bytearray(n_ba)  # SITE:bytearray
    s_ascii = "z" * n_str  # SITE:str_ascii
    s_wide = euro * n_wide  # SITE:str_wide
    tup = (None,) * n_tuple  # SITE:tuple
    pt = Pt()  # SITE:slots
    st = set(range(n_set))  # SITE:set

    # The bytearray's buffer (n_ba + 1 bytes) comes from PyObject_Realloc up to
    # 3.12, from PyMem_Realloc since 3.13. A set's table (beyond the small
    # table inside the object) comes from PyMem_Malloc.
    ba_mem = n_ba + 1 if sys.version_info >= (3, 13) else 0
    set_mem = sys.getsizeof(st) - sys.getsizeof(set())
    sites = [
        ("bytes_big", b_big, 1, 0),
        ("bytes_small", b_small, 1, 0),
        ("bytearray", ba, 2, ba_mem),
        ("str_ascii", s_ascii, 1, 0),
        ("str_wide", s_wide, 1, 0),
        ("tuple", tup, 1, 0),
        ("slots", pt, 1, 0),
        ("set", st, 2, set_mem),
    ]
    for name, obj, blocks, mem in sites:
        print("SITE %s %d %d %d" % (name, sys.getsizeof(obj), blocks, mem))
    print("SNAP %s" % memtrail.snapshot("sites"))


main()  # CALL:main
