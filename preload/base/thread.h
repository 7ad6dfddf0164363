/*
 * Per-thread state: one mmap'd block per application thread (its event ring,
 * its stack-id cache, its unwind-rule cache and its last walk), and the
 * registry of blocks.
 *
 * Ownership: the producer fields and both caches are written only by the
 * owning thread; `tail` only by the writer; `next` is immutable once the block
 * is published; `state` and `tid` change hands with CAS (see thread.c). The
 * ring protocol itself (push, wait for space) is record/record.h's.
 */
#ifndef MTP_BASE_THREAD_H
#define MTP_BASE_THREAD_H

#include "base/state.h"

/* ---- ring records ---- */
/* TRACK/UNTRACK come from PyTraceMalloc_Track/Untrack: TRACK re-labels a
 * live block (or adds one) in an extension domain, UNTRACK removes the block
 * only if it carries that domain. The mmap domain (hook/maphooks.c): an
 * ALLOC of that domain is a mapping [addr, addr + size); UNMAP ends the
 * mmap blocks' pages in [addr, addr + size) (munmap, a MAP_FIXED mapping
 * that is not recorded); REMAP_OLD is mremap's old range, ended as UNMAP
 * (stack 1: only looked at, the range stays mapped), and REMAP_NEW its new
 * one, an ALLOC when REMAP_OLD found a recorded mapping: the two are
 * consecutive in their ring. RETRACE (hook/pyreuse.c) gives the live
 * Python-domain block at addr the stack `stack`: an object CPython took from
 * a free list, without calling the allocator, at that stack. WINDOW opens
 * (size 1) or closes (size 2) measurement window number addr
 * (writer/window.c). */
enum mtp_event_kind {
    MTP_EV_ALLOC = 1, MTP_EV_FREE = 2, MTP_EV_NOP = 3, MTP_EV_TRACK = 4, MTP_EV_UNTRACK = 5,
    MTP_EV_UNMAP = 6, MTP_EV_REMAP_OLD = 7, MTP_EV_REMAP_NEW = 8, MTP_EV_RETRACE = 9,
    MTP_EV_WINDOW = 10
};

#define MTP_DOMAIN_MAX ((1u << 28) - 1)
typedef struct mtp_event {
    uint64_t counter;     /* global order */
    uint64_t addr;
    uint64_t size;        /* ALLOC/TRACK: requested size */
    uint32_t stack;       /* ALLOC/TRACK/RETRACE: stack id */
    uint32_t kind : 4;    /* enum mtp_event_kind */
    uint32_t domain : 28; /* enum mtsnap_domain (extension domains: number + 16) */
} mtp_event_t;
_Static_assert(sizeof(mtp_event_t) == 32, "ring record is 32 bytes");

#define MTP_RING_SLOTS (1u << 15)   /* 32768 records = 1 MiB per thread */
#define MTP_PYMEMO_BYTES 32768u    /* per-thread room for python/pystack.c's memo */
#define MTP_SCACHE_SLOTS 1024u      /* per-thread stack-id cache entries */
#define MTP_RCACHE_SLOTS 512u       /* per-thread unwind-rule cache entries */
/* A fork child's first native stacks are walked and interned without the
 * thread's caches and memos (unwind/unwind.c, record/stacktab.c): most
 * children exec after a few (a shell's: 4 or 32), and those pages, wiped at
 * the fork, would each take a fault for a walk or two. */
#define MTP_FRESH_STACKS 64u

enum mtp_thread_state { MTP_THREAD_LIVE = 1, MTP_THREAD_FREE = 2 };

typedef struct mtp_scache_ent {
    uint64_t hash;
    uint32_t id;
    uint32_t depth;
} mtp_scache_ent_t;

typedef struct mtp_rule_ent {
    uint64_t pc;        /* return address, 0 = empty */
    int32_t cfa_off;
    int16_t rbp_off;
    uint8_t base;
    uint8_t pad;
} mtp_rule_ent_t;

/* One frame of a CFI walk (unwind/walk.c): the state on entry to it (its
 * return address, the CFA of the frame below, rbp) and where its step read
 * the caller's rbp (0: not read; the address is 8-aligned, the low bits are
 * MTP_UF_* flags). */
typedef struct mtp_uframe {
    uintptr_t pc, sp, bp;
    uintptr_t slot;
} mtp_uframe_t;

#define MTP_UF_RBP_CFA 1u   /* this frame's CFA is rbp plus an offset */
#define MTP_UF_NEED_BP 2u   /* the walk from here outward reads this frame's rbp */
#define MTP_UF_FLAGS 3u

/* The thread's previous successful walk, outermost frame first (index 0),
 * so a new walk that joins it keeps its outer part in place; one array per
 * field, so the check of a joined part reads only pc, sp and slot.
 * Per-thread. */
