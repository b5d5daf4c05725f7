/* se_core: see se_core.h. */
#include "se_core.h"
#include "se_chunking.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>

static const char GEAR_LABEL[] = "self-encryption/1 gear";
static const char CHUNK_LABEL[] = "self-encryption/1 chunk";
static const char KEY_LABEL[] = "aes-256-ctr key";
static const char IV_LABEL[] = "aes-256-ctr iv";
static const char PAD_LABEL[] = "pad";

/* EVP_*Update take an int length, so long buffers go in slices. */
#define SE_SLICE ((size_t)1 << 30)

/* build_native.py passes the package version; a bare build says so. */
#ifndef SE_PACKAGE_VERSION
#define SE_PACKAGE_VERSION "unknown (built without SE_PACKAGE_VERSION)"
#endif

const char *se_openssl_build_version(void)
{
    return OPENSSL_VERSION_TEXT;
}

const char *se_openssl_run_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

const char *se_package_version(void)
{
    return SE_PACKAGE_VERSION;
}

/* Append text to the NUL-terminated buf[0..*used), cutting it to fit. */
static void append_text(char *buf, size_t len, size_t *used, const char *text)
{
    size_t room, n;

    if (*used + 1 >= len)
        return;
    room = len - 1 - *used;
    n = strlen(text);
    if (n > room)
        n = room;
    memcpy(buf + *used, text, n);
    *used += n;
    buf[*used] = '\0';
}

/* Take the oldest error off this thread's queue, with its extra text. */
static unsigned long next_error(const char **data, int *flags)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    return ERR_get_error_all(NULL, NULL, NULL, data, flags);
#else
    return ERR_get_error_line_data(NULL, NULL, data, flags);
#endif
}

int se_last_crypto_error(char *buf, size_t len)
{
    unsigned long code;
    const char *data = NULL;
    int flags = 0;
    int count = 0;
    size_t used = 0;

    if (buf == NULL)
        len = 0;
    if (len > 0)
        buf[0] = '\0';
    while ((code = next_error(&data, &flags)) != 0) {
        char text[256];

        if (count < INT_MAX)
            count++;
        if (len == 0)
            continue;
        ERR_error_string_n(code, text, sizeof(text));
        if (count > 1)
            append_text(buf, len, &used, "; ");
        append_text(buf, len, &used, text);
        if ((flags & ERR_TXT_STRING) && data != NULL && data[0] != '\0') {
            append_text(buf, len, &used, " (");
            append_text(buf, len, &used, data);
            append_text(buf, len, &used, ")");
        }
    }
    return count;
}

int se_sha256(const uint8_t *data, size_t len, uint8_t out[SE_HASH_SIZE])
{
    if ((data == NULL && len != 0) || out == NULL)
        return SE_ERR_ARGUMENT;
    if (!EVP_Digest(len ? data : (const uint8_t *)"", len, out, NULL,
                    EVP_sha256(), NULL))
        return SE_ERR_CRYPTO;
    return SE_OK;
}

int se_hmac_sha256(const uint8_t *key, size_t key_len,
                   const uint8_t *data, size_t len,
                   uint8_t out[SE_HASH_SIZE])
{
    unsigned int out_len = 0;
    static const uint8_t empty[1] = {0};

    if ((key == NULL && key_len != 0) || (data == NULL && len != 0) ||
        out == NULL || key_len > INT_MAX)
        return SE_ERR_ARGUMENT;
    if (HMAC(EVP_sha256(), key_len ? key : empty, (int)key_len,
             len ? data : empty, len, out, &out_len) == NULL ||
        out_len != SE_HASH_SIZE)
        return SE_ERR_CRYPTO;
    return SE_OK;
}

/* Run an already initialised CTR context over len bytes. */
static int ctr_update(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t len,
                      uint8_t *out)
{
    while (len > 0) {
        size_t slice = len < SE_SLICE ? len : SE_SLICE;
        int written = 0;
        if (!EVP_EncryptUpdate(ctx, out, &written, in, (int)slice) ||
            (size_t)written != slice)
            return SE_ERR_CRYPTO;
        in += slice;
        out += slice;
        len -= slice;
    }
    return SE_OK;
}

