/*
 * The leak scan: classifies every live block as memcheck does, on the
 * process itself, while its other threads are stopped.
 *
 * Threads: runs on the writer thread, writer lock held. Every other thread
 * is stopped (stopworld.c: by ptrace from a helper process, else by a
 * signal) with its registers, stack pointer and thread pointer copied, or,
 * when the only other thread is the one waiting for this scan (an exit
 * snapshot's requester: it blocked every signal and copied its own
 * registers before it began to wait, writer/writer.c), none is. While
 * threads are stopped nothing here may allocate (a stopped thread can hold
 * an arena lock): every array is mmap'd and /proc is read with read(2).
 *
 * Ordering: a free is pushed to its ring before the memory is released, so
 * once every thread is stopped and every published event is applied, the
 * live table holds no block whose memory was given back. A thread stopped
 * between taking an event number and pushing it (realloc holds one across
 * the real call) leaves a gap: the threads are released and stopped again
 * until there is none (STOP_TRIES times at most; after that the scan goes
 * on and is marked partial). A thread that does not stop in about a second
 * (it blocks the signal, or sleeps where neither a signal nor ptrace
 * reaches it) keeps running: its stack is then read whole, and all memory
 * through process_vm_readv, so that a block it frees meanwhile cannot fault
 * the scan.
 *
 * Classification (memcheck's mc_leakcheck.c): the roots (the modules'
 * written data pages, imageroots.c; stacks, registers, TLS) are scanned
 * word by word; a word equal to a block's start makes it REACHABLE, a
 * word inside it makes it POSSIBLE (unless already more). A block reached is scanned in
 * turn: from a REACHABLE block a start pointer gives REACHABLE, anything
 * else POSSIBLE. Interior pointers from roots and REACHABLE blocks are
 * deferred until the REACHABLE set is complete, so that a block is not
 * scanned as POSSIBLE and again when upgraded. Roots in
 * the C library's and the loader's own data are scanned last: blocks first
 * reached from them are LIBC, and so are the deferred blocks only they and
 * the program's blocks (no root of the program's) point into
 * (mark_deferred). What is left is lost: in address order, each
 * block still unreached leads a group and marks everything it reaches that
 * is unreached INDIRECT (an earlier leader included); the leaders are
 * DEFINITE. The Python pass (pyreach.c) reuses the roots and the lookup.
 *
 * The mmap domain's blocks (the program's own mappings) are not classified:
 * they are written REACHABLE, take no part in the lookup (size 0 here: a
 * mapping may hold the blocks of an allocator that maps its memory through
 * mmap, which must still be found), and are not roots (a mapping holding an
 * allocator's blocks would make every one of them reachable).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/util.h"
#include "leak/leakscan_int.h"
#include "leak/stopworld.h"

#define STOP_TRIES 20
#define SETTLE_PAUSE_MS 1      /* threads released before stopping them again */
#define MAPS_ROOM 4096         /* /proc/self/maps is read with at least this much room */
#define TLS_BELOW_DEFAULT 4096 /* static TLS below the thread pointer when glibc does not say */
#define RED_ZONE 128

/* written once by mtp_leakscan_init */
static size_t tls_below, tls_above;      /* static TLS around the thread pointer */
static uintptr_t self_base;              /* libmemtrail.so's load address */
static const struct r_debug *r_debug;    /* the loader's list of loaded objects */

