/* ssse3 tier: PSHUFB nibble tables on xmm, for x86-64 CPUs without AVX2. c*v =
 * lo[v & 15] ^ hi[v >> 4] with the 16-byte tables of a public constant: the lookup is a
 * register shuffle, so no memory address depends on the data. */
#include "mpss_tiers.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "mpss_simd_template.h"

#define MPSS_TARGET __attribute__((target("ssse3")))
#define MPSS_VEC_W 16
#define MPSS_EVAL_G 6
#define MPSS_COMBINE_G 6
/* Only combine and XOR stream: streamed eval measured slower (16 MiB), the shares of a
 * group leaving part-filled lines, and a pass per share costing more shuffles. */
#define MPSS_HAVE_STREAM

typedef __m128i vec_t;
typedef struct {
    __m128i lo, hi; /* the nibbles of each byte */
} prep_t;
typedef mpss_simd_nibbles konst_t;
typedef struct {
    __m128i lo, hi;
} kreg_t;

static void konst_build(const mpss_gf256_field *f, uint8_t c, konst_t *k)
{
    mpss_simd_nibble_tables(f, c, k);
}

MPSS_TARGET static inline vec_t v_load(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)p); }
MPSS_TARGET static inline void v_store(uint8_t *p, vec_t v) { _mm_storeu_si128((__m128i *)p, v); }
MPSS_TARGET static inline void v_stream(uint8_t *p, vec_t v) { _mm_stream_si128((__m128i *)p, v); }
MPSS_TARGET static inline void v_stream_fence(void) { _mm_sfence(); }
MPSS_TARGET static inline vec_t v_zero(void) { return _mm_setzero_si128(); }
MPSS_TARGET static inline vec_t v_xor(vec_t a, vec_t b) { return _mm_xor_si128(a, b); }
MPSS_TARGET static inline prep_t v_prep(vec_t v)
{
    const __m128i low4 = _mm_set1_epi8(0x0f);
    return (prep_t){_mm_and_si128(v, low4), _mm_and_si128(_mm_srli_epi16(v, 4), low4)};
}
MPSS_TARGET static inline kreg_t k_load(const konst_t *k)
{
    return (kreg_t){_mm_loadu_si128((const __m128i *)k->lo), _mm_loadu_si128((const __m128i *)k->hi)};
}
MPSS_TARGET static inline vec_t v_mul(kreg_t k, prep_t p)
{
    return _mm_xor_si128(_mm_shuffle_epi8(k.lo, p.lo), _mm_shuffle_epi8(k.hi, p.hi));
}

#define MPSS_SIMD_TEMPLATE
#include "mpss_simd_template.h"

static int supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("ssse3") != 0;
}

const mpss_tier mpss_tier_ssse3 = {"ssse3", 1, supported, simd_eval, simd_eval_keyed, simd_interpolate, simd_xor2, simd_xor3};

#else
typedef int mpss_tier_ssse3_unavailable; /* not x86: nothing to build */
#endif
