/* demo: the program `./build.sh demo` traces (README.md, Quick start), and
 * the example of the C API: it keeps a cache, leaks a few request buffers,
 * drops a list, and takes a labelled snapshot of its own half-way.
 *
 * The API is declared weak (MEMTRAIL_WEAK), so the program needs nothing
 * linked and runs the same without memtrail: the snapshot call then returns
 * -ENOSYS. Built against an installed memtrail:
 *
 *     cc demo.c $(pkg-config --cflags --libs memtrail) -o demo
 *     memtrail run -o snaps -- ./demo
 *     memtrail report snaps/memtrail.*.exit.mtsnap --group-by line
 */
#define MEMTRAIL_WEAK
#include <memtrail.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

struct entry {
    struct entry *next;
    char key[24];
    char *value;
};

static struct entry *cache;

/* Kept for the whole run: still reachable at exit. */
static NOINLINE void cache_put(const char *key, size_t size)
{
    struct entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->value = malloc(size)))
        exit(1);
    snprintf(e->key, sizeof(e->key), "%s", key);
    memset(e->value, 'v', size);
    e->next = cache;
    cache = e;
}

/* Every fourth request forgets to free its buffer: definitely lost. */
static NOINLINE void handle_request(int i)
{
    char *buf = malloc(512);
    if (!buf)
        exit(1);
    snprintf(buf, 512, "request %d", i);
    if (i % 4 != 3)
        free(buf);
}

/* A list whose head is dropped: lost too, its nodes indirectly. */
static NOINLINE void build_list(int n)
{
    struct entry *volatile head = NULL;
    for (int i = 0; i < n; i++) {
        struct entry *e = calloc(1, sizeof(*e));
        if (!e)
            exit(1);
        e->next = head;
        head = e;
    }
}

int main(void)
{
    char key[24];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        cache_put(key, 4096);
    }
    for (int i = 0; i < 40; i++)
        handle_request(i);
    int rc = MEMTRAIL_SNAPSHOT("after-requests");
    if (rc != 0 && rc != -38 /* ENOSYS: not traced */)
        fprintf(stderr, "demo: memtrail_snapshot: %s\n", strerror(-rc));
    build_list(16);
    return 0;
}
