"""Python frames' lines looked up out of order, and through an equal code
object (run by tests/integration/test_python.c, line_order_*). memtrail
names a frame's line from where its code object's last lookup left off in
the line table (preload/python/pycode.c, line_of), moving forward or back;
an equal code object made after the first one died shares its id, and the
lookups go on in its own table.

site(k, keep, i) makes one bytes object of SIZE + 1,000 k bytes at the line
marked SITE:k (k = 0 to 11). This file's source is compiled and run twice
under another name: the first copy's site() is called in the order ORDER
(back and forth in its code object), then dropped with its code object and
line table; the second copy's, an equal code object, in the reverse order.
memtrail.snapshot("lines") is taken while all 24 objects are alive, each
line holding two.

Output: "SNAP lines <path>".
"""
import gc

import memtrail

SIZE = 100000
ORDER = [7, 2, 11, 0, 9, 4, 1, 10, 5, 3, 8, 6]


def site(k, keep, i):
    if k == 0:
        keep[i] = bytes(SIZE + 0)  # SITE:0
    elif k == 1:
        keep[i] = bytes(SIZE + 1000)  # SITE:1
    elif k == 2:
        keep[i] = bytes(SIZE + 2000)  # SITE:2
    elif k == 3:
        keep[i] = bytes(SIZE + 3000)  # SITE:3
    elif k == 4:
        keep[i] = bytes(SIZE + 4000)  # SITE:4
    elif k == 5:
        keep[i] = bytes(SIZE + 5000)  # SITE:5
    elif k == 6:
        keep[i] = bytes(SIZE + 6000)  # SITE:6
    elif k == 7:
        keep[i] = bytes(SIZE + 7000)  # SITE:7
    elif k == 8:
        keep[i] = bytes(SIZE + 8000)  # SITE:8
    elif k == 9:
        keep[i] = bytes(SIZE + 9000)  # SITE:9
    elif k == 10:
        keep[i] = bytes(SIZE + 10000)  # SITE:10
    elif k == 11:
        keep[i] = bytes(SIZE + 11000)  # SITE:11


def run():
    with open(__file__) as f:
        src = f.read()
    keep = [None] * (2 * len(ORDER))
    copy = {"__name__": "line_order_first"}
    exec(compile(src, __file__, "exec"), copy)
    for i, k in enumerate(ORDER):
        copy["site"](k, keep, i)
    del copy
    gc.collect()
    copy = {"__name__": "line_order_second"}
    exec(compile(src, __file__, "exec"), copy)
    for i, k in enumerate(reversed(ORDER)):
        copy["site"](k, keep, len(ORDER) + i)
    print("SNAP lines %s" % memtrail.snapshot("lines"))
    return keep


if __name__ == "__main__":
    kept = run()
