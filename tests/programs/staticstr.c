/* staticstr: a shared library whose only content is room in its writable
 * image, where tests/python/staticstr.py builds str objects as an
 * interpreter's image holds them (3.11+: its identifiers, statically
 * allocated in the executable's or libpython's data). Their text can look
 * like an address: in Debian's python3.11, whose heap lies in the low
 * gigabytes, the static "ino2" (0x326f6e69) pointed into a leaked block in
 * some runs and made it possibly lost. The leak scan must not read a static
 * str's text as pointers (preload/leak/pyinert.c). */
#define ROOM 512
#define BSS (1 << 16)

__attribute__((visibility("default"), aligned(16))) unsigned char mt_static_room[ROOM] = {1};
/* Its writable segment runs 64 KiB past the file's end: mapped whole as
 * data (tests/python/mapelf.py), the file passes for a module whose
 * segment lies past its mapping. */
__attribute__((visibility("default"))) unsigned char mt_static_bss[BSS];
