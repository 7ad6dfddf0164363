/*
 * memtrail snapshot format, versions 1 and 2 (*.mtsnap).
 *
 * Shared by the writer (preload/) and the reader (analyzer/). Self-contained:
 * only <stdint.h>-level includes. All integers are little-endian; every
 * structure below is packed by construction (natural alignment, no padding)
 * and checked with _Static_assert. docs/format.md describes the same layout
 * in prose, byte by byte; the two must agree.
 *
 *   file    := file_header record* end_record
 *
 *   file_header (16 bytes)
 *   +--------+--------+--------+--------+
 *   | magic[8] = 89 'M' 'T' 'S' 'N' 'A' 'P' 0a  |
 *   +--------+--------+--------+--------+
 *   | version u16 | hdr_size u16 | flags u32    |
 *   +--------+--------+--------+--------+
 *
 *   v1 record := record_header (16 bytes) payload[length]
 *       tag u32, crc32 u32 (IEEE, of the payload), length u64 (payload bytes)
 *   v2 record := record_header_v2 (32 bytes) stored[length]
 *       tag u32, crc32 u32 (IEEE, of the STORED bytes), length u64 (stored
 *       bytes), raw_length u64 (payload bytes once decoded), codec u32,
 *       reserved u32. codec 0: stored == payload (raw_length == length);
 *       codec 1: stored is exactly one zstd frame that decompresses to
 *       exactly raw_length bytes. A reader refuses raw_length above
 *       MTSNAP_ZSTD_MAX_RATIO * length (no zstd frame expands more).
 *
 * Version 2 keeps the record list, order and rules of version 1; its
 * payloads (the bytes after decompression) are those of version 1 except
 * FRAMES, STACKS, STACK_STATS, BLOCKS and PYGRAPH, which are written with
 * LEB128 varints and deltas (MTSNAP_V2_* below), and BLOCK loses `counter`.
 * Version 3 is version 2 with STACKS as a tree of shared outer parts
 * (MTSNAP_V3_STACKS below); the other payloads are version 2's.
 * A writer writes version 3 (MTSNAP_VERSION); a reader reads all three.
 *
 * Records appear in the order of MTSNAP_REQUIRED_RECORDS below, each exactly
 * once: META, STRINGS, MODULES, FRAMES, STACKS, STACK_STATS, TOTALS, BLOCKS,
 * END.
 * Tags with MTSNAP_TAG_OPTIONAL set may appear anywhere before END; a reader
 * skips those it does not know. An unknown tag without that bit, a bad CRC, a
 * length that does not match the counts, an index out of range, or a missing
 * END makes the file invalid. A version greater than MTSNAP_VERSION is
 * rejected as "newer".
 *
 * The optional records a reader knows come after BLOCKS (a reader rejects
 * them before it), each at most once:
 *   SAMPLING (byte sampling: the figures are estimates; its mean)
 *   INLINED  (the frames of functions inlined into the next frame)
 *   LEAKS    (leak scan: one kind byte per block, in BLOCKS order)
 *   PYGRAPH  (Python object graph: objects sorted by address, then edges)
 *   TIMELINE (the process's memory over time, since tracing began)
 *   COSTS    (what tracing has cost the process so far: producers' waits
 *            on full rings, the writer's CPU time)
 *   TIMING   (what writing this file cost; last before END)
 *
 * Strings are referenced by index into STRINGS; index 0 is always "".
 * Stack ids, frame indices and module indices are dense indices into their
 * records (0-based); MTSNAP_NONE marks "no module / unknown".
 */
#ifndef MEMTRAIL_FORMAT_H
#define MEMTRAIL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define MTSNAP_MAGIC "\x89MTSNAP\n"
#define MTSNAP_MAGIC_LEN 8
#define MTSNAP_VERSION 3      /* what writers write; readers read 1, 2 and 3 */
#define MTSNAP_VERSION_V1 1
#define MTSNAP_VERSION_V2 2
#define MTSNAP_NONE 0xffffffffu
#define MTSNAP_SUFFIX ".mtsnap"

