#!/usr/bin/env python3
"""python_exports: libmemtrail_reader.so (python/memtrail/) defines exactly
the symbols of its version script, reader.map, in its dynamic symbol table
(`nm -D --defined-only`), and those are exactly the functions
python/memtrail/_reader.py binds (its PROTOTYPES). Every one of them loads
through ctypes from the build tree."""

import os
import re
import subprocess
import sys


def main():
    pkg = os.environ.get("MEMTRAIL_PYTHONPATH")
    source = os.environ.get("MEMTRAIL_SOURCE_ROOT")
    if not pkg or not source:
        print("MEMTRAIL_PYTHONPATH or MEMTRAIL_SOURCE_ROOT is not set: run through meson test")
        return 77
    lib = os.path.join(pkg, "memtrail", "libmemtrail_reader.so")
    mapfile = open(os.path.join(source, "python", "memtrail", "reader.map")).read()
    body = re.sub(r"/\*.*?\*/", "", mapfile, flags=re.S)
    glob = re.search(r"global:(.*?)local:", body, re.S).group(1)
    mapped = set(re.findall(r"(\w+)\s*;", glob))
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], stdout=subprocess.PIPE,
                        universal_newlines=True, check=True).stdout
    exported = {line.split()[-1].split("@")[0] for line in nm.splitlines() if line.strip()}
    exported.discard("")
    sys.path.insert(0, pkg)
    from memtrail import _reader
    bound = set(_reader.PROTOTYPES)
    ok = True
    for what, a, b in (("exported but not in reader.map", exported, mapped),
                       ("in reader.map but not exported", mapped, exported),
                       ("in reader.map but not bound by _reader.py", mapped, bound),
                       ("bound by _reader.py but not in reader.map", bound, mapped)):
        if a - b:
            print("FAIL: %s: %s" % (what, ", ".join(sorted(a - b))))
            ok = False
    _reader.lib()   # every prototype resolves
    if ok:
        print("%d symbols: exported, in reader.map and bound" % len(mapped))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
