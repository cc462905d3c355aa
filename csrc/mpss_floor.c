/* The floor loops of `mpss bench` (see mpss_floor.h): read once, store n times; XOR of k
 * streams into one. One copy of each loop per instruction set, built with a per-function
 * target attribute (the extension itself is baseline x86-64) and picked at run time. The
 * loads are unaligned; streaming stores need aligned outputs (checked), then an sfence.
 * At the end, the keystream bound: a keyed split's AES-256-CTR coefficient rows, folded. */
#include "mpss_floor.h"

#include <string.h>

#include "mpss_aesctr.h" /* the key schedule: mpss_aes256_expand */

#define MAX_STREAMS 255
#define UNROLL 4 /* vectors in flight per output per iteration */

static const char *const isa_names[MPSS_FLOOR_ISA_COUNT] = {"avx512", "avx2", "sse2", "portable"};

const char *mpss_floor_isa_name(int isa)
{
    return isa >= 0 && isa < MPSS_FLOOR_ISA_COUNT ? isa_names[isa] : NULL;
}

/* The byte tails (fewer bytes than one vector) and the portable loops: 64-bit words. */
static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void store_tail(const uint8_t *src, uint8_t *const *outs, size_t n, size_t from, size_t length)
{
    for (size_t j = 0; j < n; j++)
        memcpy(outs[j] + from, src + from, length - from);
}

static void xor_tail(const uint8_t *const *ins, size_t k, uint8_t *out, size_t from, size_t length)
{
    for (size_t i = from; i < length; i++) {
        uint8_t acc = ins[0][i];
        for (size_t j = 1; j < k; j++)
            acc ^= ins[j][i];
        out[i] = acc;
    }
}

static void store_portable(const uint8_t *src, uint8_t *const *outs, size_t n, size_t length)
{
    size_t i = 0;
    for (; i + 32 <= length; i += 32) {
        uint64_t a = load64(src + i), b = load64(src + i + 8), c = load64(src + i + 16), d = load64(src + i + 24);
        for (size_t j = 0; j < n; j++) {
            uint8_t *o = outs[j] + i;
            store64(o, a), store64(o + 8, b), store64(o + 16, c), store64(o + 24, d);
        }
    }
    store_tail(src, outs, n, i, length);
}

static void xor_portable(const uint8_t *const *ins, size_t k, uint8_t *out, size_t length)
{
    size_t i = 0;
    for (; i + 16 <= length; i += 16) {
        uint64_t a = load64(ins[0] + i), b = load64(ins[0] + i + 8);
        for (size_t j = 1; j < k; j++)
            a ^= load64(ins[j] + i), b ^= load64(ins[j] + i + 8);
        store64(out + i, a), store64(out + i + 8, b);
    }
    xor_tail(ins, k, out, i, length);
}

/* One ISA's loops. `streaming` is a compile-time constant in each inlined body, and so is
 * k in the specialised XOR calls (2 and 3: xor_into and the k=3 combine), so the loop over
 * inputs unrolls into registers and no branch is left in the inner loop. */
