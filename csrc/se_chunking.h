/*
 * The content-defined chunking rules of docs/format.md 2.1 that se_core.c
 * (se_find_cut) and se_cut.c (the batch search) both apply: which chunk
 * sizes are allowed, and the two masks derived from the average size.
 * Private to the C core: not part of the cffi interface in se_core.h.
 */
#ifndef SE_CHUNKING_H
#define SE_CHUNKING_H

#include <stddef.h>
#include <stdint.h>

static inline int is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static inline unsigned log2_exact(size_t x)
{
    unsigned bits = 0;
    while (x > 1) {
        x >>= 1;
        bits++;
    }
    return bits;
}

/* A u64 with its top n bits set. */
static inline uint64_t top_bits(unsigned n)
{
    return n >= 64 ? ~(uint64_t)0 : ~(~(uint64_t)0 >> n);
}

/* An average chunk size the format allows: a power of two from 256 to 2^31. */
static inline int valid_avg(size_t avg_size)
{
    return avg_size >= 256 && avg_size <= ((size_t)1 << 31) &&
           is_power_of_two(avg_size);
}

/* 64 <= min <= avg <= max <= 2^31, with avg as valid_avg says. */
static inline int valid_sizes(size_t min_size, size_t avg_size, size_t max_size)
{
    return min_size >= 64 && min_size <= avg_size && avg_size <= max_size &&
           max_size <= ((size_t)1 << 31) && valid_avg(avg_size);
}

/*
 * The masks a fingerprint is tested with: the stricter MASK_S (two bits
 * more than log2(avg)) before the average size, the looser MASK_L (two
 * bits fewer) after it.
 */
static inline uint64_t mask_small(size_t avg_size)
{
    return top_bits(log2_exact(avg_size) + 2);
}

static inline uint64_t mask_large(size_t avg_size)
{
    return top_bits(log2_exact(avg_size) - 2);
}

#endif /* SE_CHUNKING_H */
