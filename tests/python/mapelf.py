"""An ELF file mapped whole as data, run under `memtrail run` by
tests/integration/test_leaks.c (python_elf_mapped_as_data_*).

A mapping at offset 0 of a file that starts with an ELF header passes, in
/proc/self/maps, for a loaded module (libdw maps the files memtrail
symbolizes so, and a program may too); its "writable segment", read where
the loader would have put it, runs past the file's mapping. Here it runs
onto a reserved region without access: libstaticstr.so (argv[1]) has 64 KiB
of .bss past its file's end. The leak scan must read only what is mapped
readable there (its direct reads of an image's static objects faulted on
it and killed the program before its exit snapshot).

Output: "mapped True", "done".
"""
import ctypes
import os
import sys

PROT_NONE, PROT_READ = 0, 1
MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x02, 0x10, 0x20   # Linux's values

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]

path = sys.argv[1]
size = os.path.getsize(path)
base = libc.mmap(None, size + (1 << 20), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
fd = os.open(path, os.O_RDONLY)
got = libc.mmap(base, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
os.close(fd)
print("mapped %s" % (got == base))
print("done")
