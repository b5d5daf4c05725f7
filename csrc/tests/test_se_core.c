/*
 * Standalone checks of csrc/se_core.c, without Python.
 *
 * Build (from the project folder):
 *   gcc -std=c99 -Wall -Wextra -Werror -Icsrc csrc/tests/test_se_core.c \
 *       csrc/se_core.c csrc/se_cut.c $(pkg-config --cflags --libs libcrypto) \
 *       -o test_se_core
 *
 * Prints one line per failed check and ends with "N passed, M failed";
 * the exit status is 0 only when nothing failed.
 */
#include "se_core.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

static unsigned passed;
static unsigned failed;

static void check(int ok, const char *what, int line)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL line %d: %s\n", line, what);
    }
}

#define CHECK(cond) check((cond) ? 1 : 0, #cond, __LINE__)

/* Decode hex text into out (at most cap bytes); returns the byte count. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (hex[0] != '\0' && hex[1] != '\0' && n < cap) {
        unsigned value = 0;
        int k;
        for (k = 0; k < 2; k++) {
            char c = hex[k];
            value <<= 4;
            if (c >= '0' && c <= '9')
                value |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                value |= (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                value |= (unsigned)(c - 'A' + 10);
        }
        out[n++] = (uint8_t)value;
        hex += 2;
    }
    return n;
}

/* 1 when buf[0..len) equals the bytes written as hex. */
static int equals_hex(const uint8_t *buf, size_t len, const char *hex)
{
    uint8_t expect[256];
    size_t n;
    if (strlen(hex) != 2 * len || len > sizeof(expect))
        return 0;
    n = unhex(hex, expect, sizeof(expect));
    return n == len && memcmp(buf, expect, len) == 0;
}

/* Deterministic filler: a xorshift64 stream. */
static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ULL;
    size_t i;
    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)(x >> 24);
    }
}

/* ---------------------------------------------------------------- hashes */