/*
 * The records, declared once: X(NAME, name, tag value) for each. The
 * encoder (format/encode.c) writes them in this order, the decoder
 * (format/snapshot.c) expects them in this order, and the tag enum below is
 * generated from these lists. Tag values are the four ASCII characters of
 * the comment, little-endian; they are fixed and never reused.
 *
 * MTSNAP_REQUIRED_RECORDS: every file, each exactly once, in this order.
 * MTSNAP_AFTER_RECORDS: optional (bit 31 set), after BLOCKS, at most once each.
 */
#define MTSNAP_TAG_OPTIONAL 0x80000000u
#define MTSNAP_REQUIRED_RECORDS(X)                                      \
    X(META, meta, 0x4154454du)                /* "META" */              \
    X(STRINGS, strings, 0x53525453u)          /* "STRS" */              \
    X(MODULES, modules, 0x53444f4du)          /* "MODS" */              \
    X(FRAMES, frames, 0x534d5246u)            /* "FRMS" */              \
    X(STACKS, stacks, 0x534b5453u)            /* "STKS" */              \
    X(STACK_STATS, stack_stats, 0x54415453u)  /* "STAT" */              \
    X(TOTALS, totals, 0x534c5454u)            /* "TTLS" */              \
    X(BLOCKS, blocks, 0x534b4c42u)            /* "BLKS" */
#define MTSNAP_AFTER_RECORDS(X)                                         \
    X(SAMPLING, sampling, MTSNAP_TAG_OPTIONAL | 0x4c504d53u) /* "SMPL" */ \
    X(INLINED, inlined, MTSNAP_TAG_OPTIONAL | 0x4e4c4e49u)  /* "INLN" */   \
    X(LEAKS, leaks, MTSNAP_TAG_OPTIONAL | 0x4b41454cu)   /* "LEAK" */   \
    X(PYGRAPH, pygraph, MTSNAP_TAG_OPTIONAL | 0x52475950u) /* "PYGR" */ \
    X(TIMELINE, timeline, MTSNAP_TAG_OPTIONAL | 0x4e4c4d54u) /* "TMLN" */ \
    X(COSTS, costs, MTSNAP_TAG_OPTIONAL | 0x54534f43u)     /* "COST" */ \
    X(TIMING, timing, MTSNAP_TAG_OPTIONAL | 0x454d4954u)   /* "TIME" */

#define MTSNAP_TAG_ENUM_(NAME, name, value) MTSNAP_TAG_##NAME = value,
enum mtsnap_tag {
    MTSNAP_REQUIRED_RECORDS(MTSNAP_TAG_ENUM_)
    MTSNAP_TAG_END = 0x21444e45u,         /* "END!": last, always */
    MTSNAP_AFTER_RECORDS(MTSNAP_TAG_ENUM_)
};
#undef MTSNAP_TAG_ENUM_
#define MTSNAP_COUNT_(NAME, name, value) +1
#define MTSNAP_NREQUIRED (0 MTSNAP_REQUIRED_RECORDS(MTSNAP_COUNT_))

/* What made the process write the snapshot (META.trigger): X(NAME, value,
 * name). The name is the one of the file name (memtrail.PID.SEQ.NAME.mtsnap)
 * and of reports; format/names.c maps both ways. */
#define MTSNAP_TRIGGERS(X)                                                              \
    X(EXIT, 1, "exit")         /* exit(), return from main, _exit() */                 \
    X(SIGNAL, 2, "signal")     /* the snapshot signal (memtrail snapshot PID) */       \
    X(INTERVAL, 3, "interval") /* every --interval seconds */                          \
    X(API, 4, "api")           /* memtrail_snapshot(label) */                          \
    X(FINAL, 5, "final")       /* process exit after interpreter teardown */        \
    X(DETACH, 6, "detach")     /* memtrail detach PID: the last one of an attach */
#define MTSNAP_ENUM_(NAME, value, name) MTSNAP_TRIGGER_##NAME = value,
enum mtsnap_trigger { MTSNAP_TRIGGERS(MTSNAP_ENUM_) };
#undef MTSNAP_ENUM_
/* The highest trigger value (a reader refuses a higher one). */
#define MTSNAP_TRIGGER_MAX MTSNAP_TRIGGER_DETACH

