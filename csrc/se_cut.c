/*
 * se_cut: many cuts per call, and a candidate scan that can run in pieces
 * (on several threads) and on several bytes at once. See se_core.h.
 *
 * Method. The gear fingerprint shifts left one bit per byte, so a byte's
 * contribution leaves the u64 after 64 steps and the value at position i is
 * the windowed sum
 *
 *     W(i) = sum over k = 0..min(i, 63) of GEAR[data[i - k]] << k   (mod 2^64)
 *
 * which depends only on data[i-63..i]. A "candidate" is a position with
 * W(i) & MASK_L == 0 (MASK_L's bits are a subset of MASK_S's, so every
 * position that passes MASK_S is one too; a candidate records which).
 * Candidates can be found in any segment [a, b) by starting the hash at
 * a - 63, independently of every other segment.
 *
 * se_find_cut restarts fp at 0 at offset min of each chunk, so for the 63
 * positions min .. min+62 its fp is a partial sum, not W(i); from min+63 on
 * it equals W(i). Resolving cuts is therefore a sequential pass that, per
 * chunk, hashes those 63 positions from zero exactly as se_find_cut does and
 * then takes the first candidate at or after min+63 that passes the mask in
 * force there (MASK_S before avg, MASK_L after), with the max cap and the
 * end-of-data rules unchanged. It costs 63 hash steps per chunk plus a walk
 * over the sparse candidate list.
 *
 * Scan paths (all give the same candidates; SE_CUT_SCALAR is the reference):
 *   scalar    one byte at a time, fp = (fp << 1) + gear[b] and a mask test;
 *   unrolled  portable C: 4 independent streams, so their shift-add chains
 *             overlap (the fallback without AVX2, MSVC, aarch64);
 *   avx2      8 streams in two 256-bit registers. Per 64 positions each lane
 *             folds min(hi32(W)) with one vpminud; a lane whose minimum could
 *             pass the mask is rescanned exactly, 64 positions, by the scalar
 *             loop. Gear values come from scalar loads (AVX2 gathers were
 *             2x slower on the AMD EPYC this was tuned on).
 * A block is LANES streams of `steps` positions each (a multiple of SUB);
 * each stream first hashes the 63 bytes before its first position.
 *
 * What bounds the speed: every position needs its own 64-bit table lookup
 * (the top bits of W mix all 64 bytes through carries, so no cheaper exact
 * test exists), i.e. one load per byte plus getting the byte. On the EPYC
 * measured, a loop doing only those loads (no hashing) runs at ~1.2 bytes per
 * cycle and the plain loop at ~0.95; the fast paths reach ~1.1-1.2. A
 * two-byte step with a 64K-entry (512 KiB) pair table was tried and ran at
 * about half the plain loop's speed: its lookups miss L1. The larger gains
 * come from skipping the min bytes of each chunk (se_cut_lengths) and from
 * scanning segments on several threads (se_cut_scan + se_cut_resolve).
 *
 * No global mutable state: everything is on caller buffers and the stack.
 */
#include "se_core.h"
#include "se_chunking.h"

#include <string.h>

/* Define SE_CUT_NO_AVX2 to build the portable paths only. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(SE_CUT_NO_AVX2)
#define SE_CUT_X86_AVX2 1
#include <immintrin.h>
#define SE_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define SE_CUT_X86_AVX2 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SE_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define SE_UNLIKELY(x) (x)
#define SE_NOINLINE __declspec(noinline)
#else
#define SE_UNLIKELY(x) (x)
#define SE_NOINLINE
#endif

#define WINDOW 63          /* bytes before a position that W(i) depends on */
#define SUB 64             /* positions per sub-block: one flag bit */
#define MAX_STEPS (64 * SUB) /* positions per stream per block: one u64 of flags */
#define MIN_STEPS 256
#define LANES 8
#define VECTOR_MIN_BITS 12 /* below this, candidates are too dense to skip */

/* ---------------------------------------------------------------- helpers */

