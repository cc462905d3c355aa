#include "mpss_aesctr.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AESNI_TARGET __attribute__((target("aes,sse2")))
#define VAES_TARGET __attribute__((target("aes,avx512f,avx512bw,vaes")))

/* FIPS-197 key expansion, two round keys per Rcon. aeskeygenassist(v, rcon) gives, in
 * dword 3, RotWord(SubWord(v.dword3)) ^ rcon and, in dword 2, SubWord(v.dword3): the
 * `temp` of the i % 8 == 0 and i % 8 == 4 steps. The shifts turn the four XORs
 * w[i] = w[i-8] ^ w[i-1] of a round key into a prefix XOR of the key two rounds back. */
AESNI_TARGET static inline __m128i prefix_xor(__m128i v)
{
    v = _mm_xor_si128(v, _mm_slli_si128(v, 4));
    v = _mm_xor_si128(v, _mm_slli_si128(v, 4));
    return _mm_xor_si128(v, _mm_slli_si128(v, 4));
}

#define EXPAND_PAIR(i, rcon)                                                                   \
    do {                                                                                       \
        rk[i] = _mm_xor_si128(prefix_xor(rk[(i) - 2]),                                         \
                              _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[(i) - 1], rcon), 0xFF)); \
        if ((i) + 1 < 15)                                                                      \
            rk[(i) + 1] = _mm_xor_si128(prefix_xor(rk[(i) - 1]),                               \
                                        _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i], 0), 0xAA)); \
    } while (0)

AESNI_TARGET void mpss_aes256_expand(const uint8_t key[32], mpss_aes256_schedule *s)
{
    __m128i rk[15];
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    rk[1] = _mm_loadu_si128((const __m128i *)(key + 16));
    EXPAND_PAIR(2, 0x01);
    EXPAND_PAIR(4, 0x02);
    EXPAND_PAIR(6, 0x04);
    EXPAND_PAIR(8, 0x08);
    EXPAND_PAIR(10, 0x10);
    EXPAND_PAIR(12, 0x20);
    EXPAND_PAIR(14, 0x40);
    for (int i = 0; i < 15; i++)
        _mm_store_si128((__m128i *)s->rk[i], rk[i]);
    memset(rk, 0, sizeof rk); /* best effort: the schedule itself is wiped by the caller */
}

/* The counter block BE64(row) || BE64(block) as loaded from memory. */
AESNI_TARGET static inline __m128i counter_block(uint64_t row, uint64_t block)
{
    return _mm_set_epi64x((long long)__builtin_bswap64(block), (long long)__builtin_bswap64(row));
}

/* --- aesni: 128-bit AES-NI, eight blocks in flight ------------------------------------ */

#define AESNI_LANES 8

/* Encrypts L counter blocks from block b and stores them; L is a constant in each caller,
 * so the L independent chains stay in registers and interleave. */
#define AESNI_RUN(L)                                                                           \
    do {                                                                                       \
        __m128i x[L];                                                                          \
        for (size_t l = 0; l < (L); l++)                                                       \
            x[l] = _mm_xor_si128(counter_block(row, b + l), rk[0]);                            \
        for (int r = 1; r < 14; r++)                                                           \
            for (size_t l = 0; l < (L); l++)                                                   \
                x[l] = _mm_aesenc_si128(x[l], rk[r]);                                          \
        for (size_t l = 0; l < (L); l++)                                                       \
            _mm_storeu_si128((__m128i *)(out + 16 * l), _mm_aesenclast_si128(x[l], rk[14]));   \
        b += (L);                                                                              \
        out += 16 * (L);                                                                       \
    } while (0)