/* How native stacks were captured (META.unwind). */
enum mtsnap_unwind { MTSNAP_UNWIND_LIBUNWIND = 0, MTSNAP_UNWIND_FP = 1 };

/* Frame kinds (FRAME.kind). */
enum mtsnap_frame_kind { MTSNAP_FRAME_NATIVE = 0, MTSNAP_FRAME_PYTHON = 1 };

/* Allocation domains (BLOCK.domain): X(NAME, value, name), the name being
 * the one --domain takes. Extension domains keep their number + 16.
 * MMAP blocks are the program's own mappings (mmap, mremap; munmap ends or
 * splits them), BLOCKS only: STACK_STATS, TOTALS and TIMELINE count the
 * other domains (the heap), and a reader counts MMAP blocks only when asked
 * for that domain by name. They are never sampled (SAMPLING: each weighs its
 * size and one block). Files written before the domain existed have none. */
#define MTSNAP_DOMAINS(X)                                   \
    X(NATIVE, 0, "native")   /* malloc and friends */      \
    X(PY_RAW, 1, "raw")                                    \
    X(PY_MEM, 2, "mem")                                    \
    X(PY_OBJ, 3, "obj")                                    \
    X(MMAP, 4, "mmap")       /* mmap, mremap, munmap */
#define MTSNAP_ENUM_(NAME, value, name) MTSNAP_DOMAIN_##NAME = value,
enum mtsnap_domain {
    MTSNAP_DOMAINS(MTSNAP_ENUM_)
    MTSNAP_DOMAIN_EXT_BASE = 16,
};
#undef MTSNAP_ENUM_

typedef struct mtsnap_file_header {
    uint8_t magic[8];    /* MTSNAP_MAGIC */
    uint16_t version;    /* MTSNAP_VERSION */
    uint16_t hdr_size;   /* sizeof(mtsnap_file_header_t) */
    uint32_t flags;      /* reserved, 0 */
} mtsnap_file_header_t;

/* Version 1 record header. */
typedef struct mtsnap_record_header {
    uint32_t tag;        /* enum mtsnap_tag */
    uint32_t crc32;      /* mtsnap_crc32() of the payload */
    uint64_t length;     /* payload bytes that follow */
} mtsnap_record_header_t;

/* Version 2 record header. The CRC covers the stored bytes, so it is checked
 * before anything is decompressed (and an unknown optional record is
 * checked and skipped without decompressing it); zstd's own frame checksum
 * (XXH64, set by the writer) covers the decompressed bytes. */
enum mtsnap_codec {
    MTSNAP_CODEC_STORED = 0,  /* the stored bytes are the payload */
    MTSNAP_CODEC_ZSTD = 1,    /* one zstd frame (RFC 8878) */
};
typedef struct mtsnap_record_header_v2 {
    uint32_t tag;        /* enum mtsnap_tag */
    uint32_t crc32;      /* mtsnap_crc32() of the stored bytes */
    uint64_t length;     /* stored bytes that follow */
    uint64_t raw_length; /* payload bytes after decoding */
    uint32_t codec;      /* enum mtsnap_codec; END is always STORED */
    uint32_t reserved;   /* 0 */
} mtsnap_record_header_v2_t;
/* A zstd block holds at most 128 KiB; the densest one (RLE) takes 4 bytes
 * including its header, so no frame decompresses to more than 32768 times
 * its size. A larger raw_length is refused before anything is allocated. */
#define MTSNAP_ZSTD_MAX_RATIO 32768u

