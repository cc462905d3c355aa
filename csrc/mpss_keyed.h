/* Keyed splits: the coefficient rows of a split are AES-256-CTR keystream (mpss_aesctr.h),
 * made block by block into a small buffer right before the shares of that block are
 * evaluated. Pure C, no Python.h. */
#ifndef MPSS_KEYED_H
#define MPSS_KEYED_H

#include <stddef.h>
#include <stdint.h>

#include "mpss_aesctr.h"
#include "mpss_gf256.h"

/* Coefficient rows of one block; rows[j] holds row j's keystream for the block. */
typedef struct {
    uint8_t *base;
    size_t bytes;
    size_t m;
    uint8_t *rows[254];
} mpss_keyed_buffer;

/* Bytes of each row per block (a multiple of 64): the whole block stays in L1 for small m. */
size_t mpss_keyed_row_bytes(size_t m);

/* Allocates m rows of row_bytes. Returns 0, or -1 when out of memory. */
int mpss_keyed_buffer_init(mpss_keyed_buffer *buf, size_t m, size_t row_bytes);

/* Wipes and frees the buffer. */
void mpss_keyed_buffer_free(mpss_keyed_buffer *buf);

/* Fills bytes [start, start + size) of every row (start a multiple of 16, size at most
 * the row size); the rest of the last 16-byte block is written too. */
void mpss_keyed_fill(mpss_keyed_buffer *buf, const mpss_ctr_impl *ctr, const mpss_aes256_schedule *key,
                     size_t start, size_t size);

typedef int (*mpss_eval_fn)(const mpss_gf256_field *f, const uint8_t *secret, const uint8_t *const *coeffs,
                            size_t m, const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len);

/* A keyed split through any tier's plain eval, one call per block (for the table tier). */
int mpss_eval_keyed_via(mpss_eval_fn eval, const mpss_gf256_field *f, const mpss_ctr_impl *ctr,
                        const mpss_aes256_schedule *key, const uint8_t *secret, size_t m, const uint8_t *xs,
                        uint8_t *const *outs, size_t n, size_t len);

#endif
