/* gfni256 tier: AVX2 + GFNI (VEX-encoded gf2p8affineqb on ymm), for CPUs with GFNI but
 * no AVX-512. A product by a public constant is one affine with that constant's matrix. */
#include "mpss_tiers.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "mpss_simd_template.h"

#define MPSS_TARGET __attribute__((target("avx2,gfni")))
#define MPSS_VEC_W 32
#define MPSS_EVAL_G 8
#define MPSS_HAVE_STREAM
/* Streamed eval writes one share per pass: interleaved half-line stores to several shares
 * measured slower than plain stores, one share at a time 20 % faster (16 MiB). */
#define MPSS_EVAL_STREAM_G 1
#define MPSS_COMBINE_G 8

typedef __m256i vec_t;
typedef __m256i prep_t;
typedef uint64_t konst_t; /* the 8x8 bit matrix */
typedef __m256i kreg_t;   /* ... in every qword */

static void konst_build(const mpss_gf256_field *f, uint8_t c, konst_t *k)
{
    *k = mpss_simd_gf_matrix(f, c);
}

MPSS_TARGET static inline vec_t v_load(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
MPSS_TARGET static inline void v_store(uint8_t *p, vec_t v) { _mm256_storeu_si256((__m256i *)p, v); }
MPSS_TARGET static inline void v_stream(uint8_t *p, vec_t v) { _mm256_stream_si256((__m256i *)p, v); }
MPSS_TARGET static inline void v_stream_fence(void) { _mm_sfence(); }
MPSS_TARGET static inline vec_t v_zero(void) { return _mm256_setzero_si256(); }
MPSS_TARGET static inline vec_t v_xor(vec_t a, vec_t b) { return _mm256_xor_si256(a, b); }
MPSS_TARGET static inline prep_t v_prep(vec_t v) { return v; }
MPSS_TARGET static inline kreg_t k_load(const konst_t *k) { return _mm256_set1_epi64x((long long)*k); }
MPSS_TARGET static inline vec_t v_mul(kreg_t k, prep_t v) { return _mm256_gf2p8affine_epi64_epi8(v, k, 0); }

/* The fused keyed split: AES-256-CTR coefficients made by VAES, two blocks per ymm. */
#define MPSS_HAVE_FUSED_CTR
#define MPSS_FUSED_TARGET __attribute__((target("avx2,gfni,aes,vaes")))

static int fused_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("gfni") && __builtin_cpu_supports("aes") &&
           __builtin_cpu_supports("vaes");
}

MPSS_FUSED_TARGET static inline vec_t c_round_key(const uint8_t *rk)
{
    return _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)rk));
}
MPSS_FUSED_TARGET static inline vec_t c_counter(uint64_t row, uint64_t block)
{
    return _mm256_set_epi64x((long long)(block + 1), (long long)row, (long long)block, (long long)row);
}
MPSS_FUSED_TARGET static inline vec_t c_advance(vec_t c, uint64_t blocks)
{
    return _mm256_add_epi64(c, _mm256_set_epi64x((long long)blocks, 0, (long long)blocks, 0));
}
MPSS_FUSED_TARGET static inline vec_t c_block(vec_t c)
{
    const __m256i bswap64 =
        _mm256_broadcastsi128_si256(_mm_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_shuffle_epi8(c, bswap64);
}
MPSS_FUSED_TARGET static inline vec_t c_enc(vec_t v, vec_t rk) { return _mm256_aesenc_epi128(v, rk); }
MPSS_FUSED_TARGET static inline vec_t c_enclast(vec_t v, vec_t rk) { return _mm256_aesenclast_epi128(v, rk); }

#define MPSS_SIMD_TEMPLATE
#include "mpss_simd_template.h"

static int supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("gfni");
}

const mpss_tier mpss_tier_gfni256 = {
    "gfni256", 1, supported, simd_eval, simd_eval_keyed, simd_interpolate, simd_xor2, simd_xor3,
};

#else
typedef int mpss_tier_gfni256_unavailable; /* not x86: nothing to build */
#endif
