/* GF(2^8) log/antilog tables for the two supported reduction polynomials.
 *
 * Pure C, no Python.h. Index 0 is the AES field (0x11B, generator 0x03),
 * index 1 the libgfshare/ISA-L field (0x11D, generator 0x02).
 *
 * These tables are indexed by data bytes: kernels built on them are NOT
 * constant time with respect to that data (see docs/security.md).
 */
#ifndef MPSS_GF256_H
#define MPSS_GF256_H

#include <stdint.h>

#define MPSS_POLY_AES 0x11B
#define MPSS_POLY_GFSHARE 0x11D

typedef struct {
    uint16_t poly;
    uint8_t log[256];  /* log[0] is unused (0) */
    uint8_t exp[512];  /* exp[i] = g^i, doubled so exp[log a + log b] needs no reduction */
} mpss_gf256_field;

/* Fill both fields' tables; idempotent. */
void mpss_gf256_init(void);

/* Field for a polynomial, or NULL for an unsupported one. */
const mpss_gf256_field *mpss_gf256_field_for(int poly);

static inline uint8_t mpss_gf256_mul(const mpss_gf256_field *f, uint8_t a, uint8_t b)
{
    if (a == 0 || b == 0)
        return 0;
    return f->exp[(unsigned)f->log[a] + f->log[b]];
}

/* Inverse of a non-zero element; inv(0) is defined as 0 (callers never ask for it). */
static inline uint8_t mpss_gf256_inv(const mpss_gf256_field *f, uint8_t a)
{
    if (a == 0)
        return 0;
    return f->exp[255 - f->log[a]];
}

/* row[v] = c * v for all v: the product table of one public constant. */
void mpss_gf256_mul_row(const mpss_gf256_field *f, uint8_t c, uint8_t row[256]);

#endif
