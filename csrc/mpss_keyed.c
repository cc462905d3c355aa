#include "mpss_keyed.h"

#include <stdlib.h>

#include "mpss_osrandom.h" /* mpss_wipe */

/* 32 KiB of rows per block: with m <= 2 the block sits in L1 next to the streams it
 * feeds; larger m get shorter rows, down to 1 KiB (then the block lives in L2). */
#ifndef KEYED_BLOCK_BYTES
#define KEYED_BLOCK_BYTES ((size_t)32 << 10)
#endif
#define KEYED_MIN_ROW ((size_t)1 << 10)

size_t mpss_keyed_row_bytes(size_t m)
{
    const size_t row = KEYED_BLOCK_BYTES / m / 64 * 64;
    return row < KEYED_MIN_ROW ? KEYED_MIN_ROW : row;
}

int mpss_keyed_buffer_init(mpss_keyed_buffer *buf, size_t m, size_t row_bytes)
{
    buf->m = m;
    buf->bytes = m * row_bytes;
    buf->base = (uint8_t *)aligned_alloc(64, buf->bytes);
    if (!buf->base)
        return -1;
    for (size_t j = 0; j < m; j++)
        buf->rows[j] = buf->base + j * row_bytes;
    return 0;
}

void mpss_keyed_buffer_free(mpss_keyed_buffer *buf)
{
    mpss_wipe(buf->base, buf->bytes);
    free(buf->base);
    buf->base = NULL;
}

void mpss_keyed_fill(mpss_keyed_buffer *buf, const mpss_ctr_impl *ctr, const mpss_aes256_schedule *key,
                     size_t start, size_t size)
{
    for (size_t j = 0; j < buf->m; j++)
        ctr->run(key, (uint64_t)j, (uint64_t)(start / 16), buf->rows[j], (size + 15) / 16);
}

int mpss_eval_keyed_via(mpss_eval_fn eval, const mpss_gf256_field *f, const mpss_ctr_impl *ctr,
                        const mpss_aes256_schedule *key, const uint8_t *secret, size_t m, const uint8_t *xs,
                        uint8_t *const *outs, size_t n, size_t len)
{
    const size_t row_bytes = mpss_keyed_row_bytes(m);
    mpss_keyed_buffer buf;
    if (mpss_keyed_buffer_init(&buf, m, row_bytes) != 0)
        return -1;
    uint8_t *o[255];
    int rc = 0;
    for (size_t start = 0; start < len && rc == 0; start += row_bytes) {
        const size_t size = len - start < row_bytes ? len - start : row_bytes;
        mpss_keyed_fill(&buf, ctr, key, start, size);
        for (size_t i = 0; i < n; i++)
            o[i] = outs[i] + start;
        rc = eval(f, secret + start, (const uint8_t *const *)buf.rows, m, xs, o, n, size);
    }
    mpss_keyed_buffer_free(&buf);
    return rc;
}
