/* Kernel tiers: one implementation of the share kernels per instruction set.
 *
 * Pure C, no Python.h. Every tier computes exactly the same bytes; they differ in speed
 * and in whether they are constant time (see docs/security.md). Public constants (x
 * coordinates, Lagrange weights) may be used as table indices or branch conditions;
 * secret data (secret, coefficients, shares, pads) may not, except in the `table` tier.
 */
#ifndef MPSS_TIERS_H
#define MPSS_TIERS_H

#include <stddef.h>
#include <stdint.h>

#include "mpss_aesctr.h"
#include "mpss_gf256.h"

typedef struct {
    /* "gfni512", "gfni256", "avx2", "ssse3", "swar" or "table" */
    const char *name;
    /* Constant time with respect to secret data. */
    int constant_time;
    /* Non-zero when this CPU and OS can run the tier. */
    int (*supported)(void);
    /* outs[i][t] = secret[t] + sum_{j<m} coeffs[j][t] * xs[i]^(j+1), t < len, i < n.
     * m >= 1, 1 <= n <= 255, xs distinct non-zero. Returns 0, or -1 when out of memory. */
    int (*eval)(const mpss_gf256_field *f, const uint8_t *secret, const uint8_t *const *coeffs, size_t m,
                const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len);
    /* eval with coeffs[j][t] = byte t of the AES-256-CTR keystream of row j under `key`
     * (mpss_aesctr.h), made by `ctr` in blocks that never leave the caches. */
    int (*eval_keyed)(const mpss_gf256_field *f, const mpss_ctr_impl *ctr, const mpss_aes256_schedule *key,
                      const uint8_t *secret, size_t m, const uint8_t *xs, uint8_t *const *outs, size_t n,
                      size_t len);
    /* out[t] = sum_{i<count} w_i * ys[i][t], w_i the Lagrange weights of xs at x = 0.
     * 1 <= count <= 255, xs distinct non-zero. Returns 0, or -1 when out of memory. */
    int (*interpolate)(const mpss_gf256_field *f, const uint8_t *xs, const uint8_t *const *ys, size_t count,
                       uint8_t *out, size_t len);
    /* out = a ^ b; out may be exactly a or b. */
    void (*xor2)(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t len);
    /* out = a ^ b ^ c (relay re-encryption: ciphertext ^ incoming pad ^ outgoing pad);
     * out may be exactly one of the inputs. */
    void (*xor3)(const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out, size_t len);
} mpss_tier;

/* All tiers compiled into this build, fastest first (supported or not); NULL-terminated. */
extern const mpss_tier *const mpss_all_tiers[];

/* The tier called `name`, or NULL if this build has none by that name. */
const mpss_tier *mpss_tier_named(const char *name);

/* The fastest constant-time tier this CPU supports (always at least "swar"). */
const mpss_tier *mpss_tier_best(void);

#endif
