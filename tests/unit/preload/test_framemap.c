/* Unit tests of a snapshot's frame map (preload/writer/framemap.c): for
 * stacks that share their outer words in the stack table's chunks, with
 * native words, one-word and two-word Python frames, two-word frames that
 * straddle a chunk boundary and ones cut short by the depth, the frame
 * indices of every stack (its node of the STACKS tree, expanded through its
 * parents as a reader does) name exactly the frames a plain walk of its
 * words finds, in order, whether its chunks were seen before or not, and
 * each shared chunk is one node.
 * (No code registry here: every Python frame's key is the registry's
 * "unknown", so the words' alignment shows in the native frames around
 * them and in the counts.) */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "python/py.h"
#include "record/record.h"
#include "writer/framemap.h"

#define NSTACKS 3000
#define MAXD 200

static uintptr_t words[NSTACKS][MAXD + 2];
static uint32_t depth[NSTACKS], ids[NSTACKS];

static uint64_t rnd(void)
{
    static uint64_t s = 0x2545f4914f6cdd1dull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* One frame at w: 1 or 2 words. */
static uint32_t put_frame(uintptr_t *w, int kind)
{
    switch (kind) {
    case 0:   /* native */
        w[0] = 0x400000 + (uintptr_t)(rnd() % 512) * 16;
        return 1;
    case 1:   /* Python, packed */
        return mtp_pyword_put(w, 0x7f0000001000 + (rnd() % 64) * 16, rnd() % 200);
    default:  /* Python, two words (an offset that does not fit) */
        return mtp_pyword_put(w, 0x7f0000001000 + (rnd() % 64) * 16, (1u << 20) + rnd() % 3);
    }
}

/* The plain walk: each frame's key, as framemap.c documents it. */
static uint32_t reference(const uintptr_t *w, uint32_t n, uint64_t *keys)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n;) {
        uintptr_t x = w[i];
        if (!mtp_is_pyword(x)) {
            keys[k++] = x;
            i++;
        } else if ((x & MTP_PYWORD_PACKED) || i + 1 < n) {
            keys[k++] = MTP_PYWORD_TAG | 0xffffffffull;   /* no registry: unknown */
            i += (x & MTP_PYWORD_PACKED) ? 1 : 2;
        } else {
            keys[k++] = x;   /* cut short */
            i++;
        }
    }
    return k;
}

/* A node's frames as a reader expands them: its own, then its parent's;
 * every parent an earlier node, every chunk node with frames of its own. */
static uint32_t expand(const mtp_framemap_t *m, uint32_t node, uint32_t *idx)
{
    uint32_t n = 0;
    for (uint32_t x = node; x != MTSNAP_NONE; x = m->nodes[x].parent) {
        const mtp_fmnode_t *d = &m->nodes[x];
        cr_assert(x == node || (!d->is_stack && d->len > 0), "node %u", x);
        cr_assert(d->parent == MTSNAP_NONE || d->parent < x, "node %u: parent %u", x, d->parent);
        cr_assert_leq(n + d->len, MTP_STACK_MAX_WORDS);
        memcpy(idx + n, m->pool + d->off, d->len * sizeof(*idx));
        n += d->len;
    }
    return n;
}

static void check_all(mtp_framemap_t *m, int order_ids)
{
    uint32_t idx[MTP_STACK_MAX_WORDS];
    uint64_t want[MTP_STACK_MAX_WORDS];
    for (int j = 0; j < NSTACKS; j++) {
        int i = order_ids ? j : NSTACKS - 1 - j;
        uint32_t nw = reference(words[i], depth[i], want);
        int64_t node = mtp_framemap_add_stack(m, ids[i]);
        cr_assert_geq(node, 0);
        cr_assert(m->nodes[node].is_stack);
        uint32_t n = expand(m, (uint32_t)node, idx);
        cr_assert_eq(n, nw, "stack %d (depth %u): %u frames, expected %u", i, depth[i], n, nw);
        for (uint32_t f = 0; f < nw; f++)
            cr_assert_eq(m->order[idx[f]], want[f], "stack %d frame %u", i, f);
    }
}

Test(framemap, shared_chunks_and_two_word_frames)
{
    cr_assert_eq(mtp_stacktab_init(), 0);
    mtp_thread_t *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(t, MAP_FAILED);
    /* A few long outer parts (the callers), each shared by many stacks
     * with different inner parts; the depth cut falls anywhere. */
    static uintptr_t outer[8][MAXD + 2];
    uint32_t outer_n[8];
    for (int o = 0; o < 8; o++) {
        uint32_t n = 0, want = 120 + (uint32_t)o * 10;
        if (o % 2 == 0)
            want = 128;   /* whole chunks: a chunk begins right after the inner part */
        while (n + 1 < want)
            n += put_frame(outer[o] + n, (int)(rnd() % 3));
        while (n < want)
            n += put_frame(outer[o] + n, 0);
        outer_n[o] = n;
    }
    for (int i = 0; i < NSTACKS; i++) {
        uint32_t n = 0, inner = 1 + (uint32_t)(rnd() % 40);
        while (n < inner)
            n += put_frame(words[i] + n, (int)(rnd() % 3));
        if (rnd() % 2)   /* a two-word frame whose second word is the outer part's first */
            words[i][n++] = MTP_PYWORD_TAG | (0x7f0000001008 + (rnd() % 4) * 16);
        int o = (int)(rnd() % 8);
        uint32_t take = outer_n[o];
        if (n + take > MAXD)
            take = MAXD - n;
        memcpy(words[i] + n, outer[o], take * sizeof(uintptr_t));
        n += take;
        if (rnd() % 4 == 0)
            n -= (uint32_t)(rnd() % 20);   /* a shallower depth: cut anywhere */
        if (rnd() % 8 == 0) {              /* end on a two-word frame's first word */
            words[i][n - 1] = MTP_PYWORD_TAG | (0x7f0000001008 + (rnd() % 4) * 16);
        }
        depth[i] = n;
        ids[i] = mtp_stack_intern(t, words[i], n);
        cr_assert_neq(ids[i], 0u);
    }
    mtp_framemap_t m = {0};
    check_all(&m, 1);          /* chunks met first here, then from the memo */
    uint32_t frames = m.count, nodes = m.nnodes;
    cr_assert_gt(nodes, (uint32_t)NSTACKS, "shared chunks are nodes");
    cr_assert_eq(nodes, (uint32_t)NSTACKS + m.mcount, "each chunk met is one node, once");
    check_all(&m, 0);          /* everything again, all from the memo */
    cr_assert_eq(m.count, frames, "no new frame the second time");
    cr_assert_eq(m.nnodes, nodes + NSTACKS, "no new chunk node the second time");
    cr_assert_gt(m.mcount, 0u, "chunks were remembered");
    mtp_framemap_free(&m);
    mtp_framemap_t fresh = {0};
    check_all(&fresh, 0);      /* another order from scratch */
    mtp_framemap_free(&fresh);
}
