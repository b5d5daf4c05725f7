/*
 * se_core: the hot path of self-encryption format v1.
 *
 * Hashing, HMAC and AES-256-CTR come from OpenSSL's libcrypto; this library
 * adds the content-defined cut search and the seal/open steps of one chunk.
 * Every function works on caller-owned buffers, keeps no global mutable
 * state, and returns one of the SE_* status codes below.
 *
 * SE_ERR_CRYPTO means libcrypto failed. OpenSSL's reasons are then on its
 * error queue (per thread); se_last_crypto_error() reads them as text and
 * empties the queue, and should be called on the same thread right after.
 * No other status leaves errors of ours on the queue.
 *
 * Key material (derived keys, IVs, pads, and the buffers that held seeds or
 * content hashes on their way into HMAC) is wiped with OPENSSL_cleanse
 * before a function returns, on every path.
 *
 * The declarations between the cdef markers are read verbatim by cffi
 * (csrc/build_native.py), so they use only plain C that cffi understands.
 */
#ifndef SE_CORE_H
#define SE_CORE_H

#include <stddef.h>
#include <stdint.h>

/* cdef-begin */
#define SE_OK 0
#define SE_ERR_ARGUMENT 1
#define SE_ERR_CRYPTO 2
#define SE_ERR_INTEGRITY 3

#define SE_HASH_SIZE 32
#define SE_IV_SIZE 16

/* Room enough for the text se_last_crypto_error() writes in practice. */
#define SE_ERROR_TEXT_SIZE 512

/* The 256 gear values of section 1, keyed by the convergence secret. */
typedef struct {
    uint64_t gear[256];
} se_gear_table;

/* The OpenSSL version compiled against, and the one loaded at run time. */
const char *se_openssl_build_version(void);
const char *se_openssl_run_version(void);

/* The self-encryption-cffi version this core was built for. */
const char *se_package_version(void);

/*
 * Drain this thread's OpenSSL error queue. Writes its errors, oldest first,
 * as "error:...:reason" text joined by "; " into buf (always NUL-terminated
 * when len > 0, cut short if it does not fit; buf may be NULL when len is 0)
 * and returns how many errors there were: 0 when the queue was empty, in
 * which case buf holds "". Afterwards the queue is empty.
 */
int se_last_crypto_error(char *buf, size_t len);

int se_sha256(const uint8_t *data, size_t len, uint8_t out[SE_HASH_SIZE]);

int se_hmac_sha256(const uint8_t *key, size_t key_len,
                   const uint8_t *data, size_t len,
                   uint8_t out[SE_HASH_SIZE]);

/* AES-256-CTR with a 128-bit big-endian counter; out may equal in. */
int se_aes256_ctr(const uint8_t key[SE_HASH_SIZE],
                  const uint8_t iv[SE_IV_SIZE],
                  const uint8_t *in, size_t len, uint8_t *out);

int se_gear_init(se_gear_table *table,
                 const uint8_t *secret, size_t secret_len);

/*
 * Length of the next chunk at the start of data[0..len).
 * at_end says no more bytes follow. When the cut cannot be decided yet
 * (more bytes could move it), *cut is set to 0.
 */
int se_find_cut(const se_gear_table *table, const uint8_t *data, size_t len,
                size_t min_size, size_t avg_size, size_t max_size,
                int at_end, size_t *cut);

/* ks = HMAC(secret, "self-encryption/1 chunk" || SHA256(kind || body)). */
int se_key_seed(const uint8_t *secret, size_t secret_len, uint8_t kind,
                const uint8_t *body, size_t body_len,
                uint8_t out[SE_HASH_SIZE]);

/*
 * Seal payload (kind || body) of a chunk whose key seed is seed and whose
 * two predecessors have key seeds prev1 (i-1) and prev2 (i-2).
 * out receives body_len + 1 bytes; name receives SHA256(out).
 */
int se_seal(const uint8_t seed[SE_HASH_SIZE],
            const uint8_t prev1[SE_HASH_SIZE],
            const uint8_t prev2[SE_HASH_SIZE], uint8_t kind,
            const uint8_t *body, size_t body_len,
            uint8_t *out, uint8_t name[SE_HASH_SIZE]);

/*
 * Open a stored chunk: check SHA256(in) == name (SE_ERR_INTEGRITY if not),
 * then write the len payload bytes to out; out may equal in.
 */
int se_open(const uint8_t seed[SE_HASH_SIZE],
            const uint8_t prev1[SE_HASH_SIZE],
            const uint8_t prev2[SE_HASH_SIZE], const uint8_t *in, size_t len,
            const uint8_t name[SE_HASH_SIZE], uint8_t *out);
/*
 * Batch cut search and candidate scan (csrc/se_cut.c).
 *
 * A candidate is a position i with W(i) & MASK_L == 0, where W(i) is the
 * gear fingerprint of the (up to) 64 bytes data[i-63..i]; it is stored as the
 * u64 (i << 1) | s, s = 1 when W(i) & MASK_S == 0 too. Positions are offsets
 * from data. Every path gives the same results; SE_CUT_AUTO picks the
 * fastest this CPU runs, SE_CUT_SCALAR is the one-byte-at-a-time reference.
 */
#define SE_CUT_AUTO 0
#define SE_CUT_SCALAR 1
#define SE_CUT_UNROLLED 2
#define SE_CUT_AVX2 3

/* The path a request runs on (SE_ERR_ARGUMENT: unknown or not on this CPU). */
int se_cut_select(int requested, int *path);
const char *se_cut_path_name(int path);

/*
 * Candidates of positions start .. stop-1 (stop <= len), in increasing
 * order, into cands[0..cap). Reads data[start-63 .. stop). *count gets the
 * number written; *next the first position not scanned: stop when done,
 * less when cands filled up (call again from there). Segments can be
 * scanned separately, on separate threads; their lists concatenate.
 */
int se_cut_scan(int path, const se_gear_table *table, const uint8_t *data,
                size_t len, size_t start, size_t stop, size_t avg_size,
                uint64_t *cands, size_t cap, size_t *count, size_t *next);

/*
 * The chunk lengths that repeated se_find_cut calls would give, starting
 * with a chunk at offset start of data[0..len), from the candidates of
 * (at least) positions start+min+63 .. len-1 made with the same avg_size
 * (cands strictly increasing and < len, else SE_ERR_ARGUMENT). Writes up
 * to cap lengths to cuts; *count gets how many, *consumed the offset after
 * the last (call again from there while *count == cap). Stops when the
 * bytes left cannot decide a cut, unless at_end.
 */
int se_cut_resolve(const se_gear_table *table, const uint8_t *data, size_t len,
                   size_t start, const uint64_t *cands, size_t n_cands,
                   size_t min_size, size_t avg_size, size_t max_size,
                   int at_end, uint64_t *cuts, size_t cap, size_t *count,
                   size_t *consumed);

/* se_cut_resolve without a candidate list: scans as it goes. */
int se_cut_lengths(int path, const se_gear_table *table, const uint8_t *data,
                   size_t len, size_t start, size_t min_size, size_t avg_size,
                   size_t max_size, int at_end, uint64_t *cuts, size_t cap,
                   size_t *count, size_t *consumed);
/* cdef-end */

#endif /* SE_CORE_H */
