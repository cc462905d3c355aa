/* AES-256-CTR keystream with AES-NI / VAES: the coefficient source of keyed splits.
 *
 * Pure C, no Python.h. The stream is exactly what any AES-256-CTR implementation
 * (e.g. `cryptography`, OpenSSL) produces for the same key and 16-byte initial counter
 * block, the counter incremented as one big-endian 128-bit integer. Coefficient row j of
 * a split uses the initial counter block BE64(j) || BE64(0); block b of that row is the
 * encryption of BE64(j) || BE64(b) (docs/design.md). The AES instructions take constant
 * time, and nothing here branches on or indexes memory by key or keystream bytes.
 */
#ifndef MPSS_AESCTR_H
#define MPSS_AESCTR_H

#include <stddef.h>
#include <stdint.h>

/* The 15 round keys of an AES-256 key (16-byte aligned for the vector loads). */
typedef struct {
    _Alignas(16) uint8_t rk[15][16];
} mpss_aes256_schedule;

/* Writes the keystream blocks first_block .. first_block + nblocks - 1 of row `row`
 * (nblocks * 16 bytes) to out. */
typedef void (*mpss_ctr_fn)(const mpss_aes256_schedule *s, uint64_t row, uint64_t first_block, uint8_t *out,
                            size_t nblocks);

typedef struct {
    const char *name; /* "vaes512" or "aesni" */
    int (*supported)(void);
    mpss_ctr_fn run;
} mpss_ctr_impl;

/* Every keystream implementation in this build, fastest first; NULL-terminated. */
extern const mpss_ctr_impl *const mpss_ctr_impls[];

/* The implementation called `name`, or NULL. */
const mpss_ctr_impl *mpss_ctr_named(const char *name);

/* The fastest implementation this CPU runs, or NULL (no AES-NI, or not x86). */
const mpss_ctr_impl *mpss_ctr_best(void);

/* Expands a 32-byte key. Needs AES-NI: only call it when mpss_ctr_best() is not NULL. */
void mpss_aes256_expand(const uint8_t key[32], mpss_aes256_schedule *s);

#endif
