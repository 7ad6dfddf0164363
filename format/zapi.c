/* libzstd linked: the encoder's table of its functions (format/encode.h)
 * and the two constructors that use it. A program that links these links
 * libzstd; the preload does not (it loads the library when it first
 * compresses: preload/base/libload.c). */
#include "encode.h"

const mtf_zapi_t mtf_zapi_linked = {
#define MTF_ZAPI_INIT(f) .f = f,
    MTF_ZAPI_FUNCS(MTF_ZAPI_INIT)
#undef MTF_ZAPI_INIT
};

static const mtf_zapi_t *linked(void)
{
    return &mtf_zapi_linked;
}

mtf_zstd_t *mtf_zstd_new(int level)
{
    return mtf_zstd_new_api(level, NULL, linked);
}

mtf_zstd_t *mtf_zstd_new_mem(int level, const mtf_zstd_mem_t *mem)
{
    return mtf_zstd_new_api(level, mem, linked);
}
