"""The mmap domain in a Python process (tests/integration/test_mmap.c).

Takes the snapshot "before"; maps 8 MiB of anonymous memory with
mmap.mmap (the line with the comment SITE:pymap) and makes 100,000 strings,
whose memory pymalloc takes from arenas it maps itself (the allocator's
own mappings: not the domain's); takes the snapshot "mapped"; closes the
mapping and takes "closed". Prints "SNAP <label> <path>" for each.
"""
import mmap

import memtrail


def main():
    print("SNAP before %s" % memtrail.snapshot("before"))
    m = mmap.mmap(-1, 8 << 20)  # SITE:pymap
    data = [str(i) * 3 for i in range(100000)]
    print("SNAP mapped %s" % memtrail.snapshot("mapped"))
    m.close()
    print("SNAP closed %s" % memtrail.snapshot("closed"))
    return data


main()
