/*
 * Byte sampling, shared by both sides: the rate's syntax (MEMTRAIL_SAMPLE,
 * `memtrail run --sample`) and the arithmetic that turns sampled blocks into
 * unbiased estimates. The preload's writer and the analyzer weigh a block
 * with the same functions, so the per-stack figures a sampled snapshot
 * carries are exactly the sums of its blocks' weights.
 *
 * The sampling (preload/record/sample.c): the bytes a thread allocates are a
 * line, and sample points fall on it as a Poisson process of rate 1/mean
 * (exponential gaps of mean `mean` bytes, per thread). A block is sampled
 * when at least one point falls in it: a block of `size` bytes with
 * probability p = 1 - exp(-size/mean), independently of every other block.
 * Each sampled block then stands for 1/p blocks and size/p bytes
 * (Horvitz-Thompson): the sum over the sampled blocks is an unbiased
 * estimate of the sum over all of them, for any set of blocks (a stack, a
 * domain, a leak kind). A block of the mean's size stands for 1.58 blocks;
 * a small one for about mean/size blocks and `mean` bytes.
 *
 * Estimated blocks are fractional: figures that count them are kept in
 * units of 1/MTSAMPLE_UNIT block (mtsample_units) and rounded to blocks when
 * shown (mtsample_blocks); bytes are rounded per block. No libm: the
 * exponential is computed here (the preload links none).
 */
#ifndef MEMTRAIL_SAMPLE_H
#define MEMTRAIL_SAMPLE_H

#include <stdint.h>
#include <strings.h>

#include "memtrail_protocol.h"
#include "memtrail_size.h"

#define MTSAMPLE_UNIT 1024u   /* estimated blocks are counted in 1/1024 block */

/* MEMTRAIL_SAMPLE or --sample: "off", "0", "" or NULL (every allocation:
 * *mean = 0), "on" (MTPROTO_SAMPLE_ON_MEAN), or a size of memtrail_size.h
 * from 1 byte to MTPROTO_SAMPLE_MAX_MEAN. 0, or -1 when invalid. */
static inline int mtsample_parse(const char *s, uint64_t *mean)
{
    uint64_t v;
    if (!s || !*s || !strcasecmp(s, MTPROTO_SAMPLE_OFF)) {
        *mean = 0;
        return 0;
    }
    if (!strcasecmp(s, MTPROTO_SAMPLE_ON)) {
        *mean = MTPROTO_SAMPLE_ON_MEAN;
        return 0;
    }
    if (mtsize_parse(s, &v) < 0 || v > MTPROTO_SAMPLE_MAX_MEAN)
        return -1;
    *mean = v;
    return 0;
}

/* e^-x for x >= 0, to a few ulps: x = k ln 2 + r with |r| <= ln 2 / 2,
 * e^-r by its Taylor series, then times 2^-k. */
static inline double mtsample_exp_neg(double x)
{
    if (!(x < 745.0))
        return 0.0;
    int k = (int)(x * 1.4426950408889634 + 0.5);
    double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    double t = 1.0;
    for (int i = 16; i >= 1; i--)   /* e^-r = 1 - r(1 - r/2(1 - r/3(...))) */
        t = 1.0 - r * t / i;
    union { uint64_t u; double d; } scale;
    while (k > 1000) {   /* 2^-k below the normal range: in two steps */
        scale.u = (uint64_t)(1023 - 1000) << 52;
        t *= scale.d;
        k -= 1000;
    }
    scale.u = (uint64_t)(1023 - k) << 52;
    return t * scale.d;
}

/* The probability that a block of `size` bytes is sampled at mean `mean`:
 * 1 - e^(-size/mean), exact to the last bits for small sizes too. */
static inline double mtsample_prob(uint64_t size, uint64_t mean)
{
    double x = (double)size / (double)mean;
    if (x < 1e-3)   /* 1 - e^-x = x(1 - x/2(1 - x/3(1 - x/4(1 - x/5)))) */
        return x * (1.0 - x / 2 * (1.0 - x / 3 * (1.0 - x / 4 * (1.0 - x / 5))));
    return 1.0 - mtsample_exp_neg(x);
}

/* v rounded, saturated at 2^64 - 1 (a reader may meet any size and mean). */
static inline uint64_t mtsample_round(double v)
{
    return v < 18446744073709549568.0 ? (uint64_t)(v + 0.5) : UINT64_MAX;
}

/* The bytes a sampled block of `size` stands for: size / p, rounded. */
static inline uint64_t mtsample_bytes(uint64_t size, uint64_t mean)
{
    if (size == 0)
        return 0;
    return mtsample_round((double)size / mtsample_prob(size, mean));
}

/* The blocks it stands for, 1 / p, in units of 1/MTSAMPLE_UNIT block. A
 * block of size 0 is never sampled; were it recorded, it counts as one. */
static inline uint64_t mtsample_units(uint64_t size, uint64_t mean)
{
    if (size == 0)
        return MTSAMPLE_UNIT;
    return mtsample_round(MTSAMPLE_UNIT / mtsample_prob(size, mean));
}

/* Units back to blocks, rounded to the nearest. */
static inline uint64_t mtsample_blocks(uint64_t units)
{
    return units / MTSAMPLE_UNIT + (units % MTSAMPLE_UNIT >= MTSAMPLE_UNIT / 2);
}

#endif /* MEMTRAIL_SAMPLE_H */
