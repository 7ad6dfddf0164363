/* libunwlazydep.so: a module that needs liblzma, dlopened in copies by
 * unwlazy after memtrail's libunwind brought liblzma in. */
#include <lzma.h>

const char *unwlazydep_version(void);

const char *unwlazydep_version(void)
{
    return lzma_version_string();
}
