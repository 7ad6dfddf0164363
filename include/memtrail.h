/*
 * memtrail public API. The only header a traced program needs.
 *
 * memtrail_snapshot() is defined by libmemtrail.so. A program that should run
 * both with and without memtrail declares it weak (this header does so when
 * MEMTRAIL_WEAK is defined before including it) and calls it through
 * MEMTRAIL_SNAPSHOT(), which is a no-op returning -ENOSYS when the library is
 * not preloaded:
 *
 *     #define MEMTRAIL_WEAK
 *     #include <memtrail.h>
 *     ...
 *     MEMTRAIL_SNAPSHOT("after-warmup");
 */
#ifndef MEMTRAIL_H
#define MEMTRAIL_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Write a snapshot of the live heap now, labelled with `label` (may be NULL;
 * at most 255 bytes are kept). Returns when the file is complete: 0 on
 * success, a negative errno on failure (-EIO when the file could not be
 * written, -ECANCELED when tracing has already ended). Thread-safe.
 */
#ifdef MEMTRAIL_WEAK
int memtrail_snapshot(const char *label) __attribute__((weak));
#else
int memtrail_snapshot(const char *label);
#endif

#ifdef MEMTRAIL_WEAK
#define MEMTRAIL_SNAPSHOT(label) (memtrail_snapshot ? memtrail_snapshot(label) : -38 /* ENOSYS */)
#else
#define MEMTRAIL_SNAPSHOT(label) memtrail_snapshot(label)
#endif

#ifdef __cplusplus
}
#endif

#endif /* MEMTRAIL_H */
