/* Writes a libFuzzer dictionary for the snapshot format on stdout: the
 * magic, the versions and every record tag, taken from memtrail_format.h
 * (its X-macro lists), so the dictionary cannot drift from the format. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "memtrail_format.h"

static void entry(const char *name, const void *bytes, size_t n)
{
    printf("%s=\"", name);
    for (size_t i = 0; i < n; i++)
        printf("\\x%02x", ((const unsigned char *)bytes)[i]);
    printf("\"\n");
}

static void tag(const char *name, uint32_t v)
{
    entry(name, &v, sizeof(v));   /* little-endian, as in the file */
}

int main(void)
{
    uint16_t v1 = MTSNAP_VERSION_V1, v2 = MTSNAP_VERSION;
    entry("magic", MTSNAP_MAGIC, MTSNAP_MAGIC_LEN);
    entry("version_1", &v1, sizeof(v1));
    entry("version_2", &v2, sizeof(v2));
#define TAG_(NAME, name, value) tag("tag_" #name, value);
    MTSNAP_REQUIRED_RECORDS(TAG_)
    MTSNAP_AFTER_RECORDS(TAG_)
#undef TAG_
    tag("tag_end", MTSNAP_TAG_END);
    return 0;
}
