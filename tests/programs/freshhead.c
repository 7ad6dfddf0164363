/* freshhead: what the first two words of a block malloc hands out again
 * hold. Bare, glibc leaves its tcache link there (`next`, mangled; `key`
 * is cleared); under memtrail both are 0 (mtp_clear_head, hook/hook.h),
 * so that the leak scan cannot read the link as the program's pointer.
 * Reading memory malloc returned before writing it is what a correct
 * program never does: this program does it to show what memtrail
 * changes, through a volatile pointer so that the compiler keeps the
 * loads. Prints "malloc head 0" or "malloc head set". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* a and b are used: the compiler may not drop their malloc and free */
static void keep(void *a, void *b)
{
    __asm__ volatile("" : : "r"(a), "r"(b) : "memory");
}

static const char *head(volatile uint64_t *w)
{
    return w[0] == 0 && w[1] == 0 ? "0" : "set";
}

int main(void)
{
    void *a = malloc(48), *b = malloc(48);   /* two in the tcache: a non-NULL link */
    keep(a, b);
    free(a);
    free(b);
    volatile uint64_t *p = malloc(48);   /* b again, its link to a still in it */
    printf("malloc head %s\n", head(p));
    free((void *)p);
    return 0;
}
