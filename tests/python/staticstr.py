"""Static str objects whose text is an address, run under `memtrail run` by
tests/integration/test_leaks.c (python_static_str_*). Interpreters 3.11+
keep their identifiers as str objects in their image's data, a root of the
leak scan; an identifier's text, zero-padded to a word, can equal an address
(Debian's python3.11, whose heap is in the low gigabytes: the static "ino2"
is 0x326f6e69). memtrail must not read such text as a pointer.

Two bytes objects are lost as in pyleak.py (a reference added with
Py_IncRef that nothing gives back). Then, in the writable image of
libstaticstr.so (argv[1]), two str objects are made as an interpreter's
image holds them: the header of a real 8-character str, copied, and as text
the 8 bytes of an address, one written at a time so that no whole word of it
is left anywhere else: into the first lost block (4,937 bytes in, as "ino2"
was) and at the start of the second. Both blocks must still be definitely
lost, 5,033 bytes each, at the SITE line.

lose_bytes(0) runs after the leaks for the reason pyleak.py gives.
Output: "forged <n>", "done".
"""
import ctypes
import sys

N_LEAK = 5000
TEXT = "12345678"   # the header copied: a compact ASCII str of 8 characters


def lose_bytes(n):
    obj = bytes(n)  # SITE:lost
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    where = id(obj)
    obj = None
    return where


def forge(room, at, address):
    header = sys.getsizeof(TEXT) - len(TEXT) - 1
    ctypes.memmove(ctypes.addressof(room) + at, id(TEXT), header)
    for i in range(len(TEXT)):
        room[at + header + i] = (address >> (8 * i)) & 0xFF
    room[at + header + len(TEXT)] = 0
    # What the interpreter reads there is the str it was made to be.
    made = ctypes.cast(ctypes.addressof(room) + at, ctypes.py_object).value
    return len(made) == len(TEXT) and type(made) is str


lib = ctypes.CDLL(sys.argv[1])
room = (ctypes.c_ubyte * 512).in_dll(lib, "mt_static_room")
first = lose_bytes(N_LEAK)
second = lose_bytes(N_LEAK)
lose_bytes(0)
forged = forge(room, 0, first + 4937) + forge(room, 256, second)
print("forged %d" % forged)
print("done")
