/* Unit tests of byte sampling's decision (preload/record/sample.c) and its
 * arithmetic (include/memtrail_sample.h): the gaps are exponential with the
 * mean asked for (their mean, and a Kolmogorov-Smirnov bound on their
 * distribution), a block of s bytes is sampled with probability
 * 1 - exp(-s/mean) whatever the sizes around it, exact mode records
 * everything, and the weights and the rate's syntax. Seeds are fixed: the
 * bounds hold for these draws, and were chosen so that they would hold for
 * all but one seed in a thousand or more. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "memtrail_sample.h"
#include "record/sample.h"

/* Kolmogorov-Smirnov: the largest distance between the empirical
 * distribution of n sorted gaps and 1 - exp(-x/mean) at integer x (a gap
 * is ceil of an exponential, so P(gap <= x) = 1 - exp(-x/mean)). */
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double ks_distance(int64_t *g, size_t n, double mean)
{
    qsort(g, n, sizeof(*g), cmp_i64);
    double d = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && g[j] == g[i])
            j++;
        double f = 1 - exp(-(double)g[i] / mean);
        double below = (double)i / n, at = (double)j / n;   /* empirical just below and at g[i] */
        double f_below = 1 - exp(-((double)g[i] - 1) / mean);
        d = fmax(d, fmax(fabs(at - f), fabs(below - f_below)));
        i = j;
    }
    return d;
}

#define NGAPS 200000
static int64_t gaps[NGAPS];

Test(sample, gaps_are_exponential_with_the_mean)
{
    static const uint64_t means[] = {1024, 65536, 524288, 1u << 30};
    for (size_t m = 0; m < sizeof(means) / sizeof(means[0]); m++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            uint64_t st = seed * 0x1234567u;
            double sum = 0;
            for (size_t i = 0; i < NGAPS; i++) {
                gaps[i] = mtp_sample_gap(&st, means[m]);
                cr_assert_geq(gaps[i], 0);
                sum += (double)gaps[i];
            }
            /* ceil adds half a byte on average; the standard error of the
             * mean of n exponentials is mean / sqrt(n) (0.22% here): 5 of them */
            double mean = sum / NGAPS - 0.5;
            cr_assert_lt(fabs(mean / means[m] - 1), 5 / sqrt(NGAPS),
                         "mean %llu, seed %llu: gaps average %.1f", (unsigned long long)means[m],
                         (unsigned long long)seed, mean);
            /* KS: 1.95 / sqrt(n) is the 0.1% critical value */
            double d = ks_distance(gaps, NGAPS, (double)means[m]);
            cr_assert_lt(d, 1.95 / sqrt(NGAPS), "mean %llu, seed %llu: KS distance %.5f",
                         (unsigned long long)means[m], (unsigned long long)seed, d);
        }
    }
}

/* The generator and the logarithm without libm: each gap is
 * ceil(-mean ln u) of the same u computed with libm's log. */