/*
 * Version 2 payload encodings. varint: unsigned LEB128 (7 bits a byte, low
 * first, high bit = more follow), at most 10 bytes, the value fitting in 64
 * bits. zz(x) = (x << 1) ^ (x >> 63) (zigzag, for signed deltas); deltas wrap
 * modulo 2^64. A u32 field whose varint exceeds 0xffffffff is invalid. No
 * padding anywhere; the fields are exactly consumed by the counts.
 *
 * FRAMES:      varint count; per frame: varint zz(pc - previous frame's pc,
 *              0 before the first), varint offset, varint module + 1 (0 =
 *              MTSNAP_NONE), varint function, varint file, varint line,
 *              varint kind.
 * STACKS:      varint count; per stack: varint depth, depth x varint frame.
 * STACK_STATS: varint count; per entry: varint stack, live_bytes,
 *              live_blocks, alloc_bytes, alloc_blocks, peak_bytes,
 *              peak_blocks (seven varints).
 * BLOCKS:      varint count; per block: varint address step (the first
 *              block's address itself, then address - previous address,
 *              which is at least 1: strictly increasing), varint size,
 *              varint stack, varint domain. No counter (decoded as 0).
 * PYGRAPH:     pygraph_header (48 bytes, as v1); objects x {varint address
 *              step (as BLOCKS), varint size, varint zz(refcount), varint
 *              type, varint flags, varint nrefs}; then the edges, object i's
 *              nrefs first: varint r. r >= 1: the referent is object
 *              i + unzz(r - 1) of the graph. r == 0: it is not in the graph
 *              and varint zz(address - previous such address, 0 before the
 *              first) follows.
 * META, STRINGS, MODULES, TOTALS, LEAKS and END: as version 1.
 *
 * Version 3 STACKS (the other payloads as version 2): stacks share their
 * outer frames as a tree of nodes.
 *   varint count (nodes); per node: varint parent (0: none; else the
 *   index + 1 of an earlier node, whose frames follow this node's own),
 *   varint (own << 1 | is_stack), own x varint frame (innermost first).
 * A node's frames are its own followed by its parent's, recursively; the
 * nodes with is_stack set are the stacks, numbered in node order (STACK_STATS
 * and BLOCKS refer to those numbers). A node other than a stack has at
 * least one frame of its own. A stack is at most MTSNAP_V3_MAX_DEPTH
 * frames deep, and the stacks' frames together are at most
 * MTSNAP_V3_MAX_FRAMES or 256 per payload byte, whichever is more (a reader
 * that expands them refuses more: the tree is small, its expansion need
 * not be).
 */
#define MTSNAP_V3_MAX_DEPTH 65535u
#define MTSNAP_V3_MAX_FRAMES (1u << 24)
#define MTSNAP_VARINT_MAX 10

/* META payload: exactly one mtsnap_meta_t. */
typedef struct mtsnap_meta {
    uint32_t pid;
    uint32_t ppid;
    uint64_t time_ns;        /* CLOCK_REALTIME when the snapshot was taken */
    uint64_t start_ns;       /* CLOCK_REALTIME when tracing began in this process */
    uint64_t counter;        /* events (allocations + frees) reflected */
    uint32_t trigger;        /* enum mtsnap_trigger */
    uint32_t seq;            /* per-process sequence number, from 1 */
    uint32_t label;          /* string: label given by the API or `memtrail snapshot` */
    uint32_t cmdline;        /* string: argv, NUL-separated */
    uint32_t exe;            /* string: /proc/self/exe target */
    uint32_t hostname;       /* string */
    uint32_t unwind;         /* enum mtsnap_unwind */
    uint32_t depth;          /* maximum frames per stack */
    uint32_t flags;          /* MTSNAP_META_F_* (0 in files before they existed) */
    uint32_t py_hooks_ms;    /* MTSNAP_META_F_PY_HOOKS: milliseconds from start_ns to when
                              * the Python allocator hooks started; else 0 */
} mtsnap_meta_t;
/* META.flags: a CPython process in which memtrail could not follow objects
 * reused from the interpreter's free lists (3.8, or an interpreter whose
 * calls to _Py_NewReference are bound at link time, as a static libpython):
 * such a block keeps the stack of its first allocation (docs/design.md). */
#define MTSNAP_META_F_PY_NO_REUSE 0x1u
/* META.flags: tracing began when `memtrail attach` loaded the tracer into the
 * process while it ran (at META.start_ns): blocks allocated before then are
 * not in the snapshot, and their frees and reallocs are not counted. */
