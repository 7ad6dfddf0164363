/* The sites of tests/programs/sampled.c, shared with the test that checks
 * its sampled figures against its exact ones (tests/integration/test_sample.c).
 * 24 sites, one block size each, geometric from 24 B to 250,000 B; each
 * keeps SAMPLED_BYTES[i] / SAMPLED_SIZE[i] blocks live (about 154 MB in
 * all): ten sites hold 9.6 to 15 MB each, the others 1.6 to 2.9 MB. */
#ifndef SAMPLED_H
#define SAMPLED_H

#include <stddef.h>

#define SAMPLED_NSITES 24
static const size_t SAMPLED_SIZE[SAMPLED_NSITES] = {
    24, 36, 54, 80, 120, 179, 268, 401, 599, 896, 1340, 2003,
    2995, 4478, 6696, 10011, 14968, 22379, 33460, 50027, 74798, 111834, 167208, 250000,
};
static const size_t SAMPLED_BYTES[SAMPLED_NSITES] = {
    13800000, 1600000, 1700000, 10800000, 1800000, 12600000, 1900000, 2000000,
    9600000, 2100000, 15000000, 2200000, 2300000, 12000000, 2400000, 14400000,
    2500000, 2600000, 10200000, 2700000, 13200000, 2800000, 2900000, 11400000,
};
/* Site i is the function "site_NN" (two digits). */
static inline size_t sampled_blocks(int i)
{
    return SAMPLED_BYTES[i] / SAMPLED_SIZE[i];
}

#endif /* SAMPLED_H */
