/* Table-tier share kernels: GF(2^8) products through 256-byte product rows built
 * from the log/antilog tables. Pure C, no Python.h.
 *
 * Row lookups are indexed by data bytes: NOT constant time (docs/security.md).
 */
#ifndef MPSS_TABLE_H
#define MPSS_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "mpss_gf256.h"

#define MPSS_MAX_SHARES 255

/* outs[i][t] = secret[t] + sum_{j<m} coeffs[j][t] * xs[i]^(j+1) for t < len, i < n.
 * Returns 0, or -1 if scratch memory could not be allocated. */
int mpss_table_eval(const mpss_gf256_field *f, const uint8_t *secret, const uint8_t *const *coeffs,
                    size_t m, const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len);

/* out[t] = sum_{i<count} w_i * ys[i][t], w_i the Lagrange weights of xs at 0.
 * Returns 0, or -1 if scratch memory could not be allocated. */
int mpss_table_interpolate(const mpss_gf256_field *f, const uint8_t *xs, const uint8_t *const *ys,
                           size_t count, uint8_t *out, size_t len);

/* The Lagrange weight of point i among xs (distinct, non-zero) for evaluation at 0. */
uint8_t mpss_lagrange_weight(const mpss_gf256_field *f, const uint8_t *xs, size_t count, size_t i);

#endif