#define MTSNAP_META_F_ATTACHED 0x2u
/* META.flags of an attached CPython process: its Python allocator hooks
 * were installed py_hooks_ms after the attach (PY_HOOKS), or are not yet
 * (PY_WAITING: they start when the main thread next runs Python code);
 * before them, Python objects are not seen and stacks are native. */
#define MTSNAP_META_F_PY_HOOKS 0x4u
#define MTSNAP_META_F_PY_WAITING 0x8u

/* STRINGS payload: u32 count, then count x { u32 len; u8 bytes[len] }
 * (no terminator, no padding). Entry 0 is the empty string. */

/* MODULES payload: u32 count, then count x mtsnap_module_t. */
typedef struct mtsnap_module {
    uint64_t start;      /* lowest mapped address */
    uint64_t end;        /* one past the highest mapped address */
    uint64_t bias;       /* load bias: runtime address - ELF virtual address */
    uint32_t path;       /* string: file path */
    uint32_t build_id;   /* string: lower-case hex of NT_GNU_BUILD_ID, or "" */
} mtsnap_module_t;

/* FRAMES payload: u32 count, then count x mtsnap_frame_t.
 * Native frames: pc is the return address (the call site is pc - 1);
 * offset is pc minus the start of function. */
typedef struct mtsnap_frame {
    uint64_t pc;
    uint64_t offset;
    uint32_t module;     /* index into MODULES, or MTSNAP_NONE */
    uint32_t function;   /* string: symbol as found (mangled), or "" */
    uint32_t file;       /* string: source file, or "" */
    uint32_t line;       /* source line, 0 if unknown */
    uint32_t kind;       /* enum mtsnap_frame_kind */
    uint32_t reserved;   /* 0 */
} mtsnap_frame_t;

/* STACKS payload: u32 count, then count x { u32 depth; u32 frame[depth] },
 * frames innermost first. A stack of depth 0 is "unknown". */

/* STACK_STATS payload: u32 count, then count x mtsnap_stack_stat_t, one per
 * stack that ever allocated, in no particular order. */
typedef struct mtsnap_stack_stat {
    uint32_t stack;        /* index into STACKS */
    uint32_t reserved;     /* 0 */
    uint64_t live_bytes;   /* at this snapshot */
    uint64_t live_blocks;
    uint64_t alloc_bytes;  /* allocated since tracing began */
    uint64_t alloc_blocks;
    uint64_t peak_bytes;   /* live at the moment of the process-wide peak */
    uint64_t peak_blocks;
} mtsnap_stack_stat_t;

/* TOTALS payload: exactly one mtsnap_totals_t. */
typedef struct mtsnap_totals {
    uint64_t live_bytes;
    uint64_t live_blocks;
    uint64_t alloc_bytes;  /* allocated since tracing began */
    uint64_t alloc_blocks;
    uint64_t free_blocks;  /* traced blocks freed */
    uint64_t peak_bytes;   /* highest live_bytes seen */
    uint64_t peak_blocks;  /* live blocks at that moment */
    uint64_t peak_counter; /* event number at that moment */
    uint64_t peak_time_ns; /* CLOCK_REALTIME at that moment (writer's view) */
} mtsnap_totals_t;

/* BLOCKS payload (v1): u64 count, then count x mtsnap_block_t, sorted by
 * address. Version 2 writes no counter (above); the decoded block keeps the
 * field, 0 for a version 2 file. */
typedef struct mtsnap_block {
    uint64_t address;
    uint64_t size;       /* requested size */
    uint64_t counter;    /* event number of the allocation (v1 only) */
    uint32_t stack;      /* index into STACKS */
    uint32_t domain;     /* enum mtsnap_domain */
} mtsnap_block_t;

/* END payload: exactly one mtsnap_end_t. */
typedef struct mtsnap_end {
    uint64_t records;    /* records before END */
    uint64_t offset;     /* file offset of END's record header */
} mtsnap_end_t;