static unsigned lowest_bit(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(x);
#else
    unsigned n = 0;
    while ((x & 1) == 0) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

/* ------------------------------------------------------- exact (scalar) */

#define EXACT_STEP(k)                                                       \
    do {                                                                    \
        fp = (fp << 1) + gear[data[i + (k)]];                               \
        if (SE_UNLIKELY((fp & mask) == 0))                                  \
            return i + (k);                                                 \
    } while (0)

/*
 * First position i in [a, b) with W(i) & mask == 0, else b. One byte at a
 * time, in order; unrolled by four, which makes its speed independent of
 * where the compiler happens to place the loop (the one-byte loop ran at
 * 2.0 or 3.0 GB/s depending on the build).
 */
static size_t exact_first(const uint64_t *gear, const uint8_t *data,
                          size_t a, size_t b, uint64_t mask)
{
    uint64_t fp = 0;
    size_t i = a > WINDOW ? a - WINDOW : 0;

    for (; i < a; i++)
        fp = (fp << 1) + gear[data[i]];
    for (; b - i >= 4; i += 4) {
        EXACT_STEP(0);
        EXACT_STEP(1);
        EXACT_STEP(2);
        EXACT_STEP(3);
    }
    for (; i < b; i++)
        EXACT_STEP(0);
    return b;
}

#undef EXACT_STEP

typedef struct {
    uint64_t mask_l, mask_s;
    uint64_t *out;
    size_t cap, count;
} cand_sink;

/*
 * Append the candidates in [a, b) to the sink. Returns b, or the position of
 * the first candidate that did not fit (everything before it is done).
 */
static size_t exact_list(const uint64_t *gear, const uint8_t *data,
                         size_t a, size_t b, cand_sink *sink)
{
    uint64_t fp = 0;
    const uint64_t mask_l = sink->mask_l;
    size_t i = a > WINDOW ? a - WINDOW : 0;

    for (; i < a; i++)
        fp = (fp << 1) + gear[data[i]];
    for (;;) {
        /* The same tight loop as exact_first; leave it only on a hit. */
        for (; i < b; i++) {
            fp = (fp << 1) + gear[data[i]];
            if (SE_UNLIKELY((fp & mask_l) == 0))
                break;
        }
        if (i == b)
            return b;
        if (sink->count == sink->cap)
            return i;
        sink->out[sink->count++] =
            ((uint64_t)i << 1) | (uint64_t)((fp & sink->mask_s) == 0);
        i++;
    }
}

/* ------------------------------------------------------------ blocks */

/*
 * A block: stream k covers positions base + k*steps .. base + (k+1)*steps - 1
 * (base >= WINDOW, steps a multiple of SUB, at most MAX_STEPS). On return,
 * bit t of flags[k] is set when sub-block t of stream k may hold a position
 * with W & mask == 0 (nbits = the number of bits in mask). Unset bits are
 * certain: no such position there.
 */
typedef void (*block_fn)(const uint64_t *gear, const uint8_t *data,
                         size_t base, size_t steps, uint64_t mask,
                         unsigned nbits, uint64_t flags[LANES]);

/*
 * Marks a hit. Out of line so the compiler keeps the (rarely taken) branch
 * in the caller instead of turning every test into a conditional move.
 */
static SE_NOINLINE void mark_hit(uint64_t *flag, uint64_t bit)
{
    *flag |= bit;
}

#define UNROLLED_STEP(j)                                                    \
    do {                                                                    \
        f0 = (f0 << 1) + gear[p0[j]];                                       \
        f1 = (f1 << 1) + gear[p1[j]];                                       \
        f2 = (f2 << 1) + gear[p2[j]];                                       \
        f3 = (f3 << 1) + gear[p3[j]];                                       \
        if (SE_UNLIKELY((f0 & mask) == 0))                                  \
            mark_hit(&h[0], bit);                                           \
        if (SE_UNLIKELY((f1 & mask) == 0))                                  \
            mark_hit(&h[1], bit);                                           \
        if (SE_UNLIKELY((f2 & mask) == 0))                                  \
            mark_hit(&h[2], bit);                                           \
        if (SE_UNLIKELY((f3 & mask) == 0))                                  \
            mark_hit(&h[3], bit);                                           \
    } while (0)

/* Portable: 4 streams at a time, exact mask test per position. */
static void block_unrolled(const uint64_t *gear, const uint8_t *data,
                           size_t base, size_t steps, uint64_t mask,
                           unsigned nbits, uint64_t flags[LANES])
{
    int half;
    (void)nbits;
    for (half = 0; half < LANES; half += 4) {
        const uint8_t *p0 = data + base + (size_t)(half + 0) * steps - WINDOW;
        const uint8_t *p1 = data + base + (size_t)(half + 1) * steps - WINDOW;
        const uint8_t *p2 = data + base + (size_t)(half + 2) * steps - WINDOW;
        const uint8_t *p3 = data + base + (size_t)(half + 3) * steps - WINDOW;
        uint64_t f0 = 0, f1 = 0, f2 = 0, f3 = 0;
        uint64_t h[4] = {0, 0, 0, 0};
        size_t j, t;

        for (j = 0; j < WINDOW; j++) {
            f0 = (f0 << 1) + gear[p0[j]];
            f1 = (f1 << 1) + gear[p1[j]];
            f2 = (f2 << 1) + gear[p2[j]];
            f3 = (f3 << 1) + gear[p3[j]];
        }
        p0 += WINDOW;
        p1 += WINDOW;
        p2 += WINDOW;
        p3 += WINDOW;
        for (t = 0; t < steps / SUB; t++) {
            const uint64_t bit = (uint64_t)1 << t;
            for (j = 0; j < SUB; j += 4) {
                UNROLLED_STEP(j);
                UNROLLED_STEP(j + 1);
                UNROLLED_STEP(j + 2);
                UNROLLED_STEP(j + 3);
            }
            p0 += SUB;
            p1 += SUB;
            p2 += SUB;
            p3 += SUB;
        }
        flags[half + 0] = h[0];
        flags[half + 1] = h[1];
        flags[half + 2] = h[2];
        flags[half + 3] = h[3];
    }
}

#undef UNROLLED_STEP

#if SE_CUT_X86_AVX2

/* Gear values of four streams at step j, as one vector (lane = stream). */
#define AVX2_GEAR4(q0, q1, q2, q3, j)                                      \
    _mm256_set_epi64x((long long)gear[(q3)[j]], (long long)gear[(q2)[j]],  \
                      (long long)gear[(q1)[j]], (long long)gear[(q0)[j]])

/* The same from byte s of four 8-byte words. */
#define AVX2_GEAR4W(s)                                                      \
    _mm256_set_epi64x((long long)gear[(w7 >> (8 * (s))) & 255],             \
                      (long long)gear[(w6 >> (8 * (s))) & 255],             \
                      (long long)gear[(w5 >> (8 * (s))) & 255],             \
                      (long long)gear[(w4 >> (8 * (s))) & 255])

#define AVX2_ADVANCE(g0, g1)                                                \
    do {                                                                    \
        __m256i g0_ = (g0), g1_ = (g1);                                     \
        f0 = _mm256_add_epi64(_mm256_add_epi64(f0, f0), g0_);               \
        f1 = _mm256_add_epi64(_mm256_add_epi64(f1, f1), g1_);               \
        m0 = _mm256_min_epu32(m0, f0);                                      \
        m1 = _mm256_min_epu32(m1, f1);                                      \
    } while (0)

/* Step j + s: streams 0-3 load their byte, streams 4-7 take it from a word
 * (this balances load ports against ALUs; measured ~8% faster than either
 * alone). */
#define AVX2_STEP_MIXED(s)                                                  \
    AVX2_ADVANCE(AVX2_GEAR4(p0, p1, p2, p3, j + (s)), AVX2_GEAR4W(s))

/*
 * Candidate prefilter on the top 32 bits: W & mask == 0 needs
 * hi32(W) < 2^(32 - nbits) (nbits <= 32), or hi32(W) == 0 (nbits > 32).
 * vpminud folds both 32-bit halves of each lane; the low halves are dropped
 * when the lanes are checked (shift right by 32).
 */
SE_TARGET_AVX2
static void block_avx2(const uint64_t *gear, const uint8_t *data,
                       size_t base, size_t steps, uint64_t mask,
                       unsigned nbits, uint64_t flags[LANES])
{
    const uint8_t *p0 = data + base + 0 * steps - WINDOW;
    const uint8_t *p1 = data + base + 1 * steps - WINDOW;
    const uint8_t *p2 = data + base + 2 * steps - WINDOW;
    const uint8_t *p3 = data + base + 3 * steps - WINDOW;
    const uint8_t *p4 = data + base + 4 * steps - WINDOW;
    const uint8_t *p5 = data + base + 5 * steps - WINDOW;
    const uint8_t *p6 = data + base + 6 * steps - WINDOW;
    const uint8_t *p7 = data + base + 7 * steps - WINDOW;
    const __m256i ones = _mm256_set1_epi32(-1);
    const __m256i limit = _mm256_set1_epi64x(
        (long long)((uint64_t)1 << (32 - (nbits < 32 ? nbits : 32))));
    __m256i f0 = _mm256_setzero_si256(), f1 = _mm256_setzero_si256();
    __m256i m0 = ones, m1 = ones;
    uint64_t h[LANES] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j, t;
    int k;

    (void)mask;
    for (j = 0; j < WINDOW; j++)
        AVX2_ADVANCE(AVX2_GEAR4(p0, p1, p2, p3, j), AVX2_GEAR4(p4, p5, p6, p7, j));
    p0 += WINDOW;
    p1 += WINDOW;
    p2 += WINDOW;
    p3 += WINDOW;
    p4 += WINDOW;
    p5 += WINDOW;
    p6 += WINDOW;
    p7 += WINDOW;
    for (t = 0; t < steps / SUB; t++) {
        int lanes;
        m0 = ones;
        m1 = ones;
        for (j = t * SUB; j < (t + 1) * SUB; j += 8) {
            uint64_t w4, w5, w6, w7;
            memcpy(&w4, p4 + j, 8);
            memcpy(&w5, p5 + j, 8);
            memcpy(&w6, p6 + j, 8);
            memcpy(&w7, p7 + j, 8);
            AVX2_STEP_MIXED(0);
            AVX2_STEP_MIXED(1);
            AVX2_STEP_MIXED(2);
            AVX2_STEP_MIXED(3);
            AVX2_STEP_MIXED(4);
            AVX2_STEP_MIXED(5);
            AVX2_STEP_MIXED(6);
            AVX2_STEP_MIXED(7);
        }
        lanes = _mm256_movemask_pd(_mm256_castsi256_pd(
                    _mm256_cmpgt_epi64(limit, _mm256_srli_epi64(m0, 32)))) |
                (_mm256_movemask_pd(_mm256_castsi256_pd(
                    _mm256_cmpgt_epi64(limit, _mm256_srli_epi64(m1, 32)))) << 4);
        if (lanes != 0) {
            for (k = 0; k < LANES; k++)
                if (lanes & (1 << k))
                    h[k] |= (uint64_t)1 << t;
        }
    }
    for (k = 0; k < LANES; k++)
        flags[k] = h[k];
}

#undef AVX2_STEP_MIXED
#undef AVX2_ADVANCE
#undef AVX2_GEAR4W
#undef AVX2_GEAR4

/* libgcc's (or compiler-rt's) constructor fills the CPU model at load time,
 * so this only reads it (and checks the OS saves the YMM registers). */
static int cpu_has_avx2(void)
{
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

#else

static int cpu_has_avx2(void)
{
    return 0;
}

#endif /* SE_CUT_X86_AVX2 */

static block_fn block_for(int path)
{
#if SE_CUT_X86_AVX2
    if (path == SE_CUT_AVX2)
        return block_avx2;
#endif
    if (path == SE_CUT_UNROLLED)
        return block_unrolled;
    return NULL;
}

/* Positions per stream for a block over n positions (0: too short). */
static size_t block_steps(size_t n, size_t most)
{
    size_t steps = n / LANES / SUB * SUB;
    if (steps > most)
        steps = most;
    return steps >= MIN_STEPS ? steps : 0;
}

/* ------------------------------------------------------------ drivers */

/*
 * An exact scan of [a, b) (exact_first or exact_list behind an adapter):
 * returns b when it is done, or the position it stopped at (a hit, or a
 * full sink).
 */
typedef size_t (*exact_fn)(const uint64_t *gear, const uint8_t *data,
                           size_t a, size_t b, void *ctx);

static size_t first_in(const uint64_t *gear, const uint8_t *data,
                       size_t a, size_t b, void *ctx)
{
    return exact_first(gear, data, a, b, *(const uint64_t *)ctx);
}

static size_t list_in(const uint64_t *gear, const uint8_t *data,
                      size_t a, size_t b, void *ctx)
{
    return exact_list(gear, data, a, b, (cand_sink *)ctx);
}

/*
 * [a, b) in blocks of `most` positions per stream (a >= WINDOW): the exact
 * scan runs only on the sub-blocks a block flags, and on what is left after
 * the last whole block. Returns as the exact scan does, at the first place
 * it stops.
 */
static size_t scan_blocks(block_fn block, const uint64_t *gear,
                          const uint8_t *data, size_t a, size_t b,
                          uint64_t mask, unsigned nbits, size_t most,
                          exact_fn exact, void *ctx)
{
    size_t steps;
    while (b > a && (steps = block_steps(b - a, most)) != 0) {
        uint64_t flags[LANES];
        int k;
        block(gear, data, a, steps, mask, nbits, flags);
        for (k = 0; k < LANES; k++) {
            uint64_t f = flags[k];
            while (f != 0) {
                size_t u = a + (size_t)k * steps + (size_t)lowest_bit(f) * SUB;
                size_t next = exact(gear, data, u, u + SUB, ctx);
                if (next < u + SUB)
                    return next;
                f &= f - 1;
            }
        }
        a += LANES * steps;
    }
    return exact(gear, data, a, b, ctx);
}

/* First position in [a, b) with W & mask == 0 (mask has nbits bits), else b. */
static size_t scan_first(int path, const uint64_t *gear, const uint8_t *data,
                         size_t a, size_t b, uint64_t mask, unsigned nbits)
{
    block_fn block = block_for(path);

    if (block != NULL && nbits >= VECTOR_MIN_BITS && a >= WINDOW) {
        /* Blocks of about a quarter of the mean gap between hits, so little
         * is scanned past the first one. */
        size_t most = nbits >= 17 ? MAX_STEPS : ((size_t)1 << nbits) / 32;
        if (most < MIN_STEPS)
            most = MIN_STEPS;
        return scan_blocks(block, gear, data, a, b, mask, nbits, most,
                           first_in, &mask);
    }
    return exact_first(gear, data, a, b, mask);
}

/* Candidates of [a, b) into the sink; returns b or where it stopped (full). */
static size_t scan_list(int path, const uint64_t *gear, const uint8_t *data,
                        size_t a, size_t b, unsigned nbits, cand_sink *sink)
{
    block_fn block = block_for(path);

    if (block != NULL && nbits >= VECTOR_MIN_BITS) {
        if (a < WINDOW) {
            size_t head = b < WINDOW ? b : WINDOW;
            size_t next = exact_list(gear, data, a, head, sink);
            if (next < head)
                return next;
            a = head;
        }
        return scan_blocks(block, gear, data, a, b, sink->mask_l, nbits,
                           MAX_STEPS, list_in, sink);
    }
    return exact_list(gear, data, a, b, sink);
}

/* ------------------------------------------------------------ public */

int se_cut_select(int requested, int *path)
{
    if (path == NULL)
        return SE_ERR_ARGUMENT;
    switch (requested) {
    case SE_CUT_AUTO:
        *path = cpu_has_avx2() ? SE_CUT_AVX2 : SE_CUT_UNROLLED;
        return SE_OK;
    case SE_CUT_SCALAR:
    case SE_CUT_UNROLLED:
        *path = requested;
        return SE_OK;
    case SE_CUT_AVX2:
        if (!cpu_has_avx2())
            return SE_ERR_ARGUMENT;
        *path = requested;
        return SE_OK;
    default:
        return SE_ERR_ARGUMENT;
    }
}

const char *se_cut_path_name(int path)
{
    switch (path) {
    case SE_CUT_AUTO:
        return "auto";
    case SE_CUT_SCALAR:
        return "scalar";
    case SE_CUT_UNROLLED:
        return "unrolled";
    case SE_CUT_AVX2:
        return "avx2";
    default:
        return "unknown";
    }
}

int se_cut_scan(int path, const se_gear_table *table, const uint8_t *data,
                size_t len, size_t start, size_t stop, size_t avg_size,
                uint64_t *cands, size_t cap, size_t *count, size_t *next)
{
    cand_sink sink;
    unsigned bits;
    int rc;

    if (count != NULL)
        *count = 0;
    if (next != NULL)
        *next = start;
    if (table == NULL || count == NULL || next == NULL ||
        (data == NULL && len != 0) || (cands == NULL && cap != 0) ||
        start > stop || stop > len || !valid_avg(avg_size))
        return SE_ERR_ARGUMENT;
    rc = se_cut_select(path, &path);
    if (rc != SE_OK)
        return rc;
    bits = log2_exact(avg_size);
    sink.mask_l = mask_large(avg_size);
    sink.mask_s = mask_small(avg_size);
    sink.out = cands;
    sink.cap = cap;
    sink.count = 0;
    *next = scan_list(path, table->gear, data, start, stop, bits - 2, &sink);
    *count = sink.count;
    return SE_OK;
}

/*
 * The cut loop shared by se_cut_resolve and se_cut_lengths. `find` returns
 * the first position in [a, b) that passes (mask_s before s + avg, mask_l
 * from there), or b; both callers guarantee a >= s + min + WINDOW.
 */
typedef struct {
    const uint64_t *gear;
    const uint8_t *data;
    size_t len, min_size, avg_size, max_size;
    uint64_t mask_s, mask_l;
    unsigned bits;
    int at_end;
    /* candidates (resolve) */
    const uint64_t *cands;
    size_t n_cands, cursor;
    /* scan path (lengths) */
    int path;
} cut_job;

static size_t find_from_candidates(cut_job *job, size_t s, size_t a, size_t b)
{
    const size_t strict_before = s + job->avg_size;
    while (job->cursor < job->n_cands && (job->cands[job->cursor] >> 1) < a)
        job->cursor++;
    for (; job->cursor < job->n_cands; job->cursor++) {
        uint64_t entry = job->cands[job->cursor];
        size_t pos = (size_t)(entry >> 1);
        if (pos >= b)
            break;
        if (pos >= strict_before || (entry & 1) != 0)
            return pos;
    }
    return b;
}

static size_t find_by_scanning(cut_job *job, size_t s, size_t a, size_t b)
{
    size_t normal_end = s + job->avg_size;
    if (a < normal_end) {
        size_t stop = b < normal_end ? b : normal_end;
        size_t hit = scan_first(job->path, job->gear, job->data, a, stop,
                                job->mask_s, job->bits + 2);
        if (hit < stop)
            return hit;
        a = stop;
    }
    if (a < b)
        return scan_first(job->path, job->gear, job->data, a, b,
                          job->mask_l, job->bits - 2);
    return b;
}

static void cut_loop(cut_job *job, int use_candidates, size_t start,
                     uint64_t *cuts, size_t cap, size_t *count, size_t *consumed)
{
    const uint64_t *gear = job->gear;
    const uint8_t *data = job->data;
    size_t s = start, n = 0;

    while (n < cap && s < job->len) {
        size_t r = job->len - s;
        size_t end, exact_end, i, cut = 0;
        uint64_t fp = 0;

        if (r <= job->min_size) {
            if (job->at_end)
                cut = r;
        } else {
            end = r < job->max_size ? r : job->max_size;
            /* The first WINDOW positions after min: fp from zero, as
             * se_find_cut does (here i - s < min + WINDOW <= ... and the
             * mask depends on whether i - s < avg). */
            exact_end = job->min_size + WINDOW < end ? job->min_size + WINDOW : end;
            for (i = s + job->min_size; i < s + exact_end; i++) {
                fp = (fp << 1) + gear[data[i]];
                if ((fp & (i - s < job->avg_size ? job->mask_s : job->mask_l)) == 0) {
                    cut = i - s + 1;
                    break;
                }
            }
            if (cut == 0 && exact_end < end) {
                size_t a = s + exact_end, b = s + end;
                size_t hit = use_candidates ? find_from_candidates(job, s, a, b)
                                            : find_by_scanning(job, s, a, b);
                if (hit < b)
                    cut = hit - s + 1;
            }
            if (cut == 0 && (end == job->max_size || job->at_end))
                cut = end;
        }
        if (cut == 0)
            break;
        cuts[n++] = (uint64_t)cut;
        s += cut;
    }
    *count = n;
    *consumed = s;
}

static int cut_job_init(cut_job *job, const se_gear_table *table,
                        const uint8_t *data, size_t len, size_t start,
                        size_t min_size, size_t avg_size, size_t max_size,
                        int at_end, const uint64_t *cuts, size_t cap,
                        size_t *count, size_t *consumed)
{
    if (count != NULL)
        *count = 0;
    if (consumed != NULL)
        *consumed = start;
    if (table == NULL || count == NULL || consumed == NULL ||
        (data == NULL && len != 0) || (cuts == NULL && cap != 0) ||
        start > len || !valid_sizes(min_size, avg_size, max_size))
        return SE_ERR_ARGUMENT;
    memset(job, 0, sizeof(*job));
    job->gear = table->gear;
    job->data = data;
    job->len = len;
    job->min_size = min_size;
    job->avg_size = avg_size;
    job->max_size = max_size;
    job->bits = log2_exact(avg_size);
    job->mask_s = mask_small(avg_size);
    job->mask_l = mask_large(avg_size);
    job->at_end = at_end;
    return SE_OK;
}

int se_cut_resolve(const se_gear_table *table, const uint8_t *data, size_t len,
                   size_t start, const uint64_t *cands, size_t n_cands,
                   size_t min_size, size_t avg_size, size_t max_size,
                   int at_end, uint64_t *cuts, size_t cap, size_t *count,
                   size_t *consumed)
{
    cut_job job;
    size_t k;
    int rc = cut_job_init(&job, table, data, len, start, min_size, avg_size,
                          max_size, at_end, cuts, cap, count, consumed);
    if (rc != SE_OK)
        return rc;
    if (cands == NULL && n_cands != 0)
        return SE_ERR_ARGUMENT;
    /* Refuse a list that is not strictly increasing or runs past the data. */
    for (k = 0; k < n_cands; k++)
        if ((cands[k] >> 1) >= len ||
            (k > 0 && (cands[k] >> 1) <= (cands[k - 1] >> 1)))
            return SE_ERR_ARGUMENT;
    job.cands = cands;
    job.n_cands = n_cands;
    cut_loop(&job, 1, start, cuts, cap, count, consumed);
    return SE_OK;
}

int se_cut_lengths(int path, const se_gear_table *table, const uint8_t *data,
                   size_t len, size_t start, size_t min_size, size_t avg_size,
                   size_t max_size, int at_end, uint64_t *cuts, size_t cap,
                   size_t *count, size_t *consumed)
{
    cut_job job;
    int rc = cut_job_init(&job, table, data, len, start, min_size, avg_size,
                          max_size, at_end, cuts, cap, count, consumed);
    if (rc != SE_OK)
        return rc;
    rc = se_cut_select(path, &job.path);
    if (rc != SE_OK)
        return rc;
    cut_loop(&job, 0, start, cuts, cap, count, consumed);
    return SE_OK;
}
