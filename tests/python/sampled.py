"""Byte sampling on Python's allocator domains (tests/integration/test_sample.c):
four lines keep about 20 MB each live to the end, from blocks of different
sizes and domains, while a loop allocates and frees temporaries and lists
grow by realloc. The test runs it exact and sampled and compares the live
bytes of each marked line.

  SITE:small  150,000 bytes objects of 100 bytes (the object allocator's
              small blocks) and the list holding them (grown by realloc)
  SITE:medium 7,000 bytearrays of 3,000 bytes (their buffers: mem domain)
  SITE:dicts  20,000 dicts of 20 items
  SITE:large  70 bytes objects of 300,000 bytes (raw domain, through malloc)
"""
import sys


def churn():
    for i in range(100000):
        t = bytes(500)  # SITE:temp
        del t


def main():
    small = [bytes(100) for _ in range(150000)]  # SITE:small
    churn()
    medium = [bytearray(3000) for _ in range(7000)]  # SITE:medium
    dicts = [{i: i for i in range(20)} for _ in range(20000)]  # SITE:dicts
    large = [bytes(300000) for _ in range(70)]  # SITE:large
    sys.stdout.write("done\n")
    return small, medium, dicts, large


kept = main()