/*
 * LEAKS payload: one mtsnap_leak_header_t, then `blocks` bytes, the
 * enum mtsnap_leak_kind of each block in BLOCKS order (no padding).
 *
 *   +-------------------------------+----------------------------+
 *   | leak_header (48 bytes)        | u8 kind[blocks]            |
 *   +-------------------------------+----------------------------+
 *
 * The classification is memcheck's: a block is REACHABLE when a chain of
 * pointers to block starts leads to it from a root, POSSIBLE when every
 * chain passes through an interior pointer, INDIRECT when only lost blocks
 * point to it, and DEFINITE otherwise (the first block of each lost group,
 * in address order, is its definite block). Roots: the writable segments of
 * every loaded module except memtrail's own, every thread's stack from its
 * stack pointer and its registers, and its static TLS. LIBC blocks are
 * reached only from the writable data of the C library and the dynamic
 * loader (valgrind frees those at exit with __libc_freeres); UNSCANNED
 * blocks could not be read (their memory was not mapped at scan time).
 * Blocks of the MMAP domain are not classified, nor roots: REACHABLE.
 */
#define MTSNAP_LEAK_KINDS(X)              \
    X(UNSCANNED, 0, "unscanned")          \
    X(DEFINITE, 1, "definite")            \
    X(INDIRECT, 2, "indirect")            \
    X(POSSIBLE, 3, "possible")            \
    X(REACHABLE, 4, "reachable")          \
    X(LIBC, 5, "libc")
#define MTSNAP_ENUM_(NAME, value, name) MTSNAP_LEAK_##NAME = value,
enum mtsnap_leak_kind { MTSNAP_LEAK_KINDS(MTSNAP_ENUM_) };
#undef MTSNAP_ENUM_
#define MTSNAP_LEAK_KIND_MAX 5

/* leak_header.flags */
#define MTSNAP_LEAK_F_PARTIAL 0x1u  /* some thread did not stop: its stack was scanned whole (or not at all) while it ran */

typedef struct mtsnap_leak_header {
    uint64_t blocks;        /* == the BLOCKS count */
    uint64_t root_bytes;    /* bytes of roots scanned (segments, stacks, registers, TLS) */
    uint64_t heap_bytes;    /* bytes of block contents scanned */
    uint64_t stop_ns;       /* how long the other threads were stopped */
    uint32_t threads;       /* threads stopped and scanned (memtrail's writer not counted) */
    uint32_t threads_missed;/* threads that did not stop in time */
    uint32_t flags;         /* MTSNAP_LEAK_F_* */
    uint32_t reserved;      /* 0 */
} mtsnap_leak_header_t;

/* COSTS payload: exactly one mtsnap_costs_t, stored uncompressed: what
 * tracing has cost the process since it began (in a fork child: since the
 * fork), for a benchmark to show where the time goes. */
typedef struct mtsnap_costs {
    uint64_t wait_ns;       /* time application threads waited on their full rings */
    uint64_t waits;         /* how many times one waited */
    uint64_t worst_wait_ns; /* the longest such wait */
    uint64_t writer_cpu_ns; /* CPU time of the writer thread; 0: no writer thread */
    uint64_t events;        /* events numbered so far */
    uint64_t reserved;      /* 0 */
} mtsnap_costs_t;

/* TIMING payload: exactly one mtsnap_timing_t, always stored uncompressed,
 * last before END: what this snapshot cost the writer, so that `memtrail
 * run` can say which step was slow without reading the whole file. */
typedef struct mtsnap_timing {
    uint64_t scan_ns;       /* the leak scan, threads stopped included; 0 if none */
    uint64_t graph_ns;      /* the Python object graph's capture (GIL held); 0 if none */
    uint64_t symbolize_ns;  /* naming the frames */
    uint64_t write_ns;      /* the rest: gathering, encoding and writing the records before this one */
    uint64_t applied;       /* events the writer applied while it wrote this file */
    uint64_t reserved;      /* 0 */
} mtsnap_timing_t;