static void test_sha256(void)
{
    uint8_t out[32];

    CHECK(se_sha256((const uint8_t *)"abc", 3, out) == SE_OK);
    CHECK(equals_hex(out, 32,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

    /* An empty message may come as NULL. */
    CHECK(se_sha256(NULL, 0, out) == SE_OK);
    CHECK(equals_hex(out, 32,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));

    CHECK(se_sha256(NULL, 1, out) == SE_ERR_ARGUMENT);
    CHECK(se_sha256((const uint8_t *)"abc", 3, NULL) == SE_ERR_ARGUMENT);
}

static void test_hmac(void)
{
    uint8_t out[32];
    uint8_t key[131];
    static const char case6[] =
        "Test Using Larger Than Block-Size Key - Hash Key First";

    /* RFC 4231 test case 2. */
    CHECK(se_hmac_sha256((const uint8_t *)"Jefe", 4,
                         (const uint8_t *)"what do ya want for nothing?", 28,
                         out) == SE_OK);
    CHECK(equals_hex(out, 32,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));

    /* RFC 4231 test case 6: a key longer than the block. */
    memset(key, 0xaa, sizeof(key));
    CHECK(se_hmac_sha256(key, sizeof(key), (const uint8_t *)case6,
                         sizeof(case6) - 1, out) == SE_OK);
    CHECK(equals_hex(out, 32,
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));

    /* Empty key and empty message, both as NULL. */
    CHECK(se_hmac_sha256(NULL, 0, NULL, 0, out) == SE_OK);
    CHECK(equals_hex(out, 32,
        "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"));

    CHECK(se_hmac_sha256(NULL, 1, key, 1, out) == SE_ERR_ARGUMENT);
    CHECK(se_hmac_sha256(key, 1, NULL, 1, out) == SE_ERR_ARGUMENT);
    CHECK(se_hmac_sha256(key, 1, key, 1, NULL) == SE_ERR_ARGUMENT);
}

/* ------------------------------------------------------------ AES-256-CTR */

static const char F55_KEY[] =
    "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
static const char F55_CTR[] = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
static const char F55_PLAIN[] =
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710";
static const char F55_CIPHER[] =
    "601ec313775789a5b7a7f504bbf3d228"
    "f443e3ca4d62b59aca84e990cacaf5c5"
    "2b0930daa23de94ce87017ba2d84988d"
    "dfc9c58db67aada613c2dd08457941a6";

static void test_aes256_ctr(void)
{
    uint8_t key[32], iv[16], plain[64], out[64], buf[64];

    unhex(F55_KEY, key, sizeof(key));
    unhex(F55_CTR, iv, sizeof(iv));
    unhex(F55_PLAIN, plain, sizeof(plain));

    /* SP 800-38A F.5.5 CTR-AES256.Encrypt */
    CHECK(se_aes256_ctr(key, iv, plain, sizeof(plain), out) == SE_OK);
    CHECK(equals_hex(out, 64, F55_CIPHER));

    /* F.5.6 CTR-AES256.Decrypt */
    CHECK(se_aes256_ctr(key, iv, out, sizeof(out), buf) == SE_OK);
    CHECK(memcmp(buf, plain, sizeof(plain)) == 0);

    /* In place: out == in. */
    memcpy(buf, plain, sizeof(plain));
    CHECK(se_aes256_ctr(key, iv, buf, sizeof(buf), buf) == SE_OK);
    CHECK(equals_hex(buf, 64, F55_CIPHER));

    /* A partial block is a prefix of the key stream. */
    memset(out, 0, sizeof(out));
    CHECK(se_aes256_ctr(key, iv, plain, 21, out) == SE_OK);
    CHECK(equals_hex(out, 21, "601ec313775789a5b7a7f504bbf3d228f443e3ca4d"));
    CHECK(out[21] == 0);

    /* The 128-bit counter wraps from 2^128 - 1 to 0 (vectors ctr_wrap). */
    memset(key, 0, sizeof(key));
    unhex("fffffffffffffffffffffffffffffffe", iv, sizeof(iv));
    memset(buf, 0, sizeof(buf));
    CHECK(se_aes256_ctr(key, iv, buf, sizeof(buf), buf) == SE_OK);
    CHECK(equals_hex(buf, 64,
        "7bfe9d876c6d63c1d035da8fe21c409dacdace8078a32b1a182bfa4987ca1347"
        "dc95c078a2408989ad48a21492842087530f8afbc74536b9a963b4f1c4cb738b"));

    /* Zero length needs no buffers. */
    CHECK(se_aes256_ctr(key, iv, NULL, 0, NULL) == SE_OK);
    CHECK(se_aes256_ctr(NULL, iv, plain, 16, out) == SE_ERR_ARGUMENT);
    CHECK(se_aes256_ctr(key, NULL, plain, 16, out) == SE_ERR_ARGUMENT);
    CHECK(se_aes256_ctr(key, iv, NULL, 16, out) == SE_ERR_ARGUMENT);
    CHECK(se_aes256_ctr(key, iv, plain, 16, NULL) == SE_ERR_ARGUMENT);
}

/* ------------------------------------------------------------------ gear */

static void test_gear(void)
{
    static se_gear_table table, again, keyed;
    uint8_t secret[6];

    memcpy(secret, "secret", 6);
    CHECK(se_gear_init(&table, NULL, 0) == SE_OK);
    /* gear_first4 / gear_255 of the vectors: the u64 values in hex. */
    CHECK(table.gear[0] == UINT64_C(0x4defcf367d7ede03));
    CHECK(table.gear[1] == UINT64_C(0x1e396f86b2906a04));
    CHECK(table.gear[255] == UINT64_C(0x68333e6046077332));

    CHECK(se_gear_init(&again, secret, 0) == SE_OK);
    CHECK(memcmp(&table, &again, sizeof(table)) == 0);

    CHECK(se_gear_init(&keyed, secret, sizeof(secret)) == SE_OK);
    CHECK(keyed.gear[0] == UINT64_C(0x5dc93608c6a3714a));
    CHECK(keyed.gear[3] == UINT64_C(0xc07d3c77ebcec189));

    CHECK(se_gear_init(NULL, NULL, 0) == SE_ERR_ARGUMENT);
    CHECK(se_gear_init(&again, NULL, 3) == SE_ERR_ARGUMENT);
}

/* ------------------------------------------------------------- find_cut */

/* SPEC section 1 for a complete input, written out independently. */
static size_t reference_cut(const se_gear_table *table, const uint8_t *data,
                            size_t len, size_t min_size, size_t avg_size,
                            size_t max_size)
{
    unsigned bits = 0;
    uint64_t mask_s, mask_l, fp = 0;
    size_t normal, end, i;

    if (len <= min_size)
        return len;
    while (((size_t)1 << bits) < avg_size)
        bits++;
    mask_s = ~(uint64_t)0 << (64 - (bits + 2));
    mask_l = ~(uint64_t)0 << (64 - (bits - 2));
    normal = avg_size < len ? avg_size : len;
    end = max_size < len ? max_size : len;
    for (i = min_size; i < end; i++) {
        fp = (fp << 1) + table->gear[data[i]];
        if ((fp & (i < normal ? mask_s : mask_l)) == 0)
            return i + 1;
    }
    return end;
}

static void test_find_cut(void)
{
    static se_gear_table table;
    static uint8_t data[4096];
    size_t cut = 12345;
    size_t len;
    unsigned seed;
    int mismatches = 0, undecided_ok = 1, saw_cut_before_max = 0;

    CHECK(se_gear_init(&table, NULL, 0) == SE_OK);

    /* Empty input: nothing to cut, whether or not more may follow. */
    CHECK(se_find_cut(&table, NULL, 0, 64, 256, 1024, 1, &cut) == SE_OK);
    CHECK(cut == 0);
    cut = 12345;
    CHECK(se_find_cut(&table, NULL, 0, 64, 256, 1024, 0, &cut) == SE_OK);
    CHECK(cut == 0);

    /* len <= min: the whole input at the end, undecided otherwise. */
    fill(data, sizeof(data), 1);
    CHECK(se_find_cut(&table, data, 64, 64, 256, 1024, 1, &cut) == SE_OK);
    CHECK(cut == 64);
    CHECK(se_find_cut(&table, data, 64, 64, 256, 1024, 0, &cut) == SE_OK);
    CHECK(cut == 0);
    CHECK(se_find_cut(&table, data, 1, 64, 256, 1024, 1, &cut) == SE_OK);
    CHECK(cut == 1);

    /* Bad parameters. */
    CHECK(se_find_cut(&table, data, 100, 64, 300, 1024, 1, &cut) == SE_ERR_ARGUMENT);
    CHECK(se_find_cut(&table, data, 100, 32, 256, 1024, 1, &cut) == SE_ERR_ARGUMENT);
    CHECK(se_find_cut(&table, data, 100, 63, 256, 1024, 1, &cut) == SE_ERR_ARGUMENT);
    CHECK(se_find_cut(&table, data, 100, 64, 128, 1024, 1, &cut) == SE_ERR_ARGUMENT);
    CHECK(se_find_cut(&table, data, 100, 64, 0, 1024, 1, &cut) == SE_ERR_ARGUMENT);
    CHECK(se_find_cut(&table, data, 100, 512, 256, 1024, 1, &cut) == SE_ERR_ARGUMENT);
    CHECK(se_find_cut(&table, data, 100, 64, 512, 256, 1, &cut) == SE_ERR_ARGUMENT);
    if (sizeof(size_t) > 4) {
        size_t big = ((size_t)1 << 31) + 1;
        CHECK(se_find_cut(&table, data, 100, 64, 256, big, 1, &cut) == SE_ERR_ARGUMENT);
    }
    CHECK(se_find_cut(NULL, data, 100, 64, 256, 1024, 1, &cut) == SE_ERR_ARGUMENT);
    CHECK(se_find_cut(&table, NULL, 100, 64, 256, 1024, 1, &cut) == SE_ERR_ARGUMENT);
    CHECK(se_find_cut(&table, data, 100, 64, 256, 1024, 1, NULL) == SE_ERR_ARGUMENT);

    /* The largest settings allowed are accepted. */
    CHECK(se_find_cut(&table, data, 100, 64, (size_t)1 << 31, (size_t)1 << 31, 1,
                      &cut) == SE_OK);
    CHECK(cut == 100);

    /* Against the reference on pseudo-random data, many lengths. */
    for (seed = 1; seed <= 40; seed++) {
        fill(data, sizeof(data), seed);
        for (len = 0; len <= 1100; len += 7) {
            size_t expect = reference_cut(&table, data, len, 64, 256, 1024);
            size_t got_end = 0, got_more = 0;
            if (se_find_cut(&table, data, len, 64, 256, 1024, 1, &got_end) != SE_OK ||
                se_find_cut(&table, data, len, 64, 256, 1024, 0, &got_more) != SE_OK) {
                mismatches++;
                continue;
            }
            if (got_end != expect)
                mismatches++;
            /* Undecided only while a later byte could still move the cut. */
            if (got_more == 0) {
                if (!(expect == len && len < 1024))
                    undecided_ok = 0;
            } else if (got_more != expect) {
                mismatches++;
            } else if (got_more < len && got_more < 1024) {
                saw_cut_before_max = 1;
            }
        }
    }
    CHECK(mismatches == 0);
    CHECK(undecided_ok);
    CHECK(saw_cut_before_max);

    /* max bytes are always enough to decide. */
    memset(data, 0, sizeof(data));
    CHECK(se_find_cut(&table, data, sizeof(data), 64, 256, 1024, 0, &cut) == SE_OK);
    CHECK(cut == reference_cut(&table, data, sizeof(data), 64, 256, 1024));
    CHECK(cut > 64 && cut <= 1024);
}

/* ------------------------------------------------------ cut scan (se_cut.c) */

/* All cuts by repeated se_find_cut; returns the count, *used the bytes cut. */
static size_t find_cut_all(const se_gear_table *table, const uint8_t *data,
                           size_t len, size_t min_size, size_t avg_size,
                           size_t max_size, int at_end, uint64_t *out,
                           size_t *used)
{
    size_t s = 0, n = 0, cut = 0;
    while (s < len &&
           se_find_cut(table, data + s, len - s, min_size, avg_size, max_size,
                       at_end, &cut) == SE_OK && cut != 0) {
        out[n++] = cut;
        s += cut;
    }
    *used = s;
    return n;
}

/* Candidates of [0, len) in three uneven segments, through a small buffer
 * so the resume protocol runs; returns the count or (size_t)-1. */
static size_t scan_in_pieces(int path, const se_gear_table *table,
                             const uint8_t *data, size_t len, size_t avg_size,
                             uint64_t *cands, size_t cap)
{
    size_t bounds[4];
    size_t total = 0;
    int seg;
    bounds[0] = 0;
    bounds[1] = len / 3 + 1 < len ? len / 3 + 1 : len;
    bounds[2] = bounds[1] + 70 < len ? bounds[1] + 70 : len;
    bounds[3] = len;
    for (seg = 0; seg < 3; seg++) {
        size_t at = bounds[seg];
        while (at < bounds[seg + 1]) {
            size_t count = 0, next = 0, room = cap - total < 5 ? cap - total : 5;
            if (se_cut_scan(path, table, data, len, at, bounds[seg + 1], avg_size,
                            cands + total, room, &count, &next) != SE_OK ||
                next < at || (next == at && count == 0 && room != 0))
                return (size_t)-1;
            total += count;
            at = next;
            if (total == cap && at < bounds[seg + 1])
                return (size_t)-1;
        }
    }
    return total;
}

static void test_cut_scan(void)
{
    enum { LEN = 300000 };
    static se_gear_table table;
    static uint8_t data[LEN];
    static uint64_t expect[LEN / 64 + 2], got[LEN / 64 + 2], cands[LEN];
    static const size_t sizes[][3] = {
        {64, 256, 1024}, {64, 256, 256}, {256, 256, 256}, {100, 1024, 4096},
        {64, 16384, 65536}, {4096, 65536, 262144}, {64, 4096, 4096},
    };
    int paths[3] = {SE_CUT_SCALAR, SE_CUT_UNROLLED, SE_CUT_AVX2};
    int kind, z, p, at_end, path = -1;
    int mismatches = 0, protocol_ok = 1, paths_run = 0;
    size_t count = 0, used = 0, next = 0, i;

    CHECK(se_gear_init(&table, NULL, 0) == SE_OK);
    CHECK(se_cut_select(SE_CUT_AUTO, &path) == SE_OK);
    CHECK(path == SE_CUT_AVX2 || path == SE_CUT_UNROLLED);
    CHECK(strcmp(se_cut_path_name(SE_CUT_SCALAR), "scalar") == 0);
    CHECK(se_cut_select(SE_CUT_SCALAR, &path) == SE_OK && path == SE_CUT_SCALAR);
    CHECK(se_cut_select(99, &path) == SE_ERR_ARGUMENT);
    CHECK(se_cut_select(SE_CUT_AUTO, NULL) == SE_ERR_ARGUMENT);

    for (kind = 0; kind < 4; kind++) {
        /* random; zeros; a short repeating pattern; random with long runs */
        fill(data, LEN, 7);
        if (kind == 1)
            memset(data, 0, LEN);
        for (i = 0; kind == 2 && i < LEN; i++)
            data[i] = (uint8_t)"abcab"[i % 5];
        for (i = 0; kind == 3 && i < LEN; i++)
            if ((i / 5000) % 2)
                data[i] = 0x41;
        for (z = 0; z < (int)(sizeof(sizes) / sizeof(sizes[0])); z++) {
            size_t mn = sizes[z][0], av = sizes[z][1], mx = sizes[z][2];
            for (at_end = 0; at_end <= 1; at_end++) {
                size_t n = find_cut_all(&table, data, LEN, mn, av, mx, at_end,
                                        expect, &used);
                for (p = 0; p < 3; p++) {
                    size_t n_cands, consumed = 0, total = 0;
                    if (se_cut_select(paths[p], &path) != SE_OK)
                        continue; /* not on this CPU */
                    paths_run++;
                    if (se_cut_lengths(paths[p], &table, data, LEN, 0, mn, av, mx,
                                       at_end, got, LEN / 64 + 2, &count,
                                       &consumed) != SE_OK ||
                        count != n || consumed != used ||
                        memcmp(got, expect, n * sizeof(uint64_t)) != 0)
                        mismatches++;
                    n_cands = scan_in_pieces(paths[p], &table, data, LEN, av,
                                             cands, LEN);
                    if (n_cands == (size_t)-1) {
                        protocol_ok = 0;
                        continue;
                    }
                    /* Resolve with room for 3 lengths a call. */
                    consumed = 0;
                    do {
                        if (se_cut_resolve(&table, data, LEN, consumed, cands,
                                           n_cands, mn, av, mx, at_end,
                                           got + total, 3, &count,
                                           &consumed) != SE_OK) {
                            protocol_ok = 0;
                            break;
                        }
                        total += count;
                    } while (count == 3);
                    if (total != n || consumed != used ||
                        memcmp(got, expect, n * sizeof(uint64_t)) != 0)
                        mismatches++;
                }
            }
        }
    }
    CHECK(mismatches == 0);
    CHECK(protocol_ok);
    CHECK(paths_run >= 2 * 4 * 7 * 2);

    /* Arguments. */
    CHECK(se_cut_scan(SE_CUT_AUTO, &table, data, 100, 0, 100, 300, cands, 10,
                      &count, &next) == SE_ERR_ARGUMENT);
    CHECK(se_cut_scan(SE_CUT_AUTO, &table, data, 100, 50, 40, 256, cands, 10,
                      &count, &next) == SE_ERR_ARGUMENT);
    CHECK(se_cut_scan(SE_CUT_AUTO, &table, data, 100, 0, 101, 256, cands, 10,
                      &count, &next) == SE_ERR_ARGUMENT);
    CHECK(se_cut_scan(SE_CUT_AUTO, NULL, data, 100, 0, 100, 256, cands, 10,
                      &count, &next) == SE_ERR_ARGUMENT);
    CHECK(se_cut_scan(SE_CUT_AUTO, &table, data, 100, 0, 100, 256, NULL, 10,
                      &count, &next) == SE_ERR_ARGUMENT);
    CHECK(se_cut_scan(SE_CUT_AUTO, &table, NULL, 0, 0, 0, 256, NULL, 0,
                      &count, &next) == SE_OK);
    CHECK(count == 0 && next == 0);
    CHECK(se_cut_lengths(SE_CUT_AUTO, &table, data, 100, 0, 32, 256, 1024, 1,
                         got, 10, &count, &used) == SE_ERR_ARGUMENT);
    CHECK(se_cut_lengths(SE_CUT_AUTO, &table, data, 100, 101, 64, 256, 1024, 1,
                         got, 10, &count, &used) == SE_ERR_ARGUMENT);
    CHECK(se_cut_lengths(99, &table, data, 100, 0, 64, 256, 1024, 1, got, 10,
                         &count, &used) == SE_ERR_ARGUMENT);
    CHECK(se_cut_lengths(SE_CUT_AUTO, &table, data, 100, 0, 64, 256, 1024, 1,
                         got, 10, &count, &used) == SE_OK);
    CHECK(count == 1 && got[0] <= 100 && used == 100);
    CHECK(se_cut_lengths(SE_CUT_AUTO, &table, NULL, 0, 0, 64, 256, 1024, 1,
                         got, 10, &count, &used) == SE_OK);
    CHECK(count == 0 && used == 0);
    cands[0] = 10 << 1;
    cands[1] = 5 << 1;
    CHECK(se_cut_resolve(&table, data, 100, 0, cands, 2, 64, 256, 1024, 1, got,
                         10, &count, &used) == SE_ERR_ARGUMENT);
    cands[0] = 100 << 1;
    CHECK(se_cut_resolve(&table, data, 100, 0, cands, 1, 64, 256, 1024, 1, got,
                         10, &count, &used) == SE_ERR_ARGUMENT);
    CHECK(se_cut_resolve(&table, data, 100, 0, NULL, 1, 64, 256, 1024, 1, got,
                         10, &count, &used) == SE_ERR_ARGUMENT);
}

/* ------------------------------------------------------------ seal/open */

static void test_key_seed_and_seal_abc(void)
{
    uint8_t seed[32], content[4], name[32], payload[4];
    uint8_t secret[6];

    memcpy(secret, "secret", 6);
    CHECK(se_key_seed(NULL, 0, 0, (const uint8_t *)"abc", 3, seed) == SE_OK);
    CHECK(equals_hex(seed, 32,
        "ade3b27aace62e5066df78ed38efe05550088992e5762a347c86c1e90d868157"));
    CHECK(se_key_seed(secret, sizeof(secret), 0, (const uint8_t *)"abc", 3,
                      name) == SE_OK);
    CHECK(equals_hex(name, 32,
        "fd9d28064c3696636dc28348af9fea2fe96e0b48dcac234f8e022883d11c5563"));

    /* A one-chunk file: both neighbours are the chunk itself. */
    CHECK(se_seal(seed, seed, seed, 0, (const uint8_t *)"abc", 3, content,
                  name) == SE_OK);
    CHECK(equals_hex(content, 4, "c5c90c21"));
    CHECK(equals_hex(name, 32,
        "37a583f48f4309744173bb5fcb93c9823d4fa31ee2986ce31ff9556121622cb3"));
    CHECK(se_open(seed, seed, seed, content, 4, name, payload) == SE_OK);
    CHECK(memcmp(payload, "\0abc", 4) == 0);

    CHECK(se_key_seed(NULL, 1, 0, NULL, 0, seed) == SE_ERR_ARGUMENT);
    CHECK(se_key_seed(NULL, 0, 0, NULL, 1, seed) == SE_ERR_ARGUMENT);
    CHECK(se_key_seed(NULL, 0, 0, NULL, 0, NULL) == SE_ERR_ARGUMENT);
}

/* Seal a body of len bytes, open it (into a copy and in place), compare. */
static void round_trip(size_t len, uint8_t kind)
{
    uint8_t seed[32], prev1[32], prev2[32], name[32];
    uint8_t *body = malloc(len ? len : 1);
    uint8_t *content = malloc(len + 1);
    uint8_t *payload = malloc(len + 1);
    int ok;

    if (body == NULL || content == NULL || payload == NULL) {
        CHECK(!"out of memory");
        free(body);
        free(content);
        free(payload);
        return;
    }
    fill(body, len, (uint64_t)len + 77);
    fill(seed, 32, 11);
    fill(prev1, 32, 12);
    fill(prev2, 32, 13);

    ok = se_seal(seed, prev1, prev2, kind, len ? body : NULL, len, content,
                 name) == SE_OK;
    CHECK(ok);
    if (ok) {
        uint8_t actual[32];
        CHECK(se_sha256(content, len + 1, actual) == SE_OK &&
              memcmp(actual, name, 32) == 0);
        CHECK(se_open(seed, prev1, prev2, content, len + 1, name, payload) ==
              SE_OK);
        CHECK(payload[0] == kind && memcmp(payload + 1, body, len) == 0);

        /* In place. */
        CHECK(se_open(seed, prev1, prev2, content, len + 1, name, content) ==
              SE_OK);
        CHECK(content[0] == kind && memcmp(content + 1, body, len) == 0);

        /* With other neighbours the pad differs, so the payload does too. */
        if (len >= 16) {
            uint8_t other[32];
            memcpy(other, prev2, 32);
            other[0] ^= 1;
            CHECK(se_seal(seed, prev1, other, kind, body, len, content,
                          actual) == SE_OK);
            CHECK(memcmp(actual, name, 32) != 0);
        }
    }
    free(body);
    free(content);
    free(payload);
}

static void test_seal_open(void)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 65537,
                                   (size_t)1 << 20};
    size_t i;
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        round_trip(sizes[i], (uint8_t)(i & 1));
}

