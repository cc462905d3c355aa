/* swar tier: portable constant-time C, eight bytes per uint64 word. c*v is the XOR over
 * the bits b of v of c*x^b, each selected by a byte mask made from bit b of every byte:
 * only shifts, ANDs and XORs, no table and no data-dependent branch. */
#include "mpss_tiers.h"

#include <string.h>

#include "mpss_simd_template.h"

#define MPSS_TARGET
#define MPSS_VEC_W 8
#define MPSS_EVAL_G 5
#define MPSS_COMBINE_G 5

typedef uint64_t vec_t;
typedef struct {
    uint64_t mask[8]; /* mask[b]: 0xff in each byte whose bit b is set */
} prep_t;
typedef struct {
    uint64_t multiple[8]; /* c*x^b in every byte */
} konst_t;
typedef konst_t kreg_t;

static void konst_build(const mpss_gf256_field *f, uint8_t c, konst_t *k)
{
    mpss_simd_bit_multiples(f, c, k->multiple);
}

static inline vec_t v_load(const uint8_t *p)
{
    vec_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v_store(uint8_t *p, vec_t v) { memcpy(p, &v, sizeof v); }
static inline vec_t v_zero(void) { return 0; }
static inline vec_t v_xor(vec_t a, vec_t b) { return a ^ b; }
static inline prep_t v_prep(vec_t v)
{
    prep_t p;
    for (int b = 0; b < 8; b++) {
        const uint64_t bits = (v >> b) & 0x0101010101010101ull;
        /* bits * 0xff (each byte 0 or 1 becomes 0 or 0xff) without a multiply, whose time
         * depends on its operands on some small cores. */
        p.mask[b] = (bits << 8) - bits;
    }
    return p;
}
static inline kreg_t k_load(const konst_t *k) { return *k; }
static inline vec_t v_mul(kreg_t k, prep_t p)
{
    vec_t r = 0;
    for (int b = 0; b < 8; b++)
        r ^= p.mask[b] & k.multiple[b];
    return r;
}

#define MPSS_SIMD_TEMPLATE
#include "mpss_simd_template.h"

static int supported(void)
{
    return 1;
}

const mpss_tier mpss_tier_swar = {"swar", 1, supported, simd_eval, simd_eval_keyed, simd_interpolate, simd_xor2, simd_xor3};
