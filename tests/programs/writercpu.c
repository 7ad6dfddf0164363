/* writercpu [retarget]: how many CPUs the process's other thread
 * (memtrail's writer, when traced) may run on at 30 ms and once 600 ms more
 * have passed; and how many this thread may. The writer starts
 * bound to the CPU its creator ran on and takes its creator's whole set
 * after 200 ms (preload/writer/writer.c, bind_start_cpu), unless someone
 * else set its CPUs meanwhile: with "retarget", this program does so at
 * 30 ms, as `taskset -a -p` would, binding the other thread to another of
 * its CPUs, and its set must stay that one CPU.
 *
 * The writer thread starts once the process has lived 10 ms, at an
 * allocation another thread than the main one makes (writer/writer.c,
 * `deferred`): at 12 ms this program runs a thread that allocates 64
 * blocks, and joins it; the main thread keeps one block, so that the traced
 * process has a stack to write.
 *
 * Output, one line: "own N early E late L", where E and L are "none" when
 * the process has no other thread (bare); exit status 0. */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* CPUs in a list such as "0-3,6": how many. */
static int count_list(const char *s)
{
    int n = 0;
    while (*s && *s != '\n') {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s)
            return -1;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            s = end;
        }
        n += (int)(b - a + 1);
        if (*s == ',')
            s++;
    }
    return n;
}

/* The other thread's allowed CPUs (-1: none), from its status file; its
 * id in *other and its first allowed CPU in *first. */
static int other_thread_cpus(int *other, int *first)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int self = gettid(), n = -1;
    while (d && (e = readdir(d)) != NULL && n < 0) {
        int tid = atoi(e->d_name);
        if (e->d_name[0] == '.' || tid == self)
            continue;
        char path[64], line[512];
        snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof(line), f))
            if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
                const char *list = line + 18 + strspn(line + 18, " \t");
                n = count_list(list);
                *other = tid;
                *first = atoi(list);
            }
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

static void *churn(void *arg)
{
    for (int i = 0; i < 64; i++) {
        void *volatile p = malloc(32);
        free(p);
    }
    return arg;
}

static void put(const char *what, int n)
{
    if (n < 0)
        printf(" %s none", what);
    else
        printf(" %s %d", what, n);
}

int main(int argc, char **argv)
{
    cpu_set_t own;
    int other = 0, first = -1;
    if (sched_getaffinity(0, sizeof(own), &own) < 0)
        return 1;
    void *volatile keep = malloc(64);
    sleep_ms(12);
    pthread_t th;
    if (pthread_create(&th, NULL, churn, NULL) != 0 || pthread_join(th, NULL) != 0)
        return 1;
    sleep_ms(18);
    int early = other_thread_cpus(&other, &first);
    if (argc > 1 && strcmp(argv[1], "retarget") == 0 && early == 1) {
        cpu_set_t to;   /* another CPU of ours than the one it is bound to */
        CPU_ZERO(&to);
        for (int c = 0; c < CPU_SETSIZE && !CPU_COUNT(&to); c++)
            if (CPU_ISSET(c, &own) && c != first)
                CPU_SET(c, &to);
        if (CPU_COUNT(&to) && sched_setaffinity(other, sizeof(to), &to) < 0)
            return 1;
    }
    sleep_ms(600);
    int late = other_thread_cpus(&other, &first);
    printf("own %d", CPU_COUNT(&own));
    put("early", early);
    put("late", late);
    printf("\n");
    free(keep);
    return 0;
}
