/*
 * The candidate-scan variants tried for csrc/se_cut.c, side by side, with
 * no Python and no OpenSSL. Each scans every byte of a buffer with the gear
 * hash and tests a mask (22 top bits, rarely passing) at every position.
 *
 *   gcc -O3 -std=c99 benchmarks/cut_variants.c -o cut_variants
 *   ./cut_variants [MiB=4] [rounds=40]
 *
 * Figures are MB/s of this thread's CPU time, best of the interleaved
 * rounds. "loads only" does the two loads per byte (the byte, then its gear
 * value) and an add, with no hashing: an estimate of what any exact scan
 * with one table lookup per byte can reach on the machine.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_VARIANTS 1
#define AVX2 __attribute__((target("avx2")))
#else
#define HAVE_AVX2_VARIANTS 0
#endif

#define UNLIKELY(x) __builtin_expect(!!(x), 0)

static uint64_t sink;
static __attribute__((noinline)) void hit(size_t i) { sink += i; }

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* se_find_cut's loop. */
static __attribute__((noinline)) void plain(const uint8_t *d, size_t n, uint64_t m,
                                            const uint64_t *g, const uint64_t *pair)
{
    uint64_t fp = 0;
    size_t i;
    (void)pair;
    for (i = 0; i < n; i++) {
        fp = (fp << 1) + g[d[i]];
        if (UNLIKELY((fp & m) == 0))
            hit(i);
    }
}

static __attribute__((noinline)) void plain_x4(const uint8_t *d, size_t n, uint64_t m,
                                               const uint64_t *g, const uint64_t *pair)
{
    uint64_t fp = 0;
    size_t i;
    (void)pair;
    for (i = 0; i + 4 <= n; i += 4) {
#define ST(k) fp = (fp << 1) + g[d[i + k]]; if (UNLIKELY((fp & m) == 0)) hit(i + k);
        ST(0) ST(1) ST(2) ST(3)
#undef ST
    }
}

#define STREAMS(NAME, K)                                                       \
    static __attribute__((noinline)) void NAME(const uint8_t *d, size_t n,     \
                                               uint64_t m, const uint64_t *g,  \
                                               const uint64_t *pair)           \
    {                                                                          \
        size_t len = n / K, i;                                                 \
        uint64_t f[K] = {0};                                                   \
        int k;                                                                 \
        (void)pair;                                                            \
        for (i = 0; i < len; i++)                                              \
            for (k = 0; k < K; k++) {                                          \
                f[k] = (f[k] << 1) + g[d[k * len + i]];                        \
                if (UNLIKELY((f[k] & m) == 0))                                 \
                    hit(i);                                                    \
            }                                                                  \
    }
STREAMS(streams2, 2)
STREAMS(streams4, 4)

/* Two bytes a step: W(i+1) = 4 W(i-1) + pair[b0 b1], W(i) = 2 W(i-1) + g[b0]. */
static __attribute__((noinline)) void pair2(const uint8_t *d, size_t n, uint64_t m,
                                            const uint64_t *g, const uint64_t *pair)
{
    size_t len = n / 2, i;
    const uint8_t *p0 = d, *p1 = d + len;
    uint64_t f0 = 0, f1 = 0;
    for (i = 0; i + 2 <= len; i += 2) {
        uint16_t w0, w1;
        uint64_t h0, h1;
        memcpy(&w0, p0 + i, 2);
        memcpy(&w1, p1 + i, 2);
        h0 = (f0 << 1) + g[w0 & 255];
        h1 = (f1 << 1) + g[w1 & 255];
        f0 = (f0 << 2) + pair[w0];
        f1 = (f1 << 2) + pair[w1];
        if (UNLIKELY((h0 & m) == 0))
            hit(i);
        if (UNLIKELY((f0 & m) == 0))
            hit(i + 1);
        if (UNLIKELY((h1 & m) == 0))
            hit(i);
        if (UNLIKELY((f1 & m) == 0))
            hit(i + 1);
    }
}

static __attribute__((noinline)) void loads_only(const uint8_t *d, size_t n, uint64_t m,
                                                 const uint64_t *g, const uint64_t *pair)
{
    size_t len = n / 4, i;
    const uint8_t *p0 = d, *p1 = d + len, *p2 = d + 2 * len, *p3 = d + 3 * len;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    (void)m;
    (void)pair;
    for (i = 0; i + 2 <= len; i += 2) {
        s0 += g[p0[i]];
        s1 += g[p1[i]];
        s2 += g[p2[i]];
        s3 += g[p3[i]];
        s0 += g[p0[i + 1]];
        s1 += g[p1[i + 1]];
        s2 += g[p2[i + 1]];
        s3 += g[p3[i + 1]];
        __asm__("" : "+r"(s0), "+r"(s1), "+r"(s2), "+r"(s3)); /* not vectorised */
    }
    sink += s0 + s1 + s2 + s3;
}

