/* The floor loops of `mpss bench` (see mpss_floor.h): read once, store n times; XOR of k
 * streams into one. One copy of each loop per instruction set, built with a per-function
 * target attribute (the extension itself is baseline x86-64) and picked at run time. The
 * loads are unaligned; streaming stores need aligned outputs (checked), then an sfence. */
#include "mpss_floor.h"

#include <string.h>

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
