#!/usr/bin/python3
"""Normalizes *.mtsnap files for byte comparison (tests/tools/snapsame.sh).

Zeroes the fields that legitimately differ between two runs of the same
program (include/memtrail_format.h): META pid, ppid, time_ns, start_ns;
TOTALS peak_time_ns; LEAKS stop_ns and root_bytes (the roots include each
stopped thread's stack from its stack pointer, which depends on where the
thread was when it stopped: two runs of the same library differ by a few
dozen bytes); PYGRAPH capture_ns; and the build id of
the module named by --lib (memtrail's own library, a different build on each
side; its hex string is overwritten with zeros, same length). Every CRC is
checked first, then recomputed over the normalized payload, so the CRCs are
still compared. A version 2 file's records are decompressed first (with the
zstd program) and written stored (codec 0), so the normalized payloads are
the raw ones. Writes FILE.norm next to each FILE; exits 1 on a bad file.
With --cmp A B, prints which records of two normalized files differ.
"""
import struct
import subprocess
import sys
import zlib

MAGIC = b"\x89MTSNAP\n"
HDR = 16        # the file header
TAG_LEAK = 0x80000000 | struct.unpack("<I", b"LEAK")[0]
TAG_PYGR = 0x80000000 | struct.unpack("<I", b"PYGR")[0]
META_ZERO = [(0, 4), (4, 4), (8, 8), (16, 8)]   # pid, ppid, time_ns, start_ns
TOTALS_PEAK_TIME = (64, 8)
LEAK_ZERO = [(8, 8), (24, 8)]   # root_bytes, stop_ns
PYGRAPH_CAPTURE_NS = (16, 8)
MODULE_SIZE = 32


def zero(buf, off, n):
    buf[off:off + n] = bytes(n)


def rec_hdr(data):
    """Record header size: 16 bytes in version 1, 32 in version 2."""
    return 16 if struct.unpack_from("<H", data, 8)[0] == 1 else 32


def records(data):
    off, hl = HDR, rec_hdr(data)
    while off < len(data):
        tag, crc, length = struct.unpack_from("<IIQ", data, off)
        yield off, tag, crc, length
        off += hl + length


def expand(path, data):
    """A version 2 file with every record decompressed and stored."""
    if rec_hdr(data) == 16:
        return data
    out = bytearray(data[:HDR])
    for off, tag, crc, length in records(data):
        raw_len, codec = struct.unpack_from("<QI", data, off + 16)
        stored = bytes(data[off + 32:off + 32 + length])
        if zlib.crc32(stored) != crc:
            sys.exit(f"{path}: bad CRC at {off}")
        raw = stored if codec == 0 else subprocess.run(
            ["zstd", "-q", "-d", "-c"], input=stored, stdout=subprocess.PIPE, check=True).stdout
        if len(raw) != raw_len:
            sys.exit(f"{path}: record at {off} decompresses to {len(raw)} bytes, not {raw_len}")
        out += struct.pack("<IIQQII", tag, zlib.crc32(raw), len(raw), len(raw), 0, 0) + raw
    return out


def normalize(path, lib):
    data = bytearray(open(path, "rb").read())
    if data[:8] != MAGIC:
        sys.exit(f"{path}: not a snapshot")
    data = expand(path, data)
    hl = rec_hdr(data)
    strings = []        # (offset in file, length) of each string
    for off, tag, crc, length in records(data):
        pl = off + hl
        if zlib.crc32(data[pl:pl + length]) != crc:
            sys.exit(f"{path}: bad CRC at {off}")
        name = struct.pack("<I", tag)
        if name == b"META":
            for o, n in META_ZERO:
                zero(data, pl + o, n)
        elif name == b"STRS":
            count, p = struct.unpack_from("<I", data, pl)[0], pl + 4
            for _ in range(count):
                n = struct.unpack_from("<I", data, p)[0]
                strings.append((p + 4, n))
                p += 4 + n
        elif name == b"MODS" and lib:
            count = struct.unpack_from("<I", data, pl)[0]
            for i in range(count):
                m = pl + 4 + i * MODULE_SIZE
                spath, sbid = struct.unpack_from("<II", data, m + 24)
                po, pn = strings[spath]
                if bytes(data[po:po + pn]).endswith(lib.encode()):
                    bo, bn = strings[sbid]
                    data[bo:bo + bn] = b"0" * bn
        elif name == b"TTLS":
            zero(data, pl + TOTALS_PEAK_TIME[0], TOTALS_PEAK_TIME[1])
        elif tag == TAG_LEAK:
            for o, n in LEAK_ZERO:
                zero(data, pl + o, n)
        elif tag == TAG_PYGR:
            zero(data, pl + PYGRAPH_CAPTURE_NS[0], PYGRAPH_CAPTURE_NS[1])
    # The build id lives in STRS, before MODS: recompute every CRC at the end.
    for off, tag, crc, length in records(data):
        pl = off + hl
        struct.pack_into("<I", data, off + 4, zlib.crc32(data[pl:pl + length]))
    open(path + ".norm", "wb").write(data)


def record_list(path):
    data = open(path, "rb").read()
    hl = rec_hdr(data)
    return [(struct.pack("<I", tag & 0x7fffffff).decode("ascii", "replace"),
             data[off + hl:off + hl + length]) for off, tag, crc, length in records(data)]


def compare(a, b):
    """Prints the records of normalized files a and b that differ."""
    ra, rb = record_list(a), record_list(b)
    if [t for t, _ in ra] != [t for t, _ in rb]:
        print("records differ: " + " ".join(t for t, _ in ra) + " / " + " ".join(t for t, _ in rb))
        return
    same = [t for (t, pa), (_, pb) in zip(ra, rb) if pa == pb]
    differ = [t for (t, pa), (_, pb) in zip(ra, rb) if pa != pb]
    print("same: " + " ".join(same) + "; differ: " + " ".join(differ))


def main():
    args = sys.argv[1:]
    if args[:1] == ["--cmp"]:
        compare(args[1], args[2])
        return
    lib = None
    if args[:1] == ["--lib"]:
        lib, args = args[1], args[2:]
    for p in args:
        normalize(p, lib)


if __name__ == "__main__":
    main()
