"""A line that dominates the process-wide peak and is freed before exit
(issue 14), run under `memtrail run` by tests/integration/test_html.c.

keep() holds 1 MiB to the end; after the api snapshot "start", peak() makes
8 bytearrays of 4 MiB on one line (its marker: the SITE comment in peak())
and drops them, so the peak is made of that line, which has no live bytes
at exit; late() then keeps 64 KiB. Prints nothing.
"""
import memtrail


def keep():
    return bytearray(1 << 20)  # SITE:keep


def peak():
    blocks = [bytearray(4 << 20) for _ in range(8)]  # SITE:peak
    return sum(len(b) for b in blocks)


def late():
    return bytearray(64 << 10)  # SITE:late


def main():
    kept = keep()
    memtrail.snapshot("start")
    total = peak()
    assert total == 32 << 20
    more = late()
    return kept, more


if __name__ == "__main__":
    KEPT = main()
