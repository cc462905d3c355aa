/* avx2 tier: PSHUFB nibble tables on ymm. c*v = lo[v & 15] ^ hi[v >> 4], the two 16-byte
 * tables of a public constant broadcast to both lanes: the lookup is a register shuffle,
 * so no memory address depends on the data. */
#include "mpss_tiers.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "mpss_simd_template.h"

#define MPSS_TARGET __attribute__((target("avx2")))
#define MPSS_VEC_W 32
#define MPSS_EVAL_G 6
#define MPSS_COMBINE_G 6
/* Only combine and XOR stream: streamed eval measured slower (16 MiB), the shares of a
 * group leaving part-filled lines, and a pass per share costing more shuffles. */
#define MPSS_HAVE_STREAM

typedef __m256i vec_t;
typedef struct {
    __m256i lo, hi; /* the nibbles of each byte */
} prep_t;
typedef mpss_simd_nibbles konst_t;
typedef struct {
    __m256i lo, hi; /* the tables in both lanes */
} kreg_t;

static void konst_build(const mpss_gf256_field *f, uint8_t c, konst_t *k)
{
    mpss_simd_nibble_tables(f, c, k);
}

MPSS_TARGET static inline vec_t v_load(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
MPSS_TARGET static inline void v_store(uint8_t *p, vec_t v) { _mm256_storeu_si256((__m256i *)p, v); }
MPSS_TARGET static inline void v_stream(uint8_t *p, vec_t v) { _mm256_stream_si256((__m256i *)p, v); }
MPSS_TARGET static inline void v_stream_fence(void) { _mm_sfence(); }
MPSS_TARGET static inline vec_t v_zero(void) { return _mm256_setzero_si256(); }
MPSS_TARGET static inline vec_t v_xor(vec_t a, vec_t b) { return _mm256_xor_si256(a, b); }
MPSS_TARGET static inline prep_t v_prep(vec_t v)
{
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    return (prep_t){_mm256_and_si256(v, low4), _mm256_and_si256(_mm256_srli_epi16(v, 4), low4)};
}
MPSS_TARGET static inline kreg_t k_load(const konst_t *k)
{
    return (kreg_t){_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)k->lo)),
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)k->hi))};
}
MPSS_TARGET static inline vec_t v_mul(kreg_t k, prep_t p)
{
    return _mm256_xor_si256(_mm256_shuffle_epi8(k.lo, p.lo), _mm256_shuffle_epi8(k.hi, p.hi));
}

#define MPSS_SIMD_TEMPLATE
#include "mpss_simd_template.h"

static int supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
}

const mpss_tier mpss_tier_avx2 = {"avx2", 1, supported, simd_eval, simd_eval_keyed, simd_interpolate, simd_xor2, simd_xor3};

#else
typedef int mpss_tier_avx2_unavailable; /* not x86: nothing to build */
#endif