#define FLOOR_LOOPS(SUF, TARGET, VEC, W, LOAD, STORE, STREAM, XOR, FENCE)                                       \
    TARGET static inline void put_##SUF(uint8_t *p, VEC v, int streaming)                                       \
    {                                                                                                           \
        if (streaming)                                                                                          \
            STREAM((VEC *)p, v);                                                                                \
        else                                                                                                    \
            STORE((VEC *)p, v);                                                                                 \
    }                                                                                                           \
    TARGET static inline __attribute__((always_inline)) void store_body_##SUF(                                   \
        int streaming, const uint8_t *src, uint8_t *const *outs, size_t n, size_t length)                       \
    {                                                                                                           \
        size_t i = 0;                                                                                           \
        for (; i + UNROLL * (W) <= length; i += UNROLL * (W)) {                                                 \
            VEC a = LOAD((const VEC *)(src + i)), b = LOAD((const VEC *)(src + i + (W)));                       \
            VEC c = LOAD((const VEC *)(src + i + 2 * (W))), d = LOAD((const VEC *)(src + i + 3 * (W)));         \
            for (size_t j = 0; j < n; j++) {                                                                    \
                uint8_t *o = outs[j] + i;                                                                       \
                put_##SUF(o, a, streaming), put_##SUF(o + (W), b, streaming);                                   \
                put_##SUF(o + 2 * (W), c, streaming), put_##SUF(o + 3 * (W), d, streaming);                     \
            }                                                                                                   \
        }                                                                                                       \
        for (; i + (W) <= length; i += (W)) {                                                                   \
            VEC a = LOAD((const VEC *)(src + i));                                                               \
            for (size_t j = 0; j < n; j++)                                                                      \
                put_##SUF(outs[j] + i, a, streaming);                                                           \
        }                                                                                                       \
        if (streaming)                                                                                          \
            FENCE();                                                                                            \
        store_tail(src, outs, n, i, length);                                                                    \
    }                                                                                                           \
    TARGET static void store_##SUF(int streaming, const uint8_t *src, uint8_t *const *outs, size_t n,           \
                                   size_t length)                                                               \
    {                                                                                                           \
        if (streaming)                                                                                          \
            store_body_##SUF(1, src, outs, n, length);                                                          \
        else                                                                                                    \
            store_body_##SUF(0, src, outs, n, length);                                                          \
    }                                                                                                           \
    TARGET static inline __attribute__((always_inline)) void xor_body_##SUF(                                    \
        int streaming, const uint8_t *const *ins, size_t k, uint8_t *out, size_t length)                        \
    {                                                                                                           \
        size_t i = 0;                                                                                           \
        for (; i + 2 * (W) <= length; i += 2 * (W)) {                                                           \
            VEC a = LOAD((const VEC *)(ins[0] + i)), b = LOAD((const VEC *)(ins[0] + i + (W)));                 \
            for (size_t j = 1; j < k; j++) {                                                                    \
                a = XOR(a, LOAD((const VEC *)(ins[j] + i)));                                                    \
                b = XOR(b, LOAD((const VEC *)(ins[j] + i + (W))));                                              \
            }                                                                                                   \
            put_##SUF(out + i, a, streaming), put_##SUF(out + i + (W), b, streaming);                           \
        }                                                                                                       \
        for (; i + (W) <= length; i += (W)) {                                                                   \
            VEC a = LOAD((const VEC *)(ins[0] + i));                                                            \
            for (size_t j = 1; j < k; j++)                                                                      \
                a = XOR(a, LOAD((const VEC *)(ins[j] + i)));                                                    \
            put_##SUF(out + i, a, streaming);                                                                   \
        }                                                                                                       \
        if (streaming)                                                                                          \
            FENCE();                                                                                            \
        xor_tail(ins, k, out, i, length);                                                                       \
    }                                                                                                           \
    TARGET static void xor_##SUF(int streaming, const uint8_t *const *ins, size_t k, uint8_t *out, size_t length) \
    {                                                                                                           \
        if (k == 2)                                                                                             \
            streaming ? xor_body_##SUF(1, ins, 2, out, length) : xor_body_##SUF(0, ins, 2, out, length);        \
        else if (k == 3)                                                                                        \
            streaming ? xor_body_##SUF(1, ins, 3, out, length) : xor_body_##SUF(0, ins, 3, out, length);        \
        else                                                                                                    \
            streaming ? xor_body_##SUF(1, ins, k, out, length) : xor_body_##SUF(0, ins, k, out, length);        \
    }

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define X86 1
#define T512 __attribute__((target("avx512f")))
#define T256 __attribute__((target("avx2")))
#define T128 __attribute__((target("sse2")))

FLOOR_LOOPS(avx512, T512, __m512i, 64, _mm512_loadu_si512, _mm512_storeu_si512, _mm512_stream_si512,
            _mm512_xor_si512, _mm_sfence)
FLOOR_LOOPS(avx2, T256, __m256i, 32, _mm256_loadu_si256, _mm256_storeu_si256, _mm256_stream_si256,
            _mm256_xor_si256, _mm_sfence)
