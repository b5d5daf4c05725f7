/*
 * libFuzzer target for the C core (csrc/se_core.c), built by scripts/fuzz.sh
 * with -fsanitize=fuzzer,address,undefined.
 *
 * The first bytes of an input choose the chunk sizes and secrets; the rest
 * is data. Every call must return a status code and stay inside the buffers
 * it was given; seal followed by open must give the payload back; the cut
 * search must return a length within its bounds.
 */
#include "se_core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void trap_unless(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    se_gear_table table;
    uint8_t seeds[3][SE_HASH_SIZE], name[SE_HASH_SIZE], seed[SE_HASH_SIZE];
    size_t min_size, avg_size, max_size, cut = 0, body_len, i;
    uint8_t *sealed, *opened;
    uint8_t kind;

    if (size < 4)
        return 0;
    /* Sizes the spec allows: 64 <= min <= avg <= max, avg a power of two >= 256. */
    avg_size = (size_t)256 << (data[0] % 8);
    min_size = 64 + (data[1] * (avg_size - 64)) / 255;
    max_size = avg_size + (size_t)data[2] * avg_size / 16;
    kind = data[3] & 1;
    data += 4;
    size -= 4;

    trap_unless(se_gear_init(&table, data, size < 16 ? size : 16) == SE_OK);
    trap_unless(se_find_cut(&table, data, size, min_size, avg_size, max_size, 1, &cut) == SE_OK);
    trap_unless(cut <= size && cut <= max_size && (size == 0 || cut > 0));
    trap_unless(se_find_cut(&table, data, size, min_size, avg_size, max_size, 0, &cut) == SE_OK);
    trap_unless(cut <= size && cut <= max_size);
    /* Arguments out of range are refused, never acted on. */
    trap_unless(se_find_cut(&table, data, size, 63, 256, 512, 1, &cut) == SE_ERR_ARGUMENT);
    trap_unless(se_find_cut(&table, data, size, 64, 300, 512, 1, &cut) == SE_ERR_ARGUMENT);

    for (i = 0; i < 3; i++)
        trap_unless(se_sha256(data, size < i ? size : i, seeds[i]) == SE_OK);
    body_len = size;
    trap_unless(se_key_seed(seeds[0], SE_HASH_SIZE, kind, data, body_len, seed) == SE_OK);
    sealed = malloc(body_len + 1);
    opened = malloc(body_len + 1);
    trap_unless(sealed != NULL && opened != NULL);
    trap_unless(se_seal(seed, seeds[1], seeds[2], kind, data, body_len, sealed, name) == SE_OK);
    trap_unless(se_open(seed, seeds[1], seeds[2], sealed, body_len + 1, name, opened) == SE_OK);
    trap_unless(opened[0] == kind && memcmp(opened + 1, data, body_len) == 0);
    /* The input itself as stored content: refused unless it hashes to the name. */
    if (se_open(seed, seeds[1], seeds[2], data, size, name, opened) == SE_OK) {
        uint8_t digest[SE_HASH_SIZE];
        trap_unless(se_sha256(data, size, digest) == SE_OK);
        trap_unless(memcmp(digest, name, SE_HASH_SIZE) == 0);
    }
    free(sealed);
    free(opened);
    return 0;
}