/*
 * SAMPLING payload: exactly one mtsnap_sampling_t, always stored
 * uncompressed. Present when the process sampled its allocations by bytes
 * (MEMTRAIL_SAMPLE; the arithmetic is include/memtrail_sample.h): BLOCKS
 * holds the sampled blocks only, as they are, and every figure of
 * STACK_STATS, TOTALS and TIMELINE is an estimate, each sampled block of
 * `size` bytes counted for size / p bytes and 1 / p blocks, where
 * p = 1 - exp(-size / mean) is the probability it had to be sampled. A
 * reader weighs BLOCKS the same way (LEAKS kinds, domains). Without the
 * record, every allocation was recorded and the figures are exact.
 */
typedef struct mtsnap_sampling {
    uint64_t mean;          /* mean bytes between sample points, at least 1 */
    uint64_t samples;       /* allocations sampled (recorded) since tracing began */
} mtsnap_sampling_t;

/*
 * INLINED payload (both versions; varints): which native frames are
 * functions inlined into another. The writer gives a return address whose
 * call instruction belongs to inlined code one FRAMES entry per function,
 * each with the same pc, module and offset, innermost first: the inlined
 * functions (each at its own line: the innermost at the address's line,
 * the others at the line of the call they inlined), then the function of
 * the symbol, at the line of the call it inlined; and stacks list all of
 * them, in that order. The entries of inlined functions are listed here;
 * in every stack, such a frame is followed by the next function out at the
 * same pc. A file without the record has no inlined frames (older writers
 * named such an address after its symbol, at the inlined code's line); a
 * reader that skips it sees the inlined frames as ordinary ones.
 *
 *   varint count          frames listed, at most FRAMES' count
 *   count x varint step   frame index - previous listed index (the first:
 *                         the index itself), at least 1 after the first:
 *                         strictly increasing; each a native frame
 */

/*
 * TIMELINE payload (both versions; the payload is the same varint layout):
 * the process's memory over time since tracing began, bounded: the writer
 * samples every MTSNAP_TIMELINE_STEP_NS at first, and when it holds
 * MTSNAP_TIMELINE_MAX_POINTS points it merges neighbours pairwise and doubles
 * its step, so a point stands for an interval and keeps its maxima.
 *
 *   varint step_ns        the series' current step (points are at least
 *                         this far apart, except the last, written with the
 *                         snapshot)
 *   varint count          points, at most MTSNAP_TIMELINE_MAX_POINTS + 1
 *   count x { varint t step   t_ns - previous t_ns (the first: t_ns itself),
 *                             at least 1 after the first: strictly increasing
 *             varint zz(heap_bytes - previous), varint zz(heap_blocks -
 *             previous), varint zz(rss_bytes - previous) (0 before the first) }
 *
 * A point's t_ns is nanoseconds since tracing began (META.start_ns; in a
 * fork child, since the fork); heap_bytes is the highest total of live
 * bytes in (previous t_ns, t_ns] (exact: the writer sees every event),
 * heap_blocks the live blocks at that moment, rss_bytes the highest
 * resident set size sampled in the interval (0: not known). The last point
 * is the moment the snapshot was taken.
 */
#define MTSNAP_TIMELINE_STEP_NS 10000000u   /* 10 ms */
#define MTSNAP_TIMELINE_MAX_POINTS 4096u
typedef struct mtsnap_tlpoint {
    uint64_t t_ns;
    uint64_t heap_bytes;
    uint64_t heap_blocks;
    uint64_t rss_bytes;
} mtsnap_tlpoint_t;

/*
 * PYGRAPH payload: the gc-tracked objects of a CPython process, captured
 * with the GIL held (gc.get_objects() and each type's tp_traverse).
 *
 *   +--------------------------+-------------------------+--------------------+
 *   | pygraph_header (48 bytes)| pyobj[objects] (40 each)| u64 edge[edges]    |
 *   +--------------------------+-------------------------+--------------------+
 *
 * Objects are sorted by address. Object i's referents are the next
 * pyobj[i].nrefs entries of edge[], in object order; an edge is the
 * referent's address (PyObject *), one per reference tp_traverse reported,
 * and may name an object that is not in the graph (not gc-tracked).
 * `refcount` is ob_refcnt less the reference memtrail's own list held.
 * MTSNAP_PYOBJ_REACHED is set by a scan of memory made while the
 * interpreter was stopped: the object is reachable from the roots of the
 * leak scan (and the Python threads' frame stacks) through memory that is
 * not another tracked object's, or through the referents of reached objects;
 * pointers into the collector's own lists do not count. It is meaningful
 * only with MTSNAP_PYGRAPH_F_SCANNED.
 */
