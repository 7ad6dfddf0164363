"""numpy's array data under memtrail (run by tests/integration/test_python.c
with Debian's python3 and python3-numpy).

numpy allocates array data with calloc/malloc and reports it with
PyTraceMalloc_Track in its own domain (numpy.lib.tracemalloc_domain, 389047);
memtrail records the block in domain 16 + 389047. `# SITE:zeros` makes one
8,000,000-byte data block (one million float64 zeros).

Output: "DOMAIN <numpy's domain>", then "SNAP <path>" (snapshot "numpy").
"""
import numpy

import memtrail


def main():
    a = numpy.zeros(1000000)  # SITE:zeros
    assert a.nbytes == 8000000
    print("DOMAIN %d" % numpy.lib.tracemalloc_domain)
    print("SNAP %s" % memtrail.snapshot("numpy"))
    return a


main()  # CALL:main
