/* Redirecting imported functions by rewriting GOT slots, and the dlopen
 * wrapper that lets the preload see every dlopen; see gotpatch.c. */
#ifndef MTP_GOTPATCH_H
#define MTP_GOTPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "base/state.h"

/* Redirect every GOT slot that refers to `symbol` (R_X86_64_JUMP_SLOT and
 * R_X86_64_GLOB_DAT relocations, found through each object's PT_DYNAMIC:
 * DT_JMPREL/DT_PLTRELSZ, DT_RELA/DT_RELASZ, DT_SYMTAB, DT_STRTAB) in every
 * object currently loaded (dl_iterate_phdr), except the object holding this
 * code (libmemtrail), the vdso, objects whose dlopen has not completed yet,
 * so that it holds `replacement`. Slots that already hold `replacement`, and
 * slots holding NULL (an unresolved weak reference), are left alone
 * (idempotent). A slot inside the object's PT_GNU_RELRO range (read-only after
 * relocation) is made writable with mprotect for the write and put back to
 * PROT_READ afterwards. Never allocates; takes the loader's lock (do not call
 * it from inside a dl_iterate_phdr callback). Returns the number of slots
 * changed, or the first -errno met (the slots changed before stay changed). */
int mtp_got_patch(const char *symbol, void *replacement);

/* The same for names[0..n) at once, names[i]'s slots made to hold to[i]:
 * one walk of the loaded objects and their relocations, where a call each
 * walks them all again. Returns the number of slots changed, or the first
 * -errno met. */
int mtp_got_patch_set(const char *const *names, void *const *to, size_t n);

/* The same, walking only the objects `seen` does not hold, which it then
 * holds (by load address): after a dlopen, the objects it added. While no
 * object has been unloaded (dl_iterate_phdr's dlpi_subs) and no walk
 * without a set has written a slot, an object walked before is the same one
 * and its slots hold what they were given (a patched slot is not rebound by
 * the loader); otherwise `seen` starts again and every object is walked.
 * Objects still inside their dlopen, and objects where a slot could not be
 * written, are not held (the next walk tries them again). One set for one
 * list of names and values; the caller owns it, zeroed to begin with. The
 * loader's lock, held during every walk, serializes its use. */
#define MTP_GOT_SEEN_MAX 1024
typedef struct mtp_got_seen {
    uintptr_t base[MTP_GOT_SEEN_MAX];
    size_t n;
    unsigned long long subs, writes;
} mtp_got_seen_t;
int mtp_got_patch_new(const char *const *names, void *const *to, size_t n, mtp_got_seen_t *seen);

/* The same, also leaving alone the objects whose load address (dlpi_addr,
 * which is link_map.l_addr) is one of skip[0..nskip) (skip may be NULL). */
int mtp_got_patch_skip(const char *symbol, void *replacement, const uintptr_t *skip,
                       size_t nskip);

/* Counts the GOT slots that refer to `symbol` in the one loaded object
 * whose mapped range holds `within` (whatever they hold), with the same
 * rules for which objects are seen; changes nothing. Whether that object
 * calls its own exported function through its PLT (a shared libpython built
 * with semantic interposition) or binds the calls at link time (a static or
 * -fno-semantic-interposition build: none). */
int mtp_got_count(const char *symbol, const void *within);

/* A GOT slot met by mtp_got_rewrite: which of its names, what it holds,
 * the mapped range of its object, and whether that object is libmemtrail. */
typedef struct mtp_got_slot {
    size_t which;
    void *cur;
    uintptr_t lo, hi;
    int self;
    int plt;            /* R_X86_64_JUMP_SLOT (a call); else GLOB_DAT (an address taken) */
} mtp_got_slot_t;
/* Returns what the slot should hold (NULL or cur: left alone). */
typedef void *(*mtp_got_visit_fn)(void *arg, const mtp_got_slot_t *slot);

/* Every GOT slot that refers to one of names[0..nnames) in every loaded
 * object, libmemtrail's own included (with the same rules otherwise as
 * mtp_got_patch: no vdso, no object still inside its dlopen, RELRO made
 * writable for the write), is shown to `visit`, which decides what it holds.
 * Never allocates; takes the loader's lock. Returns the number of slots
 * changed, or the first -errno met. */
int mtp_got_rewrite(const char *const *names, size_t nnames, mtp_got_visit_fn visit, void *arg);

/* Called after every successful dlopen made through the wrapper, with the
 * handle returned, outside of any lock of ours (but inside the application's
 * own). errno is preserved around it, and a dlerror() string it leaves (a
 * failed dlsym) is cleared. Set by the Python support. */
extern void (*mtp_dlopen_hook)(void *handle);

/* The interposed dlopen: same result as if the caller had called glibc's
 * dlopen itself (its DT_RPATH/DT_RUNPATH and $ORIGIN are honoured). */
MTP_EXPORT void *dlopen(const char *file, int mode);
/* The same function under a hidden name: its own address (hook/late.c). */
extern __typeof__(dlopen) mtp_self_dlopen;

#endif /* MTP_GOTPATCH_H */