FLOOR_LOOPS(sse2, T128, __m128i, 16, _mm_loadu_si128, _mm_storeu_si128, _mm_stream_si128, _mm_xor_si128,
            _mm_sfence)
#else
#define X86 0
#endif

int mpss_floor_supported(int isa)
{
#if X86
    __builtin_cpu_init();
    switch (isa) {
    case MPSS_FLOOR_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") != 0;
    case MPSS_FLOOR_ISA_AVX2:
        return __builtin_cpu_supports("avx2") != 0;
    case MPSS_FLOOR_ISA_SSE2:
        return __builtin_cpu_supports("sse2") != 0;
    }
#endif
    return isa == MPSS_FLOOR_ISA_PORTABLE;
}

int mpss_floor_has_streaming(int isa) { return X86 && isa != MPSS_FLOOR_ISA_PORTABLE && mpss_floor_supported(isa); }

size_t mpss_floor_align(int isa)
{
    static const size_t widths[MPSS_FLOOR_ISA_COUNT] = {64, 32, 16, 8};
    return isa >= 0 && isa < MPSS_FLOOR_ISA_COUNT ? widths[isa] : 0;
}

static int check(int isa, int streaming, uint8_t *const *outs, size_t n)
{
    if (!mpss_floor_supported(isa) || (streaming && !mpss_floor_has_streaming(isa)))
        return -1;
    if (streaming)
        for (size_t j = 0; j < n; j++)
            if ((uintptr_t)outs[j] % mpss_floor_align(isa) != 0)
                return -1;
    return 0;
}

int mpss_floor_store(int isa, int streaming, const uint8_t *src, uint8_t *const *outs, size_t n, size_t length)
{
    if (n == 0 || n > MAX_STREAMS || check(isa, streaming, outs, n) != 0)
        return -1;
    /* A local copy of the output pointers: stores through them cannot alias it, so the
     * compiler keeps the pointers in registers or L1 rather than reloading after each store. */
    uint8_t *local[MAX_STREAMS];
    memcpy(local, outs, n * sizeof *outs);
    switch (isa) {
#if X86
    case MPSS_FLOOR_ISA_AVX512:
        store_avx512(streaming, src, local, n, length);
        return 0;
    case MPSS_FLOOR_ISA_AVX2:
        store_avx2(streaming, src, local, n, length);
        return 0;
    case MPSS_FLOOR_ISA_SSE2:
        store_sse2(streaming, src, local, n, length);
        return 0;
#endif
    default:
        store_portable(src, local, n, length);
        return 0;
    }
}

int mpss_floor_xor(int isa, int streaming, const uint8_t *const *ins, size_t k, uint8_t *out, size_t length)
{
    if (k == 0 || k > MAX_STREAMS || check(isa, streaming, &out, 1) != 0)
        return -1;
    const uint8_t *local[MAX_STREAMS];
    memcpy(local, ins, k * sizeof *ins);
    switch (isa) {
#if X86
    case MPSS_FLOOR_ISA_AVX512:
        xor_avx512(streaming, local, k, out, length);
        return 0;
    case MPSS_FLOOR_ISA_AVX2:
        xor_avx2(streaming, local, k, out, length);
        return 0;
    case MPSS_FLOOR_ISA_SSE2:
        xor_sse2(streaming, local, k, out, length);
        return 0;
#endif
    default:
        xor_portable(local, k, out, length);
        return 0;
    }
}

/* --- the keystream bound of keyed splits -------------------------------------------------
 *
 * Not a floor (it reads and writes no memory): the AES-256-CTR work a keyed split cannot
 * avoid, m rows of `length` bytes, the counter block of block b of row j being
 * BE64(j) || BE64(b) as in the engine (mpss_aesctr.h). Each block is encrypted and XORed
 * into a 64-byte fold held in registers (block b into 16-byte lane b % 4), which is the
 * only store: the compiler cannot drop the AES work, and the caller can check the fold
 * against any AES-256-CTR. KS_CHAINS independent encryptions are in flight per step
 * (blocks in xmm, groups of four blocks in zmm) so the aesenc latency is hidden. */

#define KS_CHAINS 8