Test(sample, gaps_match_libm)
{
    uint64_t st = 42, mine = 42;
    for (int i = 0; i < 100000; i++) {
        uint64_t z = (mine += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        double u = (double)((z >> 11) + 1) * 0x1p-53;
        double want = ceil(-65536.0 * log(u));
        int64_t got = mtp_sample_gap(&st, 65536);
        /* the two logarithms may differ in the last bits: ceil moves by one at most */
        cr_assert_leq(fabs((double)got - want), 1.0, "draw %d: %lld, libm says %.0f", i,
                      (long long)got, want);
    }
}

/* The decision itself, through the hooks' inline test: per size, the
 * fraction sampled is 1 - exp(-s/mean), with sizes interleaved. */
Test(sample, blocks_are_sampled_with_their_probability)
{
    static const size_t sizes[] = {24, 1000, 16384, 65536, 250000};
    enum { N = sizeof(sizes) / sizeof(sizes[0]), ROUNDS = 400000 };
    uint64_t hits[N] = {0};
    mtp_cfg.sample = 65536;
    for (int r = 0; r < ROUNDS; r++)
        for (size_t k = 0; k < N; k++)
            hits[k] += (uint64_t)mtp_sampled(sizes[k]);
    for (size_t k = 0; k < N; k++) {
        double p = 1 - exp(-(double)sizes[k] / 65536.0);
        double se = sqrt(p * (1 - p) / ROUNDS);
        double got = (double)hits[k] / ROUNDS;
        cr_assert_leq(fabs(got - p), 5 * se + 1e-9, "size %zu: sampled %.5f, expected %.5f",
                      sizes[k], got, p);
    }
    mtp_cfg.sample = 0;
}

Test(sample, exact_mode_records_everything)
{
    mtp_cfg.sample = 0;
    for (size_t s = 0; s < 100000; s += 7)
        cr_assert(mtp_sampled(s));
    cr_assert_eq(mtp_tls_sample_left, 0, "exact mode never counts down");
}

Test(sample, probability_and_weights)
{
    for (double x = 1e-9; x < 800; x *= 1.07) {
        uint64_t mean = 1u << 20;
        uint64_t size = (uint64_t)(x * mean);
        if (!size)
            continue;
        double want = -expm1(-(double)size / mean);
        double got = mtsample_prob(size, mean);
        cr_assert_leq(fabs(got - want), 1e-13 * want, "size %llu: p %.17g, libm %.17g",
                      (unsigned long long)size, got, want);
        cr_assert_leq(fabs(mtsample_exp_neg(x) - exp(-x)), 1e-15 * exp(-x) + 1e-300,
                      "e^-%g", x);
    }
    /* a small block stands for about the mean in bytes, a large one for itself */
    cr_assert_eq(mtsample_bytes(1, 524288), 524289);   /* 1 / (1 - e^(-1/m)) = m + 1/2 + ... */
    cr_assert_eq(mtsample_bytes(1u << 30, 524288), 1u << 30);
    cr_assert_eq(mtsample_units(1u << 30, 524288), MTSAMPLE_UNIT);
    cr_assert_eq(mtsample_units(524288, 524288), 1620);   /* 1024 / (1 - 1/e) = 1619.97 */
    cr_assert_eq(mtsample_blocks(1620), 2);
    cr_assert_eq(mtsample_blocks(1535), 1);
    cr_assert_eq(mtsample_blocks(1536), 2);
    cr_assert_eq(mtsample_bytes(0, 1), 0);
    /* what a hostile file's sizes and means give: saturated, never undefined */
    cr_assert_eq(mtsample_units(1, UINT64_MAX), UINT64_MAX);
    cr_assert_eq(mtsample_bytes(1ull << 62, UINT64_MAX), UINT64_MAX);
    cr_assert_eq(mtsample_bytes(UINT64_MAX, 1), UINT64_MAX);
}

Test(sample, the_rate_s_syntax)
{
    static const struct { const char *s; uint64_t mean; } ok[] = {
        {NULL, 0}, {"", 0}, {"off", 0}, {"OFF", 0}, {"0", 0}, {"on", 524288},
        {"512KiB", 524288}, {"512K", 512000}, {"64KiB", 65536}, {"1", 1}, {"1.5MiB", 1572864},
        {"1TiB", 1ull << 40},
    };
    static const char *const bad[] = {"yes", "-1", "64Q", "1.5", "1025GiB", "2TiB", " 64K"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 7;
        cr_assert_eq(mtsample_parse(ok[i].s, &v), 0, "'%s'", ok[i].s ? ok[i].s : "(null)");
        cr_assert_eq(v, ok[i].mean, "'%s': %llu", ok[i].s ? ok[i].s : "(null)",
                     (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v;
        cr_assert_eq(mtsample_parse(bad[i], &v), -1, "'%s' accepted", bad[i]);
    }
}