AESNI_TARGET static void ctr_aesni(const mpss_aes256_schedule *s, uint64_t row, uint64_t first_block,
                                   uint8_t *out, size_t nblocks)
{
    __m128i rk[15];
    for (int r = 0; r < 15; r++)
        rk[r] = _mm_load_si128((const __m128i *)s->rk[r]);
    uint64_t b = first_block;
    const uint64_t end = first_block + nblocks;
    while (end - b >= AESNI_LANES)
        AESNI_RUN(AESNI_LANES);
    while (b < end)
        AESNI_RUN(1);
}

static int aesni_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse2");
}

/* --- vaes512: four blocks per zmm register, eight registers in flight ----------------- */

#define VAES_REGS 8

VAES_TARGET static void ctr_vaes512(const mpss_aes256_schedule *s, uint64_t row, uint64_t first_block,
                                    uint8_t *out, size_t nblocks)
{
    __m512i rk[15];
    for (int r = 0; r < 15; r++)
        rk[r] = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)s->rk[r]));
    /* Counters kept as little-endian qwords (row, block) per 128-bit lane and byte-swapped
     * per qword into the big-endian counter block before use. */
    const __m512i bswap64 = _mm512_broadcast_i32x4(
        _mm_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    const __m512i step = _mm512_set_epi64(4, 0, 4, 0, 4, 0, 4, 0);
    __m512i ctr = _mm512_add_epi64(_mm512_set_epi64((long long)first_block, (long long)row, (long long)first_block,
                                                    (long long)row, (long long)first_block, (long long)row,
                                                    (long long)first_block, (long long)row),
                                   _mm512_set_epi64(3, 0, 2, 0, 1, 0, 0, 0));
    uint8_t *p = out;
    size_t left = nblocks;
#define VAES_RUN(R)                                                                            \
    do {                                                                                       \
        __m512i x[R];                                                                          \
        for (size_t l = 0; l < (R); l++) {                                                     \
            x[l] = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, bswap64), rk[0]);                 \
            ctr = _mm512_add_epi64(ctr, step);                                                 \
        }                                                                                      \
        for (int r = 1; r < 14; r++)                                                           \
            for (size_t l = 0; l < (R); l++)                                                   \
                x[l] = _mm512_aesenc_epi128(x[l], rk[r]);                                      \
        for (size_t l = 0; l < (R); l++)                                                       \
            _mm512_storeu_si512((void *)(p + 64 * l), _mm512_aesenclast_epi128(x[l], rk[14])); \
        p += 64 * (R);                                                                         \
        left -= 4 * (R);                                                                       \
    } while (0)
    while (left >= 4 * VAES_REGS)
        VAES_RUN(VAES_REGS);
    while (left >= 4)
        VAES_RUN(1);
#undef VAES_RUN
    if (left)
        ctr_aesni(s, row, first_block + (nblocks - left), p, left);
}

static int vaes512_supported(void)
{
    __builtin_cpu_init();
    return aesni_supported() && __builtin_cpu_supports("vaes") && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw");
}

static const mpss_ctr_impl impl_vaes512 = {"vaes512", vaes512_supported, ctr_vaes512};
static const mpss_ctr_impl impl_aesni = {"aesni", aesni_supported, ctr_aesni};

const mpss_ctr_impl *const mpss_ctr_impls[] = {&impl_vaes512, &impl_aesni, 0};

#else /* not x86: no AES instructions used; callers take the library keystream */

const mpss_ctr_impl *const mpss_ctr_impls[] = {0};

void mpss_aes256_expand(const uint8_t key[32], mpss_aes256_schedule *s)
{
    (void)key;
    memset(s, 0, sizeof *s);
}
#endif

const mpss_ctr_impl *mpss_ctr_named(const char *name)
{
    for (const mpss_ctr_impl *const *c = mpss_ctr_impls; *c; c++)
        if (strcmp((*c)->name, name) == 0)
            return *c;
    return 0;
}

const mpss_ctr_impl *mpss_ctr_best(void)
{
    for (const mpss_ctr_impl *const *c = mpss_ctr_impls; *c; c++)
        if ((*c)->supported())
            return *c;
    return 0;
}
