"""Where a process's present pages lie: how many regions of 2 MiB (each a
last-level page-table page) and of 1 GiB (each a page of the level above)
hold at least one of them, and which mappings' pages each region holds.
Every fork copies those page-table pages and every exit or exec frees them
(tests/bench/page_cost's last row: what each costs a fork and exit here);
docs/performance.md counts memtrail's with it (issue 12, point 4).

usage: ptregions.py PID      (root, or the process's owner: reads
                              /proc/PID/maps and /proc/PID/pagemap)

Large reservations are read 256 MiB of page entries at a time, skipping
runs of entries that are all zero, so a process with tens of GiB reserved
takes a few seconds.
"""
import collections
import os
import struct
import sys

if len(sys.argv) != 2 or not sys.argv[1].isdigit():
    sys.exit(__doc__)
pid = sys.argv[1]
maps = []
with open(f"/proc/{pid}/maps") as f:
    for line in f:
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        name = fields[5] if len(fields) > 5 else ""
        maps.append((lo, hi, name, fields[1]))
fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
regions = collections.defaultdict(collections.Counter)
for lo, hi, name, perm in maps:
    if lo >= 1 << 47:   # [vsyscall]
        continue
    label = name.split("/")[-1] or "[anon %s %d KiB @%x]" % (perm, (hi - lo) >> 10, lo)
    pages, off = (hi - lo) >> 12, 0
    while off < pages:
        n = min(1 << 16, pages - off)
        data = os.pread(fd, n * 8, ((lo >> 12) + off) * 8)
        if data.count(b"\0") != len(data):
            for i, entry in enumerate(struct.unpack("<%dQ" % (len(data) // 8), data)):
                if entry >> 62:   # present or swapped
                    regions[(lo + ((off + i) << 12)) >> 21][label] += 1
        off += n
print("regions of 2 MiB: %d, of 1 GiB: %d" % (len(regions), len({r >> 9 for r in regions})))
for r in sorted(regions):
    print("%x (GiB %x): %s" % (r << 21, r >> 9,
                               ", ".join("%s: %d" % kv for kv in regions[r].items())))