typedef struct mtp_unwind_memo {
    uint32_t n;                 /* frames held: index n - 1 innermost */
    uint32_t end;               /* how that walk ended (walk.c) */
    uint64_t gen;               /* bumped by every walk that changes what it holds */
    uint32_t shared;            /* the last such walk's outer frames that were already
                                   held, at the same places from the outer end */
    uint32_t same;              /* the last such walk's frames were all the walk's
                                   before it (walk.c) */
    uintptr_t lo, hi;           /* the stack bounds it was walked with */
    mtp_uframe_t next;          /* the state after frame 0's step, when it was read */
    uint64_t walks, joins;      /* walks made with the memo, and of them joined to it */
    uintptr_t pc[MTP_MAX_DEPTH], sp[MTP_MAX_DEPTH], bp[MTP_MAX_DEPTH], slot[MTP_MAX_DEPTH];
    mtp_uframe_t scratch[MTP_MAX_DEPTH];   /* the walk in progress, innermost first */
} mtp_unwind_memo_t;

typedef struct mtp_thread {
    /* producer side: written only by the owning thread */
    _Alignas(64) _Atomic uint64_t head;  /* release: next slot to fill */
    uint64_t cached_tail;                /* per-thread copy of tail */
    uint64_t cold_at;                    /* per-thread: head value that next takes the ring's cold path */
    uint64_t filled;                     /* per-thread: slots for head values below this are filled in advance... */
    uint64_t fill_end;                   /* per-thread: ...up to here, one lap (record/ring.c) */
    uint64_t nudged;                     /* per-thread: tail + 1 when this ring last woke the writer */
    uintptr_t stack_lo, stack_hi;        /* per-thread: bounds for frame-pointer walks */
    int bounds_pending;                  /* per-thread: bounds still to read (thread.c) */
    uint32_t fresh;                      /* per-thread: native stacks still to take without
                                            the caches and memos (a fork child's first
                                            MTP_FRESH_STACKS: set by thread.c, read by
                                            unwind/unwind.c, counted down by
                                            record/stacktab.c) */
    void *hook_fp;                       /* per-thread: the recording hook's frame, NULL when
                                            none; set only around the hook's record, its
                                            guard held (hook/hooks.c), read by unwind/unwind.c */
    /* consumer side: written only by the writer */
    _Alignas(64) _Atomic uint64_t tail;  /* release: next slot to read */
    _Atomic uint32_t waiting;            /* set by the producer while it sleeps on tail's
                                            low half, its ring full (record/ring.c) */
    int remap_found;                     /* writer-only: this ring's last REMAP_OLD found a mapping */
    /* registry: next is immutable once published; state/tid change hands with CAS */
    _Alignas(64) struct mtp_thread *next;
    _Atomic int state;                   /* enum mtp_thread_state */
    _Atomic pid_t tid;                   /* kernel thread id of the owner */
    _Atomic int wiped;                   /* MADV_WIPEONFORK asked for the caches and memos:
                                            by the first fork's prepare handler (thread.c) */
    _Alignas(64) mtp_event_t slots[MTP_RING_SLOTS];
    /* From here to the block's end, the owner's caches and memos
     * (`MTP_THREAD_WIPED`): per-thread, and what a fork child finds there is
     * zero (MADV_WIPEONFORK, thread.c), the state of a new block, so that
     * the parent's writes to them after a fork are not copy-on-write faults.
     * The caches are filled when the block is made (they are used at
     * random); the memos after them only where a stack reaches. */
    _Alignas(4096) mtp_scache_ent_t scache[MTP_SCACHE_SLOTS];
    mtp_rule_ent_t rcache[MTP_RCACHE_SLOTS];
    _Alignas(64) mtp_unwind_memo_t umemo;
    /* per-thread: the stack hash's lanes after the outer p words of the
     * stack last interned from a memo's walk, that memo then at generation
     * hgen: umemo's or python/'s (record/stacktab.c) */
    uint64_t hgen;
    uint64_t hlane[MTP_MAX_DEPTH + 1][2];
    /* per-thread: the stack id interned last from a memo's walk, that memo
     * then at generation wgen: umemo's or python/'s (record/stacktab.c:
     * mtp_stack_intern_from) */
    uint32_t wid;
    uint64_t wgen;
    /* per-thread: python/pystack.c's memo of the thread's previous Python
     * walk, its own layout (it compares every word it reuses with the live
     * frames, so it needs no reset when the block changes hands) */
    _Alignas(64) unsigned char pymemo[MTP_PYMEMO_BYTES];
} mtp_thread_t;
#define MTP_THREAD_WIPED offsetof(mtp_thread_t, scache)   /* wiped in a fork child from here */

mtp_thread_t *mtp_thread_acquire(void);          /* cold: a block for the calling thread */
void mtp_thread_bounds_retry(mtp_thread_t *t);   /* cold: bounds_pending set (thread.c) */
mtp_thread_t *mtp_thread_list(void);              /* registry head (acquire) */
unsigned mtp_thread_generation(void);             /* bumps when a block is added or reused */
unsigned mtp_thread_exits(void);                  /* bumps when a thread with a block begins to exit */
void mtp_thread_reclaim_dead(void);               /* writer: free the blocks of exited threads */
void mtp_thread_atfork_prepare(void);             /* fork: every block's caches wiped in the child */
void mtp_thread_atfork_child(mtp_thread_t *self); /* fork child: self gets the new tid */

#endif /* MTP_BASE_THREAD_H */