#if X86
/* Zeros the compiler may not drop as dead stores (the key schedule after use). */
static void wipe(void *buf, size_t len)
{
    volatile uint8_t *p = buf;
    while (len--)
        *p++ = 0;
}

/* 16 bytes of ones, then 16 of zeros: a 16-byte load at head_ones + 16 - r keeps the first
 * r bytes of a block (the last, partial block of a row). */
static const uint8_t head_ones[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

#define AES_XMM_TARGET __attribute__((target("aes,sse2")))
#define AES_ZMM_TARGET __attribute__((target("aes,avx512f,avx512bw,vaes")))

/* Keystream block b of the row whose BE64 counter half is row_be: BE64(row) || BE64(b)
 * through the 14 rounds, the first `valid` bytes kept (1 .. 16). */
AES_XMM_TARGET static inline __attribute__((always_inline)) __m128i ks_xmm_block(const __m128i *rk, uint64_t row_be,
                                                                                uint64_t b, size_t valid)
{
    __m128i x = _mm_xor_si128(_mm_set_epi64x((long long)__builtin_bswap64(b), (long long)row_be), rk[0]);
    for (int r = 1; r < 14; r++)
        x = _mm_aesenc_si128(x, rk[r]);
    x = _mm_aesenclast_si128(x, rk[14]);
    return valid >= 16 ? x : _mm_and_si128(x, _mm_loadu_si128((const __m128i *)(head_ones + 16 - valid)));
}

/* The AES-NI loop, one block per xmm register. Inlined into one function per ISA, so the
 * avx2 copy is VEX-encoded; the counter block is built from two qwords (no byte shuffle). */
AES_XMM_TARGET static inline __attribute__((always_inline)) void ks_xmm_body(const mpss_aes256_schedule *s, size_t m,
                                                                            size_t length, uint8_t fold[64])
{
    __m128i rk[15];
    for (int r = 0; r < 15; r++)
        rk[r] = _mm_load_si128((const __m128i *)s->rk[r]);
    __m128i acc[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
    const uint64_t full = length / 16, blocks = (length + 15) / 16;
    for (uint64_t row = 0; row < m; row++) {
        const uint64_t row_be = __builtin_bswap64(row);
        uint64_t b = 0;
        for (; b + KS_CHAINS <= full; b += KS_CHAINS) {
            __m128i x[KS_CHAINS];
            for (int l = 0; l < KS_CHAINS; l++)
                x[l] = _mm_xor_si128(_mm_set_epi64x((long long)__builtin_bswap64(b + l), (long long)row_be), rk[0]);
            for (int r = 1; r < 14; r++)
                for (int l = 0; l < KS_CHAINS; l++)
                    x[l] = _mm_aesenc_si128(x[l], rk[r]);
            for (int l = 0; l < KS_CHAINS; l++)
                acc[l % 4] = _mm_xor_si128(acc[l % 4], _mm_aesenclast_si128(x[l], rk[14]));
        }
        /* The rest of the row, fewer than KS_CHAINS blocks from a multiple of 4, so the
         * lanes are fixed; the partial last block keeps length % 16 bytes. */
        for (; b < blocks; b += 4)
            for (int l = 0; l < 4 && b + l < blocks; l++) {
                const size_t valid = length - 16 * (b + l) < 16 ? length - 16 * (b + l) : 16;
                const __m128i y = ks_xmm_block(rk, row_be, b + l, valid);
                if (l == 0)
                    acc[0] = _mm_xor_si128(acc[0], y);
                else if (l == 1)
                    acc[1] = _mm_xor_si128(acc[1], y);
                else if (l == 2)
                    acc[2] = _mm_xor_si128(acc[2], y);
                else
                    acc[3] = _mm_xor_si128(acc[3], y);
            }
    }
    for (int i = 0; i < 4; i++)
        _mm_storeu_si128((__m128i *)(fold + 16 * i), acc[i]);
}

AES_XMM_TARGET static void keystream_sse2(const mpss_aes256_schedule *s, size_t m, size_t length, uint8_t fold[64])
{
    ks_xmm_body(s, m, length, fold);
}

__attribute__((target("aes,avx2"))) static void keystream_avx2(const mpss_aes256_schedule *s, size_t m, size_t length,
                                                                uint8_t fold[64])
{
    ks_xmm_body(s, m, length, fold);
}

/* The VAES loop: four consecutive blocks per zmm register (lane i holds block 4g + i, which
 * folds into bytes 16i .. 16i + 15 of the fold as it stands), KS_CHAINS registers in flight. */
AES_ZMM_TARGET static void keystream_vaes512(const mpss_aes256_schedule *s, size_t m, size_t length, uint8_t fold[64])
{
    __m512i rk[15];
    for (int r = 0; r < 15; r++)
        rk[r] = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)s->rk[r]));
    /* Per 128-bit lane the counter is kept as two native qwords (row, block); reversing the
     * bytes of each qword gives the block BE64(row) || BE64(block). */
    const __m512i to_be = _mm512_broadcast_i32x4(_mm_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    const __m512i step = _mm512_set_epi64(4, 0, 4, 0, 4, 0, 4, 0);
    const size_t groups = length / 64, rem = length % 64;
    const __mmask64 tail = rem ? (__mmask64)((1ULL << rem) - 1) : 0;
    __m512i acc = _mm512_setzero_si512();
    for (uint64_t row = 0; row < m; row++) {
        const long long j = (long long)row;
        __m512i ctr = _mm512_set_epi64(3, j, 2, j, 1, j, 0, j);
        size_t g = 0;
        for (; g + KS_CHAINS <= groups; g += KS_CHAINS) {
            __m512i x[KS_CHAINS];
            for (int l = 0; l < KS_CHAINS; l++) {
                x[l] = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, to_be), rk[0]);
                ctr = _mm512_add_epi64(ctr, step);
            }
            for (int r = 1; r < 14; r++)
                for (int l = 0; l < KS_CHAINS; l++)
                    x[l] = _mm512_aesenc_epi128(x[l], rk[r]);
            for (int l = 0; l < KS_CHAINS; l++)
                acc = _mm512_xor_si512(acc, _mm512_aesenclast_epi128(x[l], rk[14]));
        }
        for (; g < groups + (rem != 0); g++) { /* the last groups one register at a time */
            __m512i x = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, to_be), rk[0]);
            ctr = _mm512_add_epi64(ctr, step);
            for (int r = 1; r < 14; r++)
                x = _mm512_aesenc_epi128(x, rk[r]);
            x = _mm512_aesenclast_epi128(x, rk[14]);
            acc = _mm512_xor_si512(acc, g < groups ? x : _mm512_maskz_mov_epi8(tail, x));
        }
    }
    _mm512_storeu_si512((void *)fold, acc);
}
#endif

