/* termsig: ends by a signal it sends itself (test_process.c, terminating_*).
 *
 * argv[1]: TERM or INT, the signal; argv[2] (optional): "threads" to end
 * while a second thread allocates in a loop.
 * First it prints its view of the dispositions of SIGTERM and SIGINT as the
 * program sets and reads them through sigaction and signal (handler kind,
 * sa_flags in hex, whether SIGUSR1 and the signal itself are in sa_mask):
 * traced and bare must print the same. Then kept_before_signal keeps
 * 4 x malloc(700) -> 2800 / 4, and the signal is sent with kill(2) to the
 * process. Bare, the process dies by it; traced, it leaves an exit snapshot
 * labelled SIGTERM or SIGINT holding those blocks, then dies by it. Exit 3 if
 * it survives.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_kept[4];
static volatile sig_atomic_t handled;

static NOINLINE void kept_before_signal(void)
{
    for (int i = 0; i < 4; i++)
        if ((g_kept[i] = malloc(700)) == NULL)
            prog_die("termsig", "malloc failed");
}

static void on_sig(int sig)
{
    handled = sig;
}

static void show(const char *what, int sig)
{
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) < 0)
        prog_die("termsig", "sigaction query failed");
    prog_put(1, what);
    prog_put(1, sa.sa_handler == SIG_DFL ? " DFL" : sa.sa_handler == SIG_IGN ? " IGN"
                : sa.sa_handler == on_sig ? " on_sig" : " other");
    prog_put(1, " flags=");
    prog_put_u(1, (unsigned long)sa.sa_flags);
    prog_put(1, sigismember(&sa.sa_mask, SIGUSR1) ? " USR1" : "");
    prog_put(1, sigismember(&sa.sa_mask, sig) ? " self" : "");
    prog_put(1, "\n");
}

static void *churn(void *arg)
{
    (void)arg;
    for (;;)
        free(malloc(64));
    return NULL;
}

int main(int argc, char **argv)
{
    int sig = argc > 1 && strcmp(argv[1], "INT") == 0 ? SIGINT : SIGTERM;
    show("start TERM", SIGTERM);
    show("start INT", SIGINT);

    /* signal(): a handler, a raise, and back to what it returned. */
    void (*prev)(int) = signal(SIGINT, on_sig);
    prog_put(1, prev == SIG_DFL ? "signal returned DFL\n" : "signal returned other\n");
    show("handler INT", SIGINT);
    raise(SIGINT);
    prog_put(1, handled == SIGINT ? "handled INT\n" : "INT not handled\n");
    prev = signal(SIGINT, prev);
    prog_put(1, prev == on_sig ? "signal returned on_sig\n" : "signal returned other\n");
    show("restored INT", SIGINT);

    /* sigaction(): SIG_DFL with flags and a mask reads back as the kernel keeps it. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    if (sigaction(SIGTERM, &sa, &old) < 0)
        prog_die("termsig", "sigaction failed");
    prog_put(1, old.sa_handler == SIG_DFL ? "old DFL\n" : "old other\n");
    show("flags TERM", SIGTERM);
    signal(SIGTERM, SIG_IGN);
    show("ignored TERM", SIGTERM);
    signal(SIGTERM, SIG_DFL);
    show("default TERM", SIGTERM);

    kept_before_signal();
    pthread_t th;
    if (argc > 2 && strcmp(argv[2], "threads") == 0 && pthread_create(&th, NULL, churn, NULL) != 0)
        prog_die("termsig", "pthread_create failed");
    kill(getpid(), sig);
    prog_put(1, "survived\n");
    return 3;
}
