/* Symbol demangling for display: C++ (Itanium), Rust legacy and Rust v0,
 * through libiberty. Also small helpers for showing module paths. */
#ifndef MTA_DEMANGLE_H
#define MTA_DEMANGLE_H

#include <stdbool.h>

/* Returns a malloc'd human-readable form of `sym`: the demangled name for a
 * mangled C++ or Rust symbol (Rust legacy hashes "::h<16 hex>" removed), or a
 * copy of `sym` when it is not mangled or libiberty cannot demangle it.
 * Returns NULL only when out of memory. */
char *mta_demangle(const char *sym);

/* True if `name` looks mangled ("_Z...", "_R...", "__Z..."). */
bool mta_is_mangled(const char *name);

/* The last component of a path ("libc.so.6" for "/lib/x86_64-linux-gnu/libc.so.6"). */
const char *mta_basename(const char *path);

#endif /* MTA_DEMANGLE_H */