void mtp_leakscan_init(void)
{
    void (*info)(size_t *, size_t *) =
        (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
    const uint32_t *pthread_size = dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread");
    size_t size = 0, align = 0;
    if (info)
        info(&size, &align);
    tls_above = pthread_size ? *pthread_size : 2368;
    tls_below = size > tls_above ? size - tls_above : TLS_BELOW_DEFAULT;
    r_debug = dlsym(RTLD_DEFAULT, "_r_debug");
    Dl_info dl;
    if (dladdr((void *)mtp_leakscan_init, &dl))
        self_base = (uintptr_t)dl.dli_fbase;
    mtp_stopworld_init(mtp_cfg.signo);
}

/* ---- /proc/self/maps ---- */
static int hexval(const char **p, uint64_t *out)
{
    const char *end = mtp_hex(*p, NULL, out);
    int any = end != *p;
    *p = end;
    return any ? 0 : -1;
}

static int read_maps(mtp_scan_t *sc)
{
    size_t len = 0;
    int fd = mtp_seams.proc_open(MTP_PROC_MAPS);
    if (fd < 0)
        return -errno;
    for (;;) {
        /* The pages read into are the ones filled: a short process's map
         * text is a page or two of the first mapping. */
        if (mtp_mm_grow((void **)&sc->maps_text, &sc->maps_text_cap, len + MAPS_ROOM + 1) < 0) {
            close(fd);
            return -ENOMEM;
        }
        ssize_t k = read(fd, sc->maps_text + len, sc->maps_text_cap - len - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    sc->maps_text[len] = 0;
    for (char *line = sc->maps_text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        const char *p = line;
        mtp_map_t m = {0};
        if (hexval(&p, &m.start) == 0 && *p++ == '-' && hexval(&p, &m.end) == 0 && *p++ == ' ') {
            m.readable = p[0] == 'r';
            m.writable = p[1] == 'w';
            p += 5;
            hexval(&p, &m.offset);
            for (int f = 0; f < 2 && *p; f++) {   /* dev, inode: skip */
                while (*p == ' ')
                    p++;
                while (*p && *p != ' ')
                    p++;
            }
            while (*p == ' ')
                p++;
            m.path = p;
            if (mtp_mm_grow((void **)&sc->maps, &sc->maps_cap, (sc->nmaps + 1) * sizeof(*sc->maps)) < 0)
                return -ENOMEM;
            sc->maps[sc->nmaps++] = m;
        }
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* ---- roots ---- */
int mtp_scan_add_root(mtp_scan_t *sc, uintptr_t lo, uintptr_t hi, unsigned flags)
{
    if (hi <= lo)
        return 0;
    if (mtp_mm_grow((void **)&sc->roots, &sc->roots_cap, (sc->nroots + 1) * sizeof(*sc->roots)) < 0)
        return -ENOMEM;
    sc->roots[sc->nroots++] = (mtp_root_t){lo, hi, flags};
    return 0;
}

/* The end of the stack that sp is on: its mapping's, or its block's when
 * the stack was allocated from the heap. */
static uintptr_t stack_end(const mtp_scan_t *sc, uintptr_t sp)
{
    mtp_span_t b;
    if (mtp_scan_find(sc, sp, &b) >= 0)
        return b.address + b.size;
    const mtp_map_t *m = mtp_scan_map_of(sc, sp);
    return m ? m->end : sp;
}

/* glibc keeps the stacks of exited threads for reuse, each with its thread
 * descriptor at the top and, in it, the thread's dynamic TLS vector (DTV),
 * a block allocated by pthread_create. Nothing else points at the DTV; the
 * stack cache is reached only from the loader's data, through pointers into
 * those stacks, which are not blocks. valgrind frees the cache at exit
 * (__libc_freeres), so it never reports them; here the DTV word of every
 * thread descriptor found in a thread stack is a root of the C library's:
 * an exited thread's DTV is the C library's own, not lost (a live thread's
 * is reached from its TLS first). A thread stack is an anonymous writable
 * mapping right above its guard page; its descriptor is as far below the
 * mapping's end as the writer thread's own (tcb_delta, measured once), and
 * says so: its first and third words (tcbhead_t's tcb and self) are its
 * own address. They are read with process_vm_readv: the candidate may be
 * in no memory a sanitizer knows (ThreadSanitizer's own mappings look like
 * thread stacks). Writer-only. */
static uintptr_t tcb_delta;   /* 0: not measured yet, UINTPTR_MAX: not measurable */

static int scan_read(mtp_scan_t *sc, uintptr_t addr, void *buf, size_t n);

/* The loader's descriptors of the loaded objects (struct link_map), in its
 * list (_r_debug.r_map, l_next). Those of the objects loaded at start-up
 * are in memory the loader took for itself before malloc existed (none of
 * the scan's roots); those of the objects dlopen'ed later are heap blocks,
 * which only their neighbours' l_next and l_prev point to by their start:
 * with the start-up ones unread, they were reached through interior
 * pointers only (the loader's scope arrays) and what they hold (names,
 * scopes, the module's dependencies) was possibly lost, in some runs of
 * any Python program that imports an extension module. Their addresses
 * are a root of the loader's (MTP_ROOT_LIBC), as valgrind reads the
 * loader's own memory. Read through scan_read: a stopped thread may be in
 * dlopen, changing the list. */
#define LINK_MAPS_MAX 65536
static int link_map_roots(mtp_scan_t *sc)
{
    uintptr_t l = 0;
    size_t n = 0;
    if (!r_debug || !scan_read(sc, (uintptr_t)&r_debug->r_map, &l, sizeof l))
        return 0;
    for (; l && n < LINK_MAPS_MAX; n++) {
        if (mtp_mm_grow((void **)&sc->lmaps, &sc->lmaps_cap, (n + 1) * sizeof(*sc->lmaps)) < 0)
            return -ENOMEM;
        sc->lmaps[n] = l;
        if (!scan_read(sc, l + offsetof(struct link_map, l_next), &l, sizeof l))
            l = 0;
    }
    return mtp_scan_add_root(sc, (uintptr_t)sc->lmaps, (uintptr_t)(sc->lmaps + n),
                             MTP_ROOT_COPY | MTP_ROOT_LIBC);
}

/* The scan runs on the thread it holds (an exit snapshot taken on the
 * exiting thread, writer/writer.c sync_inline): a thread of the program's,
 * maybe the main one, whose descriptor is not at the top of a stack mapping
 * of its own. The delta is then read off a candidate instead: the highest
 * descriptor-aligned word in its top TCB_SEARCH bytes that names itself,
 * as a descriptor's first and third words do. 0: none found. */
#define TCB_SEARCH 16384
#define TCB_ALIGN 64                 /* x86-64 glibc aligns the descriptor so */
static MTP_LARGE uintptr_t tcb_window[TCB_SEARCH / sizeof(uintptr_t)];   /* writer-only */

static uintptr_t search_tcb_delta(const mtp_map_t *m)
{
    size_t n = m->end - m->start < TCB_SEARCH ? m->end - m->start : TCB_SEARCH;
    uintptr_t from = m->end - n;
    struct iovec local = {tcb_window, n}, remote = {(void *)from, n};
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)n)
        return 0;
    size_t words = n / sizeof(uintptr_t);
    for (size_t i = words - 3 + 1; i-- > 0;) {
        uintptr_t p = from + i * sizeof(uintptr_t);
        if (p % TCB_ALIGN == 0 && tcb_window[i] == p && tcb_window[i + 2] == p)
            return m->end - p;
    }
    return 0;
}

/* A thread stack mapping: anonymous, readable and writable, right above its
 * guard page, large enough to hold a descriptor `delta` below its end. */
static int thread_stack_like(const mtp_map_t *m, const mtp_map_t *below, uintptr_t delta)
{
    return !m->path[0] && m->readable && m->writable && below->end == m->start &&
           !below->readable && !below->writable && m->end - m->start >= delta + 24;
}

static int cached_stack_roots(mtp_scan_t *sc)
{
    int on_held = sc->held && sc->held->tid == (pid_t)syscall(SYS_gettid);
    if (!tcb_delta && on_held) {
        for (size_t i = 1; i < sc->nmaps && !tcb_delta; i++)
            if (thread_stack_like(&sc->maps[i], &sc->maps[i - 1], 0))
                tcb_delta = search_tcb_delta(&sc->maps[i]);
        if (!tcb_delta)
            return 0;   /* no thread's stack is cached: measured next time */
    }
    if (!tcb_delta) {
        uintptr_t tp = (uintptr_t)pthread_self();
        const mtp_map_t *m = mtp_scan_map_of(sc, tp);
        tcb_delta = m && !m->path[0] && m->end > tp ? m->end - tp : UINTPTR_MAX;
    }
    if (tcb_delta == UINTPTR_MAX)
        return 0;
    for (size_t i = 1; i < sc->nmaps; i++) {
        const mtp_map_t *m = &sc->maps[i], *below = &sc->maps[i - 1];
        if (!thread_stack_like(m, below, tcb_delta))
            continue;
        uintptr_t tcb = (uintptr_t)(m->end - tcb_delta), w[3];
        struct iovec local = {w, sizeof(w)}, remote = {(void *)tcb, sizeof(w)};
        if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)sizeof(w) &&
            w[0] == tcb && w[2] == tcb) {
            int r = mtp_scan_add_root(sc, tcb + sizeof(uintptr_t),
                                      tcb + 2 * sizeof(uintptr_t), MTP_ROOT_LIBC);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* A thread that did not stop: its whole stack, from the ring's bounds. */
static int missed_thread_roots(mtp_scan_t *sc, pid_t tid)
{
    for (mtp_thread_t *t = mtp_thread_list(); t; t = t->next)
        if (atomic_load(&t->tid) == tid && t->stack_hi > t->stack_lo)
            return mtp_scan_add_root(sc, t->stack_lo, t->stack_hi, 0);
    return 0;
}

static int collect_roots(mtp_scan_t *sc, const mtp_pygraph_t *graph, int stopped)
{
    int r = 0, pagemap = mtp_seams.proc_open(MTP_PROC_PAGEMAP);   /* -1: every page read */
    for (size_t i = 0; i < sc->nmaps && r == 0; i++) {
        const mtp_map_t *m = &sc->maps[i];
        if (m->offset == 0 && m->readable && m->path[0] == '/')
            r = mtp_scan_module_roots(sc, m, self_base, pagemap);
    }
    if (pagemap >= 0)
        close(pagemap);
    if (r == 0)
        r = cached_stack_roots(sc);
    if (r == 0 && sc->held) {
        /* Its stack from where it was captured: below it are the frames of
         * memtrail's wait, which run on, and no red zone is in use. */
        const mtp_stopped_t *h = sc->held;
        unsigned own = graph && h->tid == graph->capturer ? MTP_ROOT_CAPTURER : 0;
        r = mtp_scan_add_root(sc, (uintptr_t)h->regs, (uintptr_t)(h->regs + h->nregs),
                              MTP_ROOT_COPY | own);
        if (!r)
            r = mtp_scan_add_root(sc, h->sp, stack_end(sc, h->sp), own);
        if (!r && h->tp)
            r = mtp_scan_add_root(sc, h->tp - tls_below, h->tp + tls_above, 0);
        sc->threads++;
    }
    if (r == 0)
        r = link_map_roots(sc);
    uint32_t nlb = mtp_loader_block_count();
    for (uint32_t i = 0; i < nlb && r == 0; i++) {   /* libdw's link maps (base/state.h) */
        uintptr_t addr;
        size_t size = mtp_loader_block(i, &addr);
        if (size)
            r = mtp_scan_add_root(sc, addr, addr + size, MTP_ROOT_LIBC);
    }
    uint32_t n = stopped ? mtp_stopworld_count() : 0;
    for (uint32_t i = 0; i < n && r == 0; i++) {
        mtp_stopped_t s;
        int st = mtp_stopworld_thread(i, &s);
        if (st == MTP_STOP_HELD) {
            unsigned own = graph && s.tid == graph->capturer ? MTP_ROOT_CAPTURER : 0;
            r = mtp_scan_add_root(sc, (uintptr_t)s.regs, (uintptr_t)(s.regs + s.nregs),
                                  MTP_ROOT_COPY | own);
            if (!r)
                r = mtp_scan_add_root(sc, s.sp - RED_ZONE, stack_end(sc, s.sp), own);
            if (!r && s.tp)
                r = mtp_scan_add_root(sc, s.tp - tls_below, s.tp + tls_above, 0);
            sc->threads++;
        } else if (st == MTP_STOP_MISSED) {
            r = missed_thread_roots(sc, s.tid);
        }
    }
    for (uint32_t i = 0; graph && i < graph->nroots && r == 0; i++)
        r = mtp_scan_add_root(sc, graph->roots[2 * i], graph->roots[2 * i + 1], 0);
    /* The code objects the registry holds until it can set their id
     * (python/py.h): what only memtrail keeps alive is held, not lost. */
    size_t npinned = mtp_py_pinned(NULL, 0);
    if (r == 0 && npinned &&
        mtp_mm_grow((void **)&sc->pinned, &sc->pinned_cap, npinned * sizeof(*sc->pinned)) == 0) {
        size_t got = mtp_py_pinned(sc->pinned, npinned);
        npinned = got < npinned ? got : npinned;
        r = mtp_scan_add_root(sc, (uintptr_t)sc->pinned, (uintptr_t)(sc->pinned + npinned),
                              MTP_ROOT_COPY);
    }
    /* memtrail's own Python blocks (python/pyown.c): untraced, and CPython's
     * free lists hand them to the program (a dict whose keys table is a
     * traced block), or chain dead objects through them. */
    size_t nown = mtp_py_own_blocks(NULL, 0);
    if (r == 0 && nown &&
        mtp_mm_grow((void **)&sc->own, &sc->own_cap, nown * 2 * sizeof(*sc->own)) == 0) {
        size_t got = mtp_py_own_blocks(sc->own, nown);
        nown = got < nown ? got : nown;
        for (size_t k = 0; k < nown && r == 0; k++)
            if (mtp_scan_lookup(sc, sc->own[2 * k]) < 0)   /* (torn, or traced since) */
                r = mtp_scan_add_root(sc, sc->own[2 * k], sc->own[2 * k] + sc->own[2 * k + 1],
                                      MTP_ROOT_PYLOOSE);
    }
    /* A live object the scan cannot reach as a block (its memory predates
     * tracing, or, when sampling, its block was not sampled: most objects
     * then) still holds what it references: a dict made from the free list
     * holds its keys table. Its body is read as a root, never past the end
     * of its mapping (a size the graph computed from a type whose ob_size
     * is not a length can be anything). Objects in a module's image are in
     * its data, a root already. */
    for (uint32_t i = 0; graph && i < graph->nnodes && r == 0; i++) {
        const mtp_pynode_t *obj = &graph->nodes[i];
        const mtp_map_t *m;
        if (mtp_scan_lookup(sc, obj->address) >= 0 || !(m = mtp_scan_map_of(sc, obj->address)) ||
            m->path[0] == '/')
            continue;
        uint64_t size = mtp_pynode_size(graph, i);
        uintptr_t hi = size < m->end - obj->address ? obj->address + size : m->end;
        r = mtp_scan_add_root(sc, obj->address, hi, MTP_ROOT_PYLOOSE);
    }
    return r;
}

/* ---- reading memory ---- */
/* Calls fn on every aligned word of [lo, hi) that is readable. With
 * sc->safe, memory is copied through process_vm_readv first. */
MTP_NO_SANITIZE_SCAN
void mtp_scan_words(mtp_scan_t *sc, uintptr_t lo, uintptr_t hi, unsigned flags,
                    void (*fn)(mtp_scan_t *, uint64_t, void *), void *arg)
{
    lo = (lo + 7) & ~(uintptr_t)7;
    hi &= ~(uintptr_t)7;
    if (flags & MTP_ROOT_COPY) {   /* our own copy (registers) */
        for (uintptr_t a = lo; a < hi; a += 8)
            fn(sc, *(const uint64_t *)a, arg);
        return;
    }
    while (lo < hi) {
        const mtp_map_t *m = mtp_scan_map_of(sc, lo);
        if (!m) {   /* skip to the next mapping */
            size_t i = 0;
            while (i < sc->nmaps && sc->maps[i].end <= lo)
                i++;
            while (i < sc->nmaps && !sc->maps[i].readable)
                i++;
            if (i == sc->nmaps || sc->maps[i].start >= hi)
                return;
            lo = sc->maps[i].start;
            continue;
        }
        uintptr_t end = m->end < hi ? m->end : hi;
        sc->scanned += end - lo;
        if (!sc->safe) {
            for (const uint64_t *w = (const uint64_t *)lo; (uintptr_t)w < end; w++)
                fn(sc, *w, arg);
        } else {
            for (uintptr_t a = lo; a < end;) {
                size_t k = end - a < sizeof(sc->bounce) ? end - a : sizeof(sc->bounce);
                struct iovec local = {sc->bounce, k}, remote = {(void *)a, k};
                ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
                if (got <= 0)
                    break;
                for (size_t j = 0; j + 8 <= (size_t)got; j += 8)
                    fn(sc, *(const uint64_t *)(sc->bounce + j), arg);
                a += (size_t)got;
            }
        }
        lo = end;
    }
}

/* ---- marking ---- */
enum { ST_UNREACHED = 0, ST_INDIRECT = 1, ST_POSSIBLE = 2, ST_REACHABLE = 3 };
#define ST_MASK 3
#define ST_LIBC 4          /* first reached from the C library's roots */
#define ST_UNREADABLE MTP_ST_UNREADABLE   /* its memory is not mapped */
#define ST_PY_CHECKED 16   /* whether it holds a collectable Python object is known: */
#define ST_PY_PLAIN 32     /* one whose collector header starts the block */
#define ST_PY_PRE 64       /* one with the 3.12+ pre-header before that header */
#define ST_DEFERRED 128    /* in sc->deferred */
_Static_assert((ST_PY_CHECKED | ST_PY_PLAIN | ST_PY_PRE | ST_DEFERRED) == MTP_ST_SCRATCH,
               "the Python pass reuses exactly these bits");

MTP_NO_SANITIZE_SCAN
size_t mtp_scan_peek(mtp_scan_t *sc, size_t i, mtp_span_t b, void *buf, size_t n)
{
    if (n > MTP_SCAN_PEEK)
        n = MTP_SCAN_PEEK;
    if (n > b.size)
        n = (size_t)b.size;
    /* The whole block's readability was found once (ST_UNREADABLE). */
    if (!n || (sc->state ? (sc->state[i] & ST_UNREADABLE) != 0
                         : !mtp_scan_readable(sc, (uintptr_t)b.address, (uintptr_t)b.address + n)))
        return 0;
    if (!sc->safe) {
        const unsigned char *src = (const unsigned char *)(uintptr_t)b.address;
        unsigned char *dst = buf;
        for (size_t k = 0; k < n; k++)   /* not memcpy: sanitizers skip this function */
            dst[k] = src[k];
        return n;
    }
    struct iovec local = {buf, n}, remote = {(void *)(uintptr_t)b.address, n};
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    return got > 0 ? (size_t)got : 0;
}

/* n bytes at addr, readable by the maps, copied into buf (directly, or
 * through process_vm_readv when a thread did not stop). */
MTP_NO_SANITIZE_SCAN
static int scan_read(mtp_scan_t *sc, uintptr_t addr, void *buf, size_t n)
{
    if (!mtp_scan_readable(sc, addr, addr + n))
        return 0;
    if (!sc->safe) {
        const unsigned char *src = (const unsigned char *)addr;
        unsigned char *dst = buf;
        for (size_t k = 0; k < n; k++)   /* not memcpy: sanitizers skip this function */
            dst[k] = src[k];
        return 1;
    }
    struct iovec local = {buf, n}, remote = {(void *)addr, n};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

/* A type object's flags (0 when it cannot be read). */
static uint64_t type_flags(mtp_scan_t *sc, uint64_t type)
{
    uint64_t flags;
    const mtp_pyabi_t *A = sc->py->abi;
    if (!type || (type & 7) ||
        !scan_read(sc, (uintptr_t)type + (uintptr_t)A->tp_flags, &flags, sizeof flags))
        return 0;
    return flags;
}

int mtp_scan_gctype(mtp_scan_t *sc, uint64_t type)
{
    if (mtp_scan_is_gctype(sc->py, type))
        return 1;
    if (!type || (type & 7))
        return 0;
    uint64_t *slot = &sc->gctype_cache[(type >> 3) * 0x9e3779b97f4a7c15ull >> 56];
    if ((*slot & ~(uint64_t)1) == type)
        return (int)(*slot & 1);
    const mtp_pyabi_t *A = sc->py->abi;
    uint64_t meta = 0;
    int gc = (type_flags(sc, type) & MTP_PY_TPFLAGS_HAVE_GC) &&
             scan_read(sc, (uintptr_t)type + (uintptr_t)A->ob_type, &meta, sizeof meta) &&
             (type_flags(sc, meta) & MTP_PY_TPFLAGS_TYPE_SUBCLASS);
    *slot = type | (uint64_t)gc;
    return gc;
}

/* A CPython object of a collectable type does not start its block: the
 * collector's header comes first (and, 3.11+, for types with a managed dict
 * or, 3.12+, weak references, the pre-header before it), and every reference to
 * the object, or from the collector's lists to its header, points inside
 * the block. For such a block those addresses count as its start, as
 * memcheck's heuristics do for C++ layouts; otherwise every Python
 * container would be "possibly lost". The block holds such an object when
 * the word where its type would be, in one layout or the other, names a
 * collectable type (mtp_scan_gctype; checked once per block). The
 * pre-header is _PyType_PreHeaderSize's, 3.11's managed-dict words
 * included (block_preheader_size): there every instance of a class with a
 * managed dict starts 32 bytes into its block. */
MTP_NO_SANITIZE_SCAN
static int py_start(mtp_scan_t *sc, size_t j, uint64_t w, mtp_span_t b)
{
    const mtp_pygraph_t *g = sc->py;
    const mtp_pyabi_t *A = g->abi;
    uint64_t off = w - b.address, pre = (uint64_t)A->block_preheader_size,
             gc = (uint64_t)A->gc_head_size;
    if (off != gc && (!pre || (off != pre && off != pre + gc)))
        return 0;
    uint8_t *st = &sc->state[j];
    if (!(*st & ST_PY_CHECKED)) {
        *st |= ST_PY_CHECKED;
        uint64_t copy[MTP_SCAN_PEEK / 8];
        size_t n = mtp_scan_peek(sc, j, b, copy, sizeof copy);
        uintptr_t head = (uintptr_t)copy;   /* the block's first bytes */
        if (n >= mtp_py_gc_min_block(A) && mtp_scan_gctype(sc, mtp_py_gc_obj_type(A, head)))
            *st |= ST_PY_PLAIN;
        else if (pre && n >= pre + mtp_py_gc_min_block(A) &&
                 mtp_scan_gctype(sc, mtp_py_gc_obj_type(A, head + pre)))
            *st |= ST_PY_PRE;
    }
    if (*st & ST_PY_PLAIN)
        return off == gc;
    return (*st & ST_PY_PRE) && (off == pre || off == pre + gc);
}

/* 3.11 and 3.12 keep a split dict's values (an instance's attributes)
 * after a prefix of (size + 2) bytes rounded up to a word, whose last byte
 * is that prefix's size; the dict and the instance point past the prefix
 * (3.12's instance one byte before, a tag: dict_values_tag). Such a
 * pointer counts as the block's start when the block is exactly that
 * layout: the prefix's byte says its size, and the size of the block is
 * the prefix and a number of values that makes that prefix. */
MTP_NO_SANITIZE_SCAN
static int values_start(mtp_scan_t *sc, size_t j, uint64_t w, mtp_span_t b)
{
    const mtp_pyabi_t *A = sc->py->abi;
    if (A->dict_values_tag == MTP_PY_NONE)
        return 0;
    uint64_t off = w - b.address;
    uint64_t prefix = (off + (uint64_t)A->dict_values_tag) & ~(uint64_t)7;
    if (prefix != off && prefix != off + (uint64_t)A->dict_values_tag)
        return 0;
    if (prefix < 8 || prefix > MTP_SCAN_PEEK || b.size <= prefix || (b.size - prefix) % 8)
        return 0;
    uint64_t nvalues = (b.size - prefix) / 8;
    if (((nvalues + 2 + 7) & ~(uint64_t)7) != prefix)
        return 0;
    unsigned char copy[MTP_SCAN_PEEK];
    return mtp_scan_peek(sc, j, b, copy, (size_t)prefix) == prefix && copy[prefix - 1] == prefix;
}

int mtp_scan_push(mtp_scan_t *sc, uint32_t i)
{
    if (sc->nstack * sizeof(uint32_t) >= sc->stack_cap &&
        mtp_mm_grow((void **)&sc->stack, &sc->stack_cap, (sc->nstack + 1) * sizeof(uint32_t)) < 0) {
        sc->oom = 1;
        return -ENOMEM;
    }
    sc->stack[sc->nstack++] = i;
    return 0;
}

typedef struct mark_ctx {
    int prior_definite;    /* the memory scanned is a root or a REACHABLE block */
    uint8_t phase_flag;    /* ST_LIBC while the C library's roots are scanned */
    int root;              /* the memory scanned is a root */
} mark_ctx_t;

/* Where glibc's malloc puts the header of the chunk after block b: a block
 * of n bytes has a chunk of n + 8 rounded up to 16 (32 at least), starting
 * 16 bytes before it, and its last 8 bytes are the next chunk's size field.
 * malloc's own state in the C library's data (main_arena's top and bins)
 * points at that header when the next chunk is the heap's top or a free
 * chunk: 16 bytes before the end of a block of 24, inside it. Such a word is
 * malloc's, not a reference to the block (tests/programs/toplost.c:
 * valgrind, whose malloc is its own, calls the block lost). */
static inline uint64_t next_chunk_header(mtp_span_t b)
{
    uint64_t chunk = (b.size + 8 + 15) & ~(uint64_t)15;
    return b.address + (chunk < 32 ? 32 : chunk) - 16;
}

static inline __attribute__((always_inline)) void mark_word(mtp_scan_t *sc, uint64_t w,
                                                            void *arg)
{
    const mark_ctx_t *c = arg;
    mtp_span_t b;
    ssize_t j = mtp_scan_find(sc, w, &b);
    if (j < 0)
        return;
    uint8_t *st = &sc->state[j];
    int cur = *st & ST_MASK;
    if (cur == ST_REACHABLE)
        return;
    int start = w == b.address ||
                (sc->py && (py_start(sc, (size_t)j, w, b) || values_start(sc, (size_t)j, w, b)));
    if (start && c->prior_definite) {
        if (cur == ST_UNREACHED)
            *st |= c->phase_flag;
        *st = (uint8_t)((*st & ~(ST_MASK | ST_DEFERRED)) | ST_REACHABLE);
        mtp_scan_push(sc, (uint32_t)j);
    } else if (cur == ST_UNREACHED) {
        if (c->root && c->phase_flag && w == next_chunk_header(b))
            return;   /* the C library's data: malloc's pointer to the next chunk */
        /* From a root or a reachable block, an interior pointer waits until
         * the reachable set is complete (mark_deferred): a block first
         * marked possible and later reached by a start pointer would be
         * read twice, and with it all it reaches. */
        if (c->root && !c->phase_flag && sc->rootint)   /* (mark_deferred) */
            sc->rootint[j >> 3] |= (uint8_t)(1u << (j & 7));
        if (c->prior_definite && (*st & ST_DEFERRED)) {
            *st |= c->phase_flag;   /* the C library's data points into it too */
            return;
        }
        if (c->prior_definite && mtp_mm_grow((void **)&sc->deferred, &sc->deferred_cap,
                                             (sc->ndeferred + 1) * sizeof(*sc->deferred)) == 0) {
            *st |= ST_DEFERRED | c->phase_flag;
            sc->deferred[sc->ndeferred++] = (uint32_t)j;
            return;
        }
        *st = (uint8_t)((*st & ~ST_MASK) | ST_POSSIBLE | c->phase_flag);
        mtp_scan_push(sc, (uint32_t)j);
    }
}

static void scan_block(mtp_scan_t *sc, uint32_t i, void (*fn)(mtp_scan_t *, uint64_t, void *),
                       void *arg)
{
    if (sc->state[i] & ST_UNREADABLE)
        return;
    const mtp_span_t b = mtp_scan_block(sc, i);
    sc->heap_bytes += b.size;
    mtp_scan_words(sc, b.address, b.address + b.size, 0, fn, arg);
}

/* The marking's reads of blocks, most of the scan's time (25 M words for
 * a 4 M-block Python heap): a block's memory was found mapped once
 * (mark_unreadable), so with every thread stopped its words are read with
 * no search of the mappings and no call through a pointer per word. */
MTP_NO_SANITIZE_SCAN
static void mark_drain(mtp_scan_t *sc, uint8_t phase_flag)
{
    while (sc->nstack) {
        uint32_t i = sc->stack[--sc->nstack];
        mark_ctx_t c = {(sc->state[i] & ST_MASK) == ST_REACHABLE, phase_flag, 0};
        if (sc->safe) {
            scan_block(sc, i, mark_word, &c);
            continue;
        }
        if (sc->state[i] & ST_UNREADABLE)
            continue;
        const mtp_span_t b = mtp_scan_block(sc, i);
        const uint64_t *w = words_from(b.address), *end = words_to(mtp_scan_read_end(sc, b));
        if (sc->nstack)   /* the next block's first line, while this one is read */
            __builtin_prefetch((const void *)(uintptr_t)mtp_scan_addr(sc, sc->stack[sc->nstack - 1]));
        if (sc->nstack > 1)   /* and the entry of the one after */
            mtp_scan_prefetch_entry(sc, sc->stack[sc->nstack - 2]);
        sc->heap_bytes += b.size;
        sc->scanned += w < end ? (uint64_t)(end - w) * 8 : 0;
        for (; w < end; w++)
            mark_word(sc, *w, &c);
    }
}

/* The blocks deferred while the reachable set grew (from every root, the
 * C library's included): those it did not take are possible, and so is
 * what they reach. Those an interior pointer from the C library's side
 * reached (ST_LIBC set while deferred), and none from the program's roots
 * (sc->rootint), are the C library's own, possibly reached: its data
 * points into its own structures (the loader's _dl_find_object segments,
 * aligned inside their blocks), and valgrind, which frees them with
 * __libc_freeres, never reports them; a word of a program's block that
 * happens to point into one too (a string's bytes) made it "possibly
 * lost" in some runs. One the program's roots point into (the thread
 * control block's pointer 16 bytes into a running thread's DTV) is the
 * program's, possibly lost, as valgrind says. The program's are made
 * possible first, so that what they reach is the program's. */
static void mark_deferred(mtp_scan_t *sc)
{
    for (int libc = 0; libc < 2; libc++) {
        uint8_t phase_flag = libc ? ST_LIBC : 0;
        for (size_t k = 0; k < sc->ndeferred; k++) {
            uint32_t i = sc->deferred[k];
            uint8_t *st = &sc->state[i];
            if ((*st & ST_MASK) != ST_UNREACHED) {
                *st &= (uint8_t)~ST_DEFERRED;
                continue;
            }
            int rooted = sc->rootint && (sc->rootint[i >> 3] >> (i & 7) & 1);
            if (!(*st & ST_DEFERRED) || ((*st & ST_LIBC) && !rooted) != libc)
                continue;
            *st = (uint8_t)((*st & ~(ST_DEFERRED | ST_LIBC)) | ST_POSSIBLE | phase_flag);
            mtp_scan_push(sc, i);
            mark_drain(sc, phase_flag);
        }
    }
    sc->ndeferred = 0;
}

static void mark_from_roots(mtp_scan_t *sc, int libc)
{
    mark_ctx_t c = {1, libc ? ST_LIBC : 0, 1};
    for (size_t r = 0; r < sc->nroots; r++) {
        const mtp_root_t *rt = &sc->roots[r];
        if (!!(rt->flags & MTP_ROOT_LIBC) != libc)
            continue;
        sc->root_bytes += rt->hi - rt->lo;
        mtp_scan_words(sc, rt->lo, rt->hi, rt->flags, mark_word, &c);
        mark_drain(sc, c.phase_flag);
    }
}

typedef struct clique_ctx {
    uint32_t leader;
} clique_ctx_t;

static void clique_word(mtp_scan_t *sc, uint64_t w, void *arg)
{
    const clique_ctx_t *c = arg;
    ssize_t j = mtp_scan_lookup(sc, w);
    if (j < 0 || (uint32_t)j == c->leader || (sc->state[j] & ST_MASK) != ST_UNREACHED)
        return;
    sc->state[j] = (uint8_t)((sc->state[j] & ~ST_MASK) | ST_INDIRECT);
    mtp_scan_push(sc, (uint32_t)j);
}

static void mark_cliques(mtp_scan_t *sc)
{
    for (size_t i = 0; i < sc->nblocks; i++) {
        if ((sc->state[i] & ST_MASK) != ST_UNREACHED)
            continue;
        clique_ctx_t c = {(uint32_t)i};
        scan_block(sc, (uint32_t)i, clique_word, &c);
        while (sc->nstack) {
            uint32_t k = sc->stack[--sc->nstack];
            scan_block(sc, k, clique_word, &c);
        }
    }
}

static uint8_t final_kind(uint8_t st)
{
    if (st & ST_UNREADABLE)
        return MTSNAP_LEAK_UNSCANNED;
    switch (st & ST_MASK) {
    case ST_REACHABLE: return st & ST_LIBC ? MTSNAP_LEAK_LIBC : MTSNAP_LEAK_REACHABLE;
    case ST_POSSIBLE: return st & ST_LIBC ? MTSNAP_LEAK_LIBC : MTSNAP_LEAK_POSSIBLE;
    case ST_INDIRECT: return MTSNAP_LEAK_INDIRECT;
    default: return MTSNAP_LEAK_DEFINITE;
    }
}

/* ST_UNREADABLE on the blocks whose memory is not all mapped readable.
 * Blocks and mappings are both in address order: a block inside the
 * mapping the cursor is at takes no search (mtp_scan_readable's answer). */
static void mark_unreadable(mtp_scan_t *sc)
{
    size_t k = 0;
    for (size_t i = 0; i < sc->nblocks; i++) {
        const mtp_span_t b = mtp_scan_block(sc, i);
        while (k < sc->nmaps && sc->maps[k].end <= b.address)
            k++;
        if (k < sc->nmaps && sc->maps[k].start <= b.address && sc->maps[k].readable &&
            b.size <= sc->maps[k].end - b.address)
            continue;
        if (!mtp_scan_readable(sc, b.address, b.address + b.size))
            sc->state[i] = ST_UNREADABLE;
    }
}

static void scan_free(mtp_scan_t *sc)
{
    mtp_scan_pages_free(sc);
    mtp_unmap(sc->maps_text, sc->maps_text_cap);
    mtp_unmap(sc->maps, sc->maps_cap);
    mtp_unmap(sc->roots, sc->roots_cap);
    mtp_unmap(sc->pinned, sc->pinned_cap);
    mtp_unmap(sc->own, sc->own_cap);
    mtp_unmap(sc->lmaps, sc->lmaps_cap);
    mtp_unmap(sc->stack, sc->stack_cap);
    mtp_unmap(sc->deferred, sc->deferred_cap);
    mtp_unmap(sc->rootint, sc->rootint_cap);
    mtp_unmap(sc->state, sc->state_cap);
    mtp_unmap(sc->mapped, sc->mapped_cap);
}

/* Whether the process has two threads, the caller and `tid` (which waits
 * for the caller and can start no other), or only the caller, `tid` itself
 * (an exit snapshot taken on the exiting thread, writer/writer.c). */
static int held_alone(pid_t tid)
{
    long want = tid == (pid_t)syscall(SYS_gettid) ? 1 : 2;   /* 1: the scan runs on it */
    return tid > 0 && mtp_proc_threads() == want;
}

int mtp_leakscan_run(mtp_leakscan_t *ls, mtp_pygraph_t *graph, int (*settle)(void),
                     const mtp_block_source_t *live, const mtp_stopped_t *held)
{
    mtp_scan_t *sc = mmap(NULL, sizeof(*sc), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t sent = 0, missed = 0;
    int r = 0, tries = 0, stopped = 0;
    uint64_t t0;
    memset(ls, 0, sizeof(*ls));
    if (sc == MAP_FAILED)
        return -ENOMEM;
    if (graph && (r = mtp_pygraph_sort(graph)) < 0)
        goto out_unmapped;
    sc->held = held;
    if (held && (held->alone || held_alone(held->tid)) && settle()) {
        /* The one other thread holds itself (an exit snapshot's requester):
         * nothing to stop, no event in flight. */
        t0 = mtp_mono_ns();
    } else {
        if ((r = mtp_stopworld_prepare()) < 0)
            goto out_unmapped;
        mtp_stopworld_skip(held ? held->tid : 0);   /* it blocks the stop signal */
        settle();
        t0 = mtp_mono_ns();
        stopped = 1;
        for (;;) {
            missed = mtp_stopworld_stop(&sent);
            if (settle() || ++tries == STOP_TRIES)
                break;
            mtp_stopworld_release();   /* an event is in flight: let its thread push it */
            struct timespec pause = {0, SETTLE_PAUSE_MS * MTP_NS_PER_MS};
            nanosleep(&pause, NULL);
        }
    }
    sc->safe = missed > 0;
    sc->py = graph;
    mtp_scan_inert_init(sc);
    if ((r = mtp_scan_pages_build(sc, live)) < 0 || (r = read_maps(sc)) < 0)
        goto out;
    ls->nblocks = sc->nblocks;
    mtp_scan_index_build(sc);   /* on failure, slower lookups with the same answers */
    if (mtp_mm_grow((void **)&sc->state, &sc->state_cap, sc->nblocks + 1) < 0) {
        r = -ENOMEM;
        goto out;
    }
    if (mtp_mm_grow((void **)&sc->rootint, &sc->rootint_cap, sc->nblocks / 8 + 1) < 0)
        sc->rootint = NULL;   /* then the C library's claim wins (mark_deferred) */
    mark_unreadable(sc);
    for (size_t k = 0; k < sc->nmapped; k++)
        sc->state[sc->mapped[k]] = ST_REACHABLE;   /* not classified */
    if ((r = collect_roots(sc, graph, stopped)) < 0)
        goto out;
    mark_from_roots(sc, 0);
    mark_from_roots(sc, 1);
    mark_deferred(sc);
    mark_cliques(sc);
    /* Sampling: the Python pass would find what memory reaches through the
     * sampled blocks only, and its REACHED flags would make refcount leaks
     * of objects held from the others; the analyzer does not use them for
     * a sampled snapshot (docs/cycles.md), so they are not computed (the
     * graph says it was not scanned). */
    if (graph && !mtp_cfg.sample)
        mtp_pyreach(sc, graph);
    if (sc->oom) {
        r = -ENOMEM;
        goto out;
    }
    /* The kinds replace the states in place: the scan's arrays are still
     * mapped, so a second array would add to its peak. */
    for (size_t i = 0; i < sc->nblocks; i++)
        sc->state[i] = final_kind(sc->state[i]);
    ls->kind = sc->state;
    ls->kind_bytes = sc->state_cap;
    sc->state = NULL;
    ls->hdr = (mtsnap_leak_header_t){
        .blocks = sc->nblocks, .root_bytes = sc->root_bytes, .heap_bytes = sc->heap_bytes,
        .threads = sc->threads, .threads_missed = missed,
        .flags = (missed || tries == STOP_TRIES) ? MTSNAP_LEAK_F_PARTIAL : 0};
out:
    if (stopped)
        mtp_stopworld_release();
    ls->hdr.stop_ns = mtp_mono_ns() - t0;
    scan_free(sc);
out_unmapped:
    mtp_unmap(sc, sizeof(*sc));
    if (r < 0)
        mtp_leakscan_free(ls);
    return r;
}

void mtp_leakscan_free(mtp_leakscan_t *ls)
{
    mtp_unmap(ls->kind, ls->kind_bytes);
    ls->kind = NULL;
}