const char *mpss_floor_keystream_name(int isa)
{
#if X86
    if (!mpss_floor_supported(isa) || !__builtin_cpu_supports("aes"))
        return NULL;
    switch (isa) {
    case MPSS_FLOOR_ISA_AVX512:
        return __builtin_cpu_supports("vaes") && __builtin_cpu_supports("avx512bw") ? "vaes512" : NULL;
    case MPSS_FLOOR_ISA_AVX2:
    case MPSS_FLOOR_ISA_SSE2:
        return "aesni";
    }
#endif
    (void)isa;
    return NULL;
}

int mpss_floor_keystream(int isa, const uint8_t key[32], size_t m, size_t length, uint8_t fold[64])
{
    if (m == 0 || m > MPSS_FLOOR_MAX_ROWS || mpss_floor_keystream_name(isa) == NULL)
        return -1;
#if X86
    mpss_aes256_schedule sched;
    mpss_aes256_expand(key, &sched); /* per call, as a keyed split expands its fresh key */
    switch (isa) {
    case MPSS_FLOOR_ISA_AVX512:
        keystream_vaes512(&sched, m, length, fold);
        break;
    case MPSS_FLOOR_ISA_AVX2:
        keystream_avx2(&sched, m, length, fold);
        break;
    default:
        keystream_sse2(&sched, m, length, fold);
        break;
    }
    wipe(&sched, sizeof sched);
    return 0;
#else
    (void)key, (void)length, (void)fold;
    return -1;
#endif
}