static void test_open_integrity(void)
{
    uint8_t seed[32], name[32], body[100], content[101], out[101];
    static const uint8_t empty_name[32] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
        0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
        0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    size_t bit;
    int all_rejected = 1, untouched = 1;

    fill(seed, 32, 5);
    fill(body, sizeof(body), 6);
    CHECK(se_seal(seed, seed, seed, 0, body, sizeof(body), content, name) ==
          SE_OK);

    for (bit = 0; bit < 8 * sizeof(content); bit += 13) {
        content[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        memset(out, 0x5a, sizeof(out));
        if (se_open(seed, seed, seed, content, sizeof(content), name, out) !=
            SE_ERR_INTEGRITY)
            all_rejected = 0;
        if (out[0] != 0x5a || out[100] != 0x5a)
            untouched = 0;
        content[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK(all_rejected);
    CHECK(untouched);

    name[31] ^= 0x80;
    CHECK(se_open(seed, seed, seed, content, sizeof(content), name, out) ==
          SE_ERR_INTEGRITY);
    name[31] ^= 0x80;
    CHECK(se_open(seed, seed, seed, content, sizeof(content) - 1, name, out) ==
          SE_ERR_INTEGRITY);
    CHECK(se_open(seed, seed, seed, content, sizeof(content), name, out) ==
          SE_OK);

    /* Empty content under the name of the empty string opens to nothing. */
    CHECK(se_open(seed, seed, seed, NULL, 0, empty_name, NULL) == SE_OK);
    CHECK(se_open(seed, seed, seed, NULL, 0, name, NULL) == SE_ERR_INTEGRITY);
}

static void test_seal_open_arguments(void)
{
    uint8_t s[32] = {0}, name[32], body[4] = {1, 2, 3, 4}, out[5];

    CHECK(se_seal(NULL, s, s, 0, body, 4, out, name) == SE_ERR_ARGUMENT);
    CHECK(se_seal(s, NULL, s, 0, body, 4, out, name) == SE_ERR_ARGUMENT);
    CHECK(se_seal(s, s, NULL, 0, body, 4, out, name) == SE_ERR_ARGUMENT);
    CHECK(se_seal(s, s, s, 0, body, 4, NULL, name) == SE_ERR_ARGUMENT);
    CHECK(se_seal(s, s, s, 0, body, 4, out, NULL) == SE_ERR_ARGUMENT);
    CHECK(se_seal(s, s, s, 0, NULL, 4, out, name) == SE_ERR_ARGUMENT);
    CHECK(se_seal(s, s, s, 0, body, SIZE_MAX, out, name) == SE_ERR_ARGUMENT);

    CHECK(se_seal(s, s, s, 0, body, 4, out, name) == SE_OK);
    CHECK(se_open(NULL, s, s, out, 5, name, out) == SE_ERR_ARGUMENT);
    CHECK(se_open(s, NULL, s, out, 5, name, out) == SE_ERR_ARGUMENT);
    CHECK(se_open(s, s, NULL, out, 5, name, out) == SE_ERR_ARGUMENT);
    CHECK(se_open(s, s, s, NULL, 5, name, out) == SE_ERR_ARGUMENT);
    CHECK(se_open(s, s, s, out, 5, NULL, out) == SE_ERR_ARGUMENT);
    CHECK(se_open(s, s, s, out, 5, name, NULL) == SE_ERR_ARGUMENT);
}

/* ---------------------------------------------------------- versions */

static void test_versions(void)
{
    const char *version = se_package_version();

    /* build_native.py passes SE_PACKAGE_VERSION; this bare build does not. */
    CHECK(version != NULL && version[0] != '\0');
    CHECK(se_openssl_build_version() != NULL);
    CHECK(se_openssl_run_version() != NULL);
}

/* ----------------------------------------------------- libcrypto errors */

/* Every OpenSSL error text starts like this. */
#define OPENSSL_ERROR_PREFIX "error:"

/*
 * One SE_ERR_CRYPTO seen through se_last_crypto_error: the text names
 * OpenSSL's reason and the queue is empty afterwards. what names the call.
 */
static void expect_reported(int rc, const char *what)
{
    char text[SE_ERROR_TEXT_SIZE];
    int count;

    check(rc == SE_ERR_CRYPTO, what, __LINE__);
    count = se_last_crypto_error(text, sizeof(text));
    check(count >= 1, what, __LINE__);
    check(strncmp(text, OPENSSL_ERROR_PREFIX,
                  strlen(OPENSSL_ERROR_PREFIX)) == 0, what, __LINE__);
    /* A failed algorithm fetch: 3.0 says unsupported, later ones either. */
    check(strstr(text, "unsupported") != NULL ||
          strstr(text, "fetch failed") != NULL, what, __LINE__);
    check(ERR_peek_error() == 0, what, __LINE__);
    check(se_last_crypto_error(text, sizeof(text)) == 0 && text[0] == '\0',
          what, __LINE__);
}

static void test_crypto_errors(void)
{
    static se_gear_table table;
    uint8_t key[32] = {0}, iv[16] = {0}, data[16] = {0}, out[32], name[32];
    uint8_t content[17];
    char text[SE_ERROR_TEXT_SIZE];
    char small[8];

    /* An empty queue: 0 and an empty text; a NULL buffer is allowed. */
    ERR_clear_error();
    memset(text, 'x', sizeof(text));
    CHECK(se_last_crypto_error(text, sizeof(text)) == 0);
    CHECK(text[0] == '\0');
    CHECK(se_last_crypto_error(NULL, 0) == 0);
    CHECK(se_last_crypto_error(text, 0) == 0 && text[0] == '\0');

    /* Argument errors and integrity failures queue nothing. */
    CHECK(se_sha256(NULL, 1, out) == SE_ERR_ARGUMENT);
    CHECK(se_seal(NULL, key, key, 0, data, 16, content, name) ==
          SE_ERR_ARGUMENT);
    CHECK(se_open(key, key, key, data, 16, key, content) == SE_ERR_INTEGRITY);
    CHECK(ERR_peek_error() == 0);

    /*
     * A real libcrypto failure: with a default property query that no
     * provider meets, every algorithm fetch fails. The setting belongs to
     * the process's default library context; it is undone below.
     */
    if (!EVP_set_default_properties(NULL, "provider=se-core-test-none")) {
        CHECK(!"EVP_set_default_properties failed");
        ERR_clear_error();
        return;
    }
    expect_reported(se_sha256((const uint8_t *)"abc", 3, out), "se_sha256");
    expect_reported(se_hmac_sha256(key, 32, data, 16, out), "se_hmac_sha256");
    expect_reported(se_aes256_ctr(key, iv, data, 16, out), "se_aes256_ctr");
    expect_reported(se_gear_init(&table, NULL, 0), "se_gear_init");
    expect_reported(se_key_seed(NULL, 0, 0, data, 16, out), "se_key_seed");
    expect_reported(se_seal(key, key, key, 0, data, 16, content, name),
                    "se_seal");
    expect_reported(se_open(key, key, key, content, 17, name, content),
                    "se_open");

    /* A short buffer: cut to fit, NUL-terminated, the queue still drained. */
    CHECK(se_sha256(data, 16, out) == SE_ERR_CRYPTO);
    CHECK(se_last_crypto_error(small, sizeof(small)) >= 1);
    CHECK(strlen(small) == sizeof(small) - 1);
    CHECK(strncmp(small, OPENSSL_ERROR_PREFIX,
                  strlen(OPENSSL_ERROR_PREFIX)) == 0);
    CHECK(ERR_peek_error() == 0);

    /* No buffer: only drains. */
    CHECK(se_aes256_ctr(key, iv, data, 16, out) == SE_ERR_CRYPTO);
    CHECK(se_last_crypto_error(NULL, 0) >= 1);
    CHECK(ERR_peek_error() == 0);

    /* Undo it: everything works again and nothing is left queued. */
    CHECK(EVP_set_default_properties(NULL, "") == 1);
    CHECK(se_sha256((const uint8_t *)"abc", 3, out) == SE_OK);
    CHECK(equals_hex(out, 32,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK(ERR_peek_error() == 0);
}

int main(void)
{
    test_sha256();
    test_hmac();
    test_aes256_ctr();
    test_gear();
    test_find_cut();
    test_cut_scan();
    test_key_seed_and_seal_abc();
    test_seal_open();
    test_open_integrity();
    test_seal_open_arguments();
    test_versions();
    /* Last: it changes, then restores, libcrypto's default properties. */
    test_crypto_errors();

    printf("%u passed, %u failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
