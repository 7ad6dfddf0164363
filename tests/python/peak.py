"""A line that makes the process's peak and frees it before exit, for
`memtrail report --metric peak` (tests/integration/test_peak.c).

The line with the comment SITE:big allocates a bytearray of 50,000,000 bytes (the
object and its buffer: sys.getsizeof(big) bytes in all), which is the peak of
the process; the function then frees it, so nothing of it is live at exit.
The line with the comment SITE:keep keeps 100 small bytes objects to the end.

Prints "BIG <line> <bytes>": the line of SITE:big and sys.getsizeof of the
bytearray, the bytes the line held at the peak.
"""
import sys


def spike():
    big = bytearray(50000000)  # SITE:big
    big[-1] = 1
    size = sys.getsizeof(big)
    del big
    return size


def main():
    keep = [bytes(1000 + i) for i in range(100)]  # SITE:keep
    size = spike()
    line = spike.__code__.co_firstlineno + 1
    sys.stdout.write("BIG %d %d\n" % (line, size))
    return keep


if __name__ == "__main__":
    main()
