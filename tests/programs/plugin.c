/* plugin: built twice (tests/meson.build), as libplugin_a.so and
 * libplugin_b.so, from the same code: the two differ only in the exported
 * function's name (same length), the size it allocates (same encoding) and
 * the line of its malloc call, so dlopen'ed one after the other they have the
 * same layout and, mapped at the same address, the same return addresses.
 * reload.c uses them to catch a symbolizer that answers a pc from the module
 * that was there before. */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

void *plugin_site_a(void);
void *plugin_site_b(void);

#ifdef PLUGIN_A
NOINLINE void *plugin_site_a(void)
{
    return malloc(1111); /* SITE:plugin_site_a */
}
#else
NOINLINE void *plugin_site_b(void)

{
    return malloc(2222); /* SITE:plugin_site_b */
}
#endif