#if HAVE_AVX2_VARIANTS
/* 8 streams; gear values by vpgatherqq; hits folded with vpminud per 64. */
AVX2 static __attribute__((noinline)) void avx2_gather(const uint8_t *d, size_t n, uint64_t m,
                                                       const uint64_t *g, const uint64_t *pair)
{
    size_t len = n / 8, i, j;
    const long long *gl = (const long long *)g;
    __m256i f0 = _mm256_setzero_si256(), f1 = f0, ones = _mm256_set1_epi32(-1), a0, a1;
    __m256i limit = _mm256_set1_epi64x((long long)((~m >> 32) + 1));
    (void)pair;
    for (i = 0; i + 64 <= len; i += 64) {
        a0 = a1 = ones;
        for (j = i; j < i + 64; j++) {
            __m256i i0 = _mm256_set_epi64x(d[3 * len + j], d[2 * len + j], d[len + j], d[j]);
            __m256i i1 = _mm256_set_epi64x(d[7 * len + j], d[6 * len + j], d[5 * len + j],
                                           d[4 * len + j]);
            f0 = _mm256_add_epi64(_mm256_add_epi64(f0, f0), _mm256_i64gather_epi64(gl, i0, 8));
            f1 = _mm256_add_epi64(_mm256_add_epi64(f1, f1), _mm256_i64gather_epi64(gl, i1, 8));
            a0 = _mm256_min_epu32(a0, f0);
            a1 = _mm256_min_epu32(a1, f1);
        }
        a0 = _mm256_cmpgt_epi64(limit, _mm256_srli_epi64(_mm256_min_epu32(a0, a1), 32));
        if (UNLIKELY(!_mm256_testz_si256(a0, a0)))
            hit(i);
    }
}

/* The same with scalar loads of the gear values (what se_cut.c ships). */
AVX2 static __attribute__((noinline)) void avx2_loads(const uint8_t *d, size_t n, uint64_t m,
                                                      const uint64_t *g, const uint64_t *pair)
{
    size_t len = n / 8, i, j;
    const uint8_t *p[8];
    __m256i f0 = _mm256_setzero_si256(), f1 = f0, ones = _mm256_set1_epi32(-1), a0, a1;
    __m256i limit = _mm256_set1_epi64x((long long)((~m >> 32) + 1));
    int k;
    (void)pair;
    for (k = 0; k < 8; k++)
        p[k] = d + (size_t)k * len;
    for (i = 0; i + 64 <= len; i += 64) {
        a0 = a1 = ones;
        for (j = i; j < i + 64; j++) {
            __m256i g0 = _mm256_set_epi64x((long long)g[p[3][j]], (long long)g[p[2][j]],
                                           (long long)g[p[1][j]], (long long)g[p[0][j]]);
            __m256i g1 = _mm256_set_epi64x((long long)g[p[7][j]], (long long)g[p[6][j]],
                                           (long long)g[p[5][j]], (long long)g[p[4][j]]);
            f0 = _mm256_add_epi64(_mm256_add_epi64(f0, f0), g0);
            f1 = _mm256_add_epi64(_mm256_add_epi64(f1, f1), g1);
            a0 = _mm256_min_epu32(a0, f0);
            a1 = _mm256_min_epu32(a1, f1);
        }
        a0 = _mm256_cmpgt_epi64(limit, _mm256_srli_epi64(_mm256_min_epu32(a0, a1), 32));
        if (UNLIKELY(!_mm256_testz_si256(a0, a0)))
            hit(i);
    }
}
#endif

typedef void (*variant_fn)(const uint8_t *, size_t, uint64_t, const uint64_t *,
                           const uint64_t *);

int main(int argc, char **argv)
{
    size_t n = (size_t)(argc > 1 ? atoi(argv[1]) : 4) << 20;
    int rounds = argc > 2 ? atoi(argv[2]) : 40;
    struct { const char *name; variant_fn fn; double best; } v[] = {
        {"plain (se_find_cut loop)", plain, 1e9},
        {"plain, unrolled x4", plain_x4, 1e9},
        {"2 streams", streams2, 1e9},
        {"4 streams", streams4, 1e9},
        {"2 streams, 64K pair table", pair2, 1e9},
#if HAVE_AVX2_VARIANTS
        {"avx2 8 streams, gather", avx2_gather, 1e9},
        {"avx2 8 streams, scalar loads", avx2_loads, 1e9},
#endif
        {"loads only (no hashing)", loads_only, 1e9},
    };
    int count = (int)(sizeof(v) / sizeof(v[0])), r, k;
    uint8_t *data = malloc(n);
    uint64_t *pair = malloc(65536 * sizeof(uint64_t)); /* caller-owned table */
    uint64_t gear[256], x = 88172645463325252ULL, mask = ~(~(uint64_t)0 >> 22);
    size_t i;
    if (data == NULL || pair == NULL)
        return 1;
    for (i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        data[i] = (uint8_t)(x >> 24);
    }
    for (i = 0; i < 256; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        gear[i] = x * 0x2545F4914F6CDD1DULL;
    }
    for (i = 0; i < 65536; i++)
        pair[i] = (gear[i & 255] << 1) + gear[i >> 8];
#if HAVE_AVX2_VARIANTS
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2"))
        count -= 2, v[5] = v[7];
#endif
    for (r = 0; r < rounds; r++)
        for (k = 0; k < count; k++) {
            double t = cpu_now();
            v[k].fn(data, n, mask, gear, pair);
            t = cpu_now() - t;
            if (t < v[k].best)
                v[k].best = t;
        }
    for (k = 0; k < count; k++)
        printf("%-32s %6.0f MB/s  %5.2fx\n", v[k].name, (double)n / v[k].best / 1e6,
               v[0].best / v[k].best);
    free(data);
    free(pair);
    return (int)(sink & 0);
}