static EVP_CIPHER_CTX *ctr_start(const uint8_t key[SE_HASH_SIZE],
                                 const uint8_t iv[SE_IV_SIZE])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return NULL;
    if (!EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), NULL, key, iv)) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int se_aes256_ctr(const uint8_t key[SE_HASH_SIZE],
                  const uint8_t iv[SE_IV_SIZE],
                  const uint8_t *in, size_t len, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx;
    int rc;

    if (key == NULL || iv == NULL || ((in == NULL || out == NULL) && len != 0))
        return SE_ERR_ARGUMENT;
    if (len == 0)
        return SE_OK;
    ctx = ctr_start(key, iv);
    if (ctx == NULL)
        return SE_ERR_CRYPTO;
    rc = ctr_update(ctx, in, len, out);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int se_gear_init(se_gear_table *table,
                 const uint8_t *secret, size_t secret_len)
{
    uint8_t msg[sizeof(GEAR_LABEL)];
    uint8_t mac[SE_HASH_SIZE];
    size_t label_len = sizeof(GEAR_LABEL) - 1;
    int b;

    if (table == NULL || (secret == NULL && secret_len != 0))
        return SE_ERR_ARGUMENT;
    memcpy(msg, GEAR_LABEL, label_len);
    for (b = 0; b < 256; b++) {
        uint64_t value = 0;
        int k;
        int rc;
        msg[label_len] = (uint8_t)b;
        rc = se_hmac_sha256(secret, secret_len, msg, label_len + 1, mac);
        if (rc != SE_OK) {
            OPENSSL_cleanse(mac, sizeof(mac));
            return rc;
        }
        for (k = 7; k >= 0; k--)
            value = (value << 8) | mac[k];
        table->gear[b] = value;
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return SE_OK;
}

int se_find_cut(const se_gear_table *table, const uint8_t *data, size_t len,
                size_t min_size, size_t avg_size, size_t max_size,
                int at_end, size_t *cut)
{
    const uint64_t *gear;
    uint64_t mask_s, mask_l, fp = 0;
    size_t normal, end, i;

    if (table == NULL || cut == NULL || (data == NULL && len != 0) ||
        !valid_sizes(min_size, avg_size, max_size))
        return SE_ERR_ARGUMENT;

    *cut = 0;
    if (len <= min_size) {
        if (at_end)
            *cut = len;
        return SE_OK;
    }
    gear = table->gear;
    mask_s = mask_small(avg_size);
    mask_l = mask_large(avg_size);
    end = len < max_size ? len : max_size;
    normal = avg_size < end ? avg_size : end;

    for (i = min_size; i < normal; i++) {
        fp = (fp << 1) + gear[data[i]];
        if ((fp & mask_s) == 0) {
            *cut = i + 1;
            return SE_OK;
        }
    }
    for (; i < end; i++) {
        fp = (fp << 1) + gear[data[i]];
        if ((fp & mask_l) == 0) {
            *cut = i + 1;
            return SE_OK;
        }
    }
    if (at_end || end == max_size)
        *cut = end;
    return SE_OK;
}

int se_key_seed(const uint8_t *secret, size_t secret_len, uint8_t kind,
                const uint8_t *body, size_t body_len,
                uint8_t out[SE_HASH_SIZE])
{
    /* label || SHA256(kind || body): the content hash is key material. */
    uint8_t msg[sizeof(CHUNK_LABEL) - 1 + SE_HASH_SIZE];
    size_t label_len = sizeof(CHUNK_LABEL) - 1;
    EVP_MD_CTX *md;
    int ok, rc;

    if ((secret == NULL && secret_len != 0) ||
        (body == NULL && body_len != 0) || out == NULL)
        return SE_ERR_ARGUMENT;
    md = EVP_MD_CTX_new();
    if (md == NULL)
        return SE_ERR_CRYPTO;
    ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(md, &kind, 1) &&
         (body_len == 0 || EVP_DigestUpdate(md, body, body_len)) &&
         EVP_DigestFinal_ex(md, msg + label_len, NULL);
    EVP_MD_CTX_free(md);
    if (!ok) {
        OPENSSL_cleanse(msg, sizeof(msg));
        return SE_ERR_CRYPTO;
    }
    memcpy(msg, CHUNK_LABEL, label_len);
    rc = se_hmac_sha256(secret, secret_len, msg, sizeof(msg), out);
    OPENSSL_cleanse(msg, sizeof(msg));
    return rc;
}

/* The three per-chunk secrets of section 3, derived from the key seeds. */
struct chunk_keys {
    uint8_t key[SE_HASH_SIZE];
    uint8_t iv[SE_HASH_SIZE]; /* first SE_IV_SIZE bytes are the counter */
    uint8_t pad[SE_HASH_SIZE];
};

/* On failure keys may hold part of them: the caller wipes keys either way. */
static int derive_keys(const uint8_t seed[SE_HASH_SIZE],
                       const uint8_t prev1[SE_HASH_SIZE],
                       const uint8_t prev2[SE_HASH_SIZE],
                       struct chunk_keys *keys)
{
    /* "pad" || prev2: holds a key seed, so it is wiped before returning. */
    uint8_t pad_msg[sizeof(PAD_LABEL) - 1 + SE_HASH_SIZE];
    size_t pad_label_len = sizeof(PAD_LABEL) - 1;
    int rc;

    rc = se_hmac_sha256(seed, SE_HASH_SIZE, (const uint8_t *)KEY_LABEL,
                        sizeof(KEY_LABEL) - 1, keys->key);
    if (rc == SE_OK)
        rc = se_hmac_sha256(seed, SE_HASH_SIZE, (const uint8_t *)IV_LABEL,
                            sizeof(IV_LABEL) - 1, keys->iv);
    if (rc != SE_OK)
        return rc;
    memcpy(pad_msg, PAD_LABEL, pad_label_len);
    memcpy(pad_msg + pad_label_len, prev2, SE_HASH_SIZE);
    rc = se_hmac_sha256(prev1, SE_HASH_SIZE, pad_msg, sizeof(pad_msg),
                        keys->pad);
    OPENSSL_cleanse(pad_msg, sizeof(pad_msg));
    return rc;
}

/* XOR the pad key stream (AES-256-CTR under pad, counter 0) over in. */
static int apply_pad(const uint8_t pad[SE_HASH_SIZE], const uint8_t *in,
                     size_t len, uint8_t *out)
{
    static const uint8_t zero_counter[SE_IV_SIZE] = {0};
    return se_aes256_ctr(pad, zero_counter, in, len, out);
}

int se_seal(const uint8_t seed[SE_HASH_SIZE],
            const uint8_t prev1[SE_HASH_SIZE],
            const uint8_t prev2[SE_HASH_SIZE], uint8_t kind,
            const uint8_t *body, size_t body_len,
            uint8_t *out, uint8_t name[SE_HASH_SIZE])
{
    struct chunk_keys keys;
    EVP_CIPHER_CTX *ctx;
    int rc;

    if (seed == NULL || prev1 == NULL || prev2 == NULL || out == NULL ||
        name == NULL || (body == NULL && body_len != 0) ||
        body_len == SIZE_MAX)
        return SE_ERR_ARGUMENT;
    rc = derive_keys(seed, prev1, prev2, &keys);
    if (rc != SE_OK)
        goto done;
    ctx = ctr_start(keys.key, keys.iv);
    if (ctx == NULL) {
        rc = SE_ERR_CRYPTO;
        goto done;
    }
    rc = ctr_update(ctx, &kind, 1, out);
    if (rc == SE_OK)
        rc = ctr_update(ctx, body, body_len, out + 1);
    EVP_CIPHER_CTX_free(ctx);
    if (rc == SE_OK)
        rc = apply_pad(keys.pad, out, body_len + 1, out);
    if (rc == SE_OK)
        rc = se_sha256(out, body_len + 1, name);
done:
    OPENSSL_cleanse(&keys, sizeof(keys));
    return rc;
}

int se_open(const uint8_t seed[SE_HASH_SIZE],
            const uint8_t prev1[SE_HASH_SIZE],
            const uint8_t prev2[SE_HASH_SIZE], const uint8_t *in, size_t len,
            const uint8_t name[SE_HASH_SIZE], uint8_t *out)
{
    struct chunk_keys keys;
    uint8_t actual[SE_HASH_SIZE];
    int rc;

    if (seed == NULL || prev1 == NULL || prev2 == NULL || name == NULL ||
        ((in == NULL || out == NULL) && len != 0))
        return SE_ERR_ARGUMENT;
    rc = se_sha256(in, len, actual);
    if (rc != SE_OK)
        return rc;
    if (memcmp(actual, name, SE_HASH_SIZE) != 0)
        return SE_ERR_INTEGRITY;
    rc = derive_keys(seed, prev1, prev2, &keys);
    if (rc == SE_OK)
        rc = apply_pad(keys.pad, in, len, out);
    if (rc == SE_OK)
        rc = se_aes256_ctr(keys.key, keys.iv, out, len, out);
    OPENSSL_cleanse(&keys, sizeof(keys));
    return rc;
}
