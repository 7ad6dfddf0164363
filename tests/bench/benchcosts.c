/* bench_exit_costs (benchutil.h): the COSTS record of a run's exit snapshot,
 * for the runners that print where a traced run's time went (run_bench.c,
 * bench_python.c). */
#include <dirent.h>
#include <limits.h>
#include <string.h>

#include "benchutil.h"
#include "snapshot.h"

int bench_exit_costs(const char *dir, bench_costs_t *out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX], err[256];
    int found = 0;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        mta_snapshot_t *s = NULL;
        if (n < 12 || strcmp(e->d_name + n - 12, ".exit.mtsnap") ||
            bench_path_join(p, sizeof(p), dir, e->d_name) < 0 ||
            mta_snapshot_load(p, &s, err, sizeof(err)) < 0)
            continue;
        if (s->has_costs) {
            double life_ns = (double)(s->meta.time_ns - s->meta.start_ns);
            out->wait_ms = (double)s->costs.wait_ns / 1e6;
            out->worst_ms = (double)s->costs.worst_wait_ns / 1e6;
            out->waits = (double)s->costs.waits;
            out->writer_busy = life_ns > 0 ? (double)s->costs.writer_cpu_ns / life_ns : 0;
            found = 1;
        }
        mta_snapshot_free(s);
        break;
    }
    if (d)
        closedir(d);
    return found;
}
