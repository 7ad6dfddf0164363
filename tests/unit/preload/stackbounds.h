/* The calling thread's stack as glibc's pthread_getattr_np gives it: the
 * bounds the unit tests walk stacks within and compare memtrail's with. */
#ifndef MT_STACKBOUNDS_H
#define MT_STACKBOUNDS_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>

static inline void mt_stack_bounds(uintptr_t *lo, uintptr_t *hi)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    cr_assert_eq(pthread_getattr_np(pthread_self(), &attr), 0);
    cr_assert_eq(pthread_attr_getstack(&attr, &addr, &size), 0);
    pthread_attr_destroy(&attr);
    *lo = (uintptr_t)addr;
    *hi = (uintptr_t)addr + size;
}

#endif