#define MTSNAP_PYGRAPH_F_SCANNED 0x1u     /* REACHED flags were computed */
#define MTSNAP_PYGRAPH_F_GC_ENABLED 0x2u  /* gc.isenabled() at capture */

#define MTSNAP_PYOBJ_IMMORTAL 0x1u   /* 3.12+: an immortal object */
#define MTSNAP_PYOBJ_FINALIZER 0x2u  /* its type has __del__ (tp_finalize or tp_del) */
#define MTSNAP_PYOBJ_REACHED 0x4u    /* see above */
#define MTSNAP_PYOBJ_STATIC 0x8u     /* not inside any traced block (static or untraced memory) */
#define MTSNAP_PYOBJ_CLASS 0x10u     /* a class: its type is `type` or a subclass (a metaclass) */

typedef struct mtsnap_pygraph_header {
    uint32_t objects;
    uint32_t py_minor;      /* 3.minor of the interpreter */
    uint64_t edges;         /* == the sum of pyobj.nrefs */
    uint64_t capture_ns;    /* time spent capturing, GIL held */
    uint32_t flags;         /* MTSNAP_PYGRAPH_F_* */
    uint32_t stdlib;        /* string: the standard library's directory, or "" */
    uint32_t generation[3]; /* gc.get_count() at capture */
    uint32_t reserved;      /* 0 */
} mtsnap_pygraph_header_t;

typedef struct mtsnap_pyobj {
    uint64_t address;       /* PyObject * */
    uint64_t size;          /* tp_basicsize + tp_itemsize * |ob_size| */
    int64_t refcount;       /* see above */
    uint32_t type;          /* string: tp_name */
    uint32_t flags;         /* MTSNAP_PYOBJ_* */
    uint32_t nrefs;         /* its edges */
    uint32_t reserved;      /* 0 */
} mtsnap_pyobj_t;

_Static_assert(sizeof(mtsnap_file_header_t) == 16, "file header layout");
_Static_assert(sizeof(mtsnap_record_header_t) == 16, "record header layout");
_Static_assert(sizeof(mtsnap_record_header_v2_t) == 32, "v2 record header layout");
_Static_assert(sizeof(mtsnap_meta_t) == 72, "meta layout");
_Static_assert(sizeof(mtsnap_module_t) == 32, "module layout");
_Static_assert(sizeof(mtsnap_frame_t) == 40, "frame layout");
_Static_assert(sizeof(mtsnap_stack_stat_t) == 56, "stack stat layout");
_Static_assert(sizeof(mtsnap_totals_t) == 72, "totals layout");
_Static_assert(sizeof(mtsnap_block_t) == 32, "block layout");
_Static_assert(sizeof(mtsnap_end_t) == 16, "end layout");
_Static_assert(sizeof(mtsnap_leak_header_t) == 48, "leak header layout");
_Static_assert(sizeof(mtsnap_timing_t) == 48, "timing layout");
_Static_assert(sizeof(mtsnap_costs_t) == 48, "costs layout");
_Static_assert(sizeof(mtsnap_sampling_t) == 16, "sampling layout");
_Static_assert(sizeof(mtsnap_pygraph_header_t) == 48, "pygraph header layout");
_Static_assert(sizeof(mtsnap_pyobj_t) == 40, "pyobj layout");
_Static_assert(offsetof(mtsnap_frame_t, module) == 16, "frame layout");
_Static_assert(offsetof(mtsnap_block_t, stack) == 24, "block layout");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "memtrail's snapshot code assumes a little-endian host"
#endif

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32()): start with crc = 0. */
static const uint32_t mtsnap_crc32_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du
};

static inline uint32_t mtsnap_crc32(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = (const uint8_t *)buf;
    crc = ~crc;
    while (len--)
        crc = mtsnap_crc32_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

#endif /* MEMTRAIL_FORMAT_H */
