/* A growable open-addressing index of 32-bit ids (0 = empty slot) for the
 * insert-only tables whose entries live in dense arrays: the stack table
 * (record/stacktab.c) and the code registry (python/pycode.c).
 *
 * Threads: readers probe lock-free (acquire loads of the index pointer and of
 * each slot); one inserter at a time, under the caller's lock, stores an id
 * with a release store once its entry is complete. Growing builds a table
 * twice the size from the caller's entries; the caller publishes it with a
 * release store and never unmaps the old one, which readers may still probe
 * (it holds every id published before the switch). Tables are mmap'd
 * (MAP_NORESERVE): pages are touched as slots are, never the traced heap. */
#ifndef MTP_BASE_INDEX_H
#define MTP_BASE_INDEX_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct mtp_index {
    uint32_t mask;               /* slots - 1 */
    _Atomic uint32_t slot[];     /* release-published ids, 0 = empty */
} mtp_index_t;

/* A table of nslots (a power of two) empty slots, or NULL. */
mtp_index_t *mtp_index_new(uint32_t nslots);
/* The bytes a table of nslots takes, and such a table made in zeroed
 * memory of the caller's (static: never freed, as the mapped ones are not). */
#define MTP_INDEX_BYTES(nslots) (sizeof(mtp_index_t) + (size_t)(nslots) * sizeof(uint32_t))
mtp_index_t *mtp_index_in(void *zeroed, uint32_t nslots);

/* Stores id in the first empty slot from hash's (inserter only). */
void mtp_index_put(mtp_index_t *t, uint32_t id, uint64_t hash);

/* Inserter only: t if it has room for one more id with ids 1..ids in it at
 * a load of at most load_num/load_den; else a new table twice the size
 * holding ids 1..ids (slot of id: hash_of(id)), or NULL without memory. */
mtp_index_t *mtp_index_room(mtp_index_t *t, uint32_t ids, unsigned load_num, unsigned load_den,
                            uint64_t (*hash_of)(uint32_t id));

#endif /* MTP_BASE_INDEX_H */
