/* The growable id index (base/index.h). */
#include <stddef.h>
#include <sys/mman.h>

#include "base/index.h"
#include "base/util.h"

mtp_index_t *mtp_index_in(void *zeroed, uint32_t nslots)
{
    mtp_index_t *t = zeroed;
    t->mask = nslots - 1;
    return t;
}

mtp_index_t *mtp_index_new(uint32_t nslots)
{
    size_t bytes = MTP_INDEX_BYTES(nslots);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    mtp_populate(p, bytes);   /* filled at random from the start: every page is used */
    mtp_index_t *t = p;
    t->mask = nslots - 1;
    return t;
}

void mtp_index_put(mtp_index_t *t, uint32_t id, uint64_t hash)
{
    uint32_t i = (uint32_t)hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], id, memory_order_release);
}

mtp_index_t *mtp_index_room(mtp_index_t *t, uint32_t ids, unsigned load_num, unsigned load_den,
                            uint64_t (*hash_of)(uint32_t id))
{
    if ((uint64_t)(ids + 1) * load_den <= (uint64_t)(t->mask + 1) * load_num)
        return t;
    if (t->mask >= UINT32_MAX / 2)
        return NULL;
    mtp_index_t *n = mtp_index_new(2 * (t->mask + 1));
    if (!n)
        return NULL;
    for (uint32_t id = 1; id <= ids; id++)
        mtp_index_put(n, id, hash_of(id));
    return n;
}
