/* gfni512 tier: AVX-512BW + GFNI. A product by a public constant is one gf2p8affineqb with
 * that constant's 8x8 bit matrix (any reduction polynomial); tails use masked loads and
 * stores, which touch no byte outside the buffer. */
#include "mpss_tiers.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "mpss_simd_template.h"

#define MPSS_TARGET __attribute__((target("avx512f,avx512bw,gfni")))
#define MPSS_VEC_W 64
#define MPSS_EVAL_G 8
#define MPSS_COMBINE_G 8
#define MPSS_MASKED_TAILS
#define MPSS_HAVE_STREAM
#define MPSS_EVAL_STREAM_G 8 /* each store fills a whole line: streams +40 % at 16 MiB */

typedef __m512i vec_t;
typedef __m512i prep_t;
typedef uint64_t konst_t; /* the 8x8 bit matrix */
typedef __m512i kreg_t;   /* ... in every qword */

static void konst_build(const mpss_gf256_field *f, uint8_t c, konst_t *k)
{
    *k = mpss_simd_gf_matrix(f, c);
}

MPSS_TARGET static inline __mmask64 tail_mask(size_t n)
{
    return (__mmask64)((1ull << n) - 1); /* n < 64 */
}

MPSS_TARGET static inline vec_t v_load(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }
MPSS_TARGET static inline void v_store(uint8_t *p, vec_t v) { _mm512_storeu_si512((void *)p, v); }
MPSS_TARGET static inline vec_t v_load_part(const uint8_t *p, size_t n)
{
    return _mm512_maskz_loadu_epi8(tail_mask(n), p);
}
MPSS_TARGET static inline void v_store_part(uint8_t *p, vec_t v, size_t n)
{
    _mm512_mask_storeu_epi8(p, tail_mask(n), v);
}
MPSS_TARGET static inline void v_stream(uint8_t *p, vec_t v) { _mm512_stream_si512((void *)p, v); }
MPSS_TARGET static inline void v_stream_fence(void) { _mm_sfence(); }
MPSS_TARGET static inline vec_t v_zero(void) { return _mm512_setzero_si512(); }
MPSS_TARGET static inline vec_t v_xor(vec_t a, vec_t b) { return _mm512_xor_si512(a, b); }
MPSS_TARGET static inline prep_t v_prep(vec_t v) { return v; }
MPSS_TARGET static inline kreg_t k_load(const konst_t *k) { return _mm512_set1_epi64((long long)*k); }
MPSS_TARGET static inline vec_t v_mul(kreg_t k, prep_t v) { return _mm512_gf2p8affine_epi64_epi8(v, k, 0); }

/* The fused keyed split: AES-256-CTR coefficients made by VAES, four blocks per zmm. */
#define MPSS_HAVE_FUSED_CTR
#define MPSS_FUSED_TARGET __attribute__((target("avx512f,avx512bw,gfni,aes,vaes")))

static int fused_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("gfni") && __builtin_cpu_supports("aes") && __builtin_cpu_supports("vaes");
}

MPSS_FUSED_TARGET static inline vec_t c_round_key(const uint8_t *rk)
{
    return _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)rk));
}
MPSS_FUSED_TARGET static inline vec_t c_counter(uint64_t row, uint64_t block)
{
    return _mm512_set_epi64((long long)(block + 3), (long long)row, (long long)(block + 2), (long long)row,
                            (long long)(block + 1), (long long)row, (long long)block, (long long)row);
}
MPSS_FUSED_TARGET static inline vec_t c_advance(vec_t c, uint64_t blocks)
{
    return _mm512_add_epi64(c, _mm512_set_epi64((long long)blocks, 0, (long long)blocks, 0, (long long)blocks, 0,
                                                (long long)blocks, 0));
}
MPSS_FUSED_TARGET static inline vec_t c_block(vec_t c)
{
    const __m512i bswap64 =
        _mm512_broadcast_i32x4(_mm_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    return _mm512_shuffle_epi8(c, bswap64);
}
MPSS_FUSED_TARGET static inline vec_t c_enc(vec_t v, vec_t rk) { return _mm512_aesenc_epi128(v, rk); }
MPSS_FUSED_TARGET static inline vec_t c_enclast(vec_t v, vec_t rk) { return _mm512_aesenclast_epi128(v, rk); }

#define MPSS_SIMD_TEMPLATE
#include "mpss_simd_template.h"

static int supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("gfni");
}

const mpss_tier mpss_tier_gfni512 = {
    "gfni512", 1, supported, simd_eval, simd_eval_keyed, simd_interpolate, simd_xor2, simd_xor3,
};

#else
typedef int mpss_tier_gfni512_unavailable; /* not x86: nothing to build */
#endif
