/* Shared pieces of the constant-time tiers (gfni512, gfni256, avx2, ssse3, swar).
 *
 * Part 1 (always): builders for the per-constant operands of each technique. They run
 * once per call on public constants only (x coordinates, their powers, Lagrange weights),
 * so they may use the log/antilog tables and branch freely.
 *
 * Part 2 (only when the including file defines MPSS_SIMD_TEMPLATE): the kernels, written
 * once over a small set of vector primitives that each tier file defines first. Secret
 * bytes only ever flow through those primitives (loads, stores, XOR, and a multiply by a
 * public constant that indexes no memory), and every branch and address below depends
 * only on lengths, counts and the public constants: the kernels are constant time as long
 * as the primitives are.
 */
#ifndef MPSS_SIMD_TEMPLATE_H
#define MPSS_SIMD_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpss_gf256.h"
#include "mpss_keyed.h"
#include "mpss_osrandom.h" /* mpss_wipe */
#include "mpss_table.h" /* mpss_lagrange_weight */

/* The 8x8 bit matrix of v -> c*v for gf2p8affineqb. The instruction computes output bit
 * i as parity(A.byte[7 - i] & v), so byte 7 - i holds row i: its bit b is bit i of c*x^b. */
static inline uint64_t mpss_simd_gf_matrix(const mpss_gf256_field *f, uint8_t c)
{
    uint64_t a = 0;
    for (unsigned b = 0; b < 8; b++) {
        const unsigned column = mpss_gf256_mul(f, c, (uint8_t)(1u << b));
        for (unsigned i = 0; i < 8; i++)
            a |= (uint64_t)((column >> i) & 1) << (8 * (7 - i) + b);
    }
    return a;
}

/* PSHUFB nibble tables: c*v = lo[v & 15] ^ hi[v >> 4] (multiplication is linear). */
typedef struct {
    uint8_t lo[16], hi[16];
} mpss_simd_nibbles;

static inline void mpss_simd_nibble_tables(const mpss_gf256_field *f, uint8_t c, mpss_simd_nibbles *t)
{
    for (unsigned v = 0; v < 16; v++) {
        t->lo[v] = mpss_gf256_mul(f, c, (uint8_t)v);
        t->hi[v] = mpss_gf256_mul(f, c, (uint8_t)(v << 4));
    }
}

/* SWAR: multiple[b] = c*x^b in all eight bytes, so c*v = XOR over the set bits b of v. */
static inline void mpss_simd_bit_multiples(const mpss_gf256_field *f, uint8_t c, uint64_t multiple[8])
{
    for (unsigned b = 0; b < 8; b++)
        multiple[b] = 0x0101010101010101ull * mpss_gf256_mul(f, c, (uint8_t)(1u << b));
}

/* Size of part i when total is cut into ceil(total / max) parts as even as possible. */
static inline size_t mpss_simd_part_size(size_t total, size_t max, size_t i)
{
    const size_t parts = (total + max - 1) / max;
    return total / parts + (i < total % parts);
}

#endif /* MPSS_SIMD_TEMPLATE_H */

#ifdef MPSS_SIMD_TEMPLATE
/*
 * The including tier file defines:
 *   MPSS_TARGET       function attributes that enable its instruction set (may be empty)
 *   MPSS_VEC_W        bytes per vector
 *   MPSS_EVAL_G       shares evaluated together in one pass (1..8)
 *   MPSS_COMBINE_G    inputs unrolled in one combine pass (1..8)
 *   vec_t             a vector of MPSS_VEC_W bytes
 *   prep_t            a vector made ready for multiplication (e.g. split into nibbles);
 *                     one prepared coefficient serves every share of a group
 *   konst_t           the stored operand of one public constant (matrix, tables, multiples)
 *   kreg_t            the same operand ready for use (e.g. broadcast to a full vector)
 *   konst_build(f, c, &k), k_load(&k) -> kreg_t
 *   v_load(p), v_store(p, v), v_zero(), v_xor(a, b), v_prep(v), v_mul(kreg, prep)
 * and optionally:
 *   MPSS_MASKED_TAILS with v_load_part(p, n), v_store_part(p, v, n) for 0 < n < MPSS_VEC_W
 *                     (otherwise tails go through a vector-sized stack buffer)
 *   MPSS_HAVE_STREAM  with v_stream(p, v) (non-temporal, p aligned) and v_stream_fence():
 *                     combine and XOR stream their output above MPSS_STREAM_MIN bytes
 *                     (combine from MPSS_STREAM_MIN_MANY when it reads three inputs or more)
 *   MPSS_EVAL_STREAM_G  shares per group when eval streams too (default 0: it never does)
 */

/* Every helper is forced inline so that the group size G, the coefficient count M, the
 * store kind NT and the byte count of a full step are compile-time constants in each
 * dispatched copy: accumulators, pointers and operands then live in registers and the
 * full steps carry no tail checks. */
#define MPSS_INLINE static inline __attribute__((always_inline)) MPSS_TARGET

/* Bytes per block: the groups of one eval block find its coefficients still in L1. */
#define MPSS_BLOCK (128 * MPSS_VEC_W)
/* Coefficients per Horner chunk (see simd_eval); also the powers kept per share. */
#define MPSS_CHUNK 4
/* Operands per call that fit in the stack buffer; more are malloc'd. */
#define MPSS_STACK_KONSTS (4096 / sizeof(konst_t))

#ifndef MPSS_MASKED_TAILS
/* A tail goes through a zeroed vector-sized buffer; memcpy of a public length is
 * constant time with respect to the bytes it copies. */
MPSS_INLINE vec_t v_load_part(const uint8_t *p, size_t n)
{
    uint8_t tmp[MPSS_VEC_W] = {0};
    memcpy(tmp, p, n);
    return v_load(tmp);
}

MPSS_INLINE void v_store_part(uint8_t *p, vec_t v, size_t n)
{
    uint8_t tmp[MPSS_VEC_W];
    v_store(tmp, v);
    memcpy(p, tmp, n);
}
#endif

/* Non-temporal stores pay off once a call's outputs are too large to stay in the caches
 * anyway (measured at 16 MiB: XOR and combine 10-40 % faster); below that they would
 * only make the reader of the outputs miss. A combine of three inputs or more moves four
 * times its output through the caches, so it streams from 1 MiB of output: measured on
 * Zen 4 (mpss bench, fractions of the floor), the 1 MiB combine ran 5-8 % and the 3 MiB
 * key combine 10-15 % faster streamed. The XORs keep ordinary stores up to 8 MiB: a
 * 1 MiB xor_into ran 10 % and a 1 MiB reencrypt_into (xor3) 25 % faster with them. */
#ifndef MPSS_STREAM_MIN
#define MPSS_STREAM_MIN ((size_t)8 << 20) /* bytes of output */
#endif
#ifndef MPSS_STREAM_MIN_MANY
#define MPSS_STREAM_MIN_MANY ((size_t)1 << 20) /* bytes of output of a combine of three inputs or more */
#endif
#ifndef MPSS_EVAL_STREAM_G
#define MPSS_EVAL_STREAM_G 0
#endif
#ifdef MPSS_HAVE_STREAM
#define MPSS_STREAMS(bytes) ((bytes) > MPSS_STREAM_MIN)
#define MPSS_STREAMS_MANY(bytes) ((bytes) >= MPSS_STREAM_MIN_MANY)
#else
#define MPSS_STREAMS(bytes) 0
#define MPSS_STREAMS_MANY(bytes) 0
#define v_stream v_store
MPSS_INLINE void v_stream_fence(void) {}
#endif

MPSS_INLINE vec_t load_n(const uint8_t *p, size_t n)
{
    return n == MPSS_VEC_W ? v_load(p) : v_load_part(p, n);
}

/* A store of n bytes; NT: non-temporal (full vectors only, at aligned addresses). */
MPSS_INLINE void store_n(uint8_t *p, vec_t v, size_t n, int NT)
{
    if (n == MPSS_VEC_W && NT)
        v_stream(p, v);
    else if (n == MPSS_VEC_W)
        v_store(p, v);
    else
        v_store_part(p, v, n);
}

/* Bytes from p to the next vector boundary, at most len. */
static inline size_t head_bytes(const uint8_t *p, size_t len)
{
    const size_t h = (size_t)(-(uintptr_t)p % MPSS_VEC_W);
    return h < len ? h : len;
}

/* Runs bytes [start, start + len) as FULL(t) vector steps and PART(t, nb) short ones
 * (the last, and with NT a first one that brings `aligned + t` to a vector boundary so
 * that every full step can stream its stores). */
#define MPSS_STEPS(FULL, PART, NT, aligned, start, len)                                        \
    do {                                                                                       \
        size_t t_ = (start);                                                                   \
        const size_t end_ = t_ + (len), head_ = (NT) ? head_bytes((aligned) + t_, (len)) : 0;  \
        if (head_)                                                                             \
            PART(t_, head_);                                                                   \
        for (t_ += head_; t_ + MPSS_VEC_W <= end_; t_ += MPSS_VEC_W)                           \
            FULL(t_);                                                                          \
        if (t_ < end_)                                                                         \
            PART(t_, end_ - t_);                                                               \
    } while (0)

/* Space for `count` operands: the stack buffer when they fit, else the heap (NULL on OOM). */
static inline konst_t *konst_alloc(size_t count, konst_t *stack)
{
    return count <= MPSS_STACK_KONSTS ? stack : (konst_t *)malloc(count * sizeof(konst_t));
}

static inline void konst_free(konst_t *k, konst_t *stack)
{
    if (k != stack)
        free(k);
}

/*
 * Evaluation. With the coefficients cut into chunks of C = min(m, MPSS_CHUNK) from the bottom,
 *   y = s + sum_k x^(C k) P_k,   P_k = sum_{i<C} c_{C k + i} x^(i+1),
 * Horner over the chunks from the top one (which holds the odd width) down:
 *   y <- P_top;  y <- x^C y + P_k for each lower k;  y <- y + s.
 * Each share keeps the operands of x^1..x^C; every coefficient vector is loaded and
 * prepared once for the whole group, and with m <= C there is no Horner step at all.
 *
 * M is m as a compile-time constant when m <= MPSS_CHUNK (thresholds k <= 5), so the
 * group's G x M operands are loaded into registers once per run; M = 0 is any m, with the
 * operands loaded where they are used. Short steps share one out-of-line copy in which G
 * is not a constant either.
 */
typedef struct {
    const uint8_t *secret;
    const uint8_t *const *coeffs;
    size_t m;
    const konst_t *kx; /* C per share */
} eval_args;

/* Bytes [t, t + nb) of the G shares with outputs o and operands K (M > 0) or a->kx. */
MPSS_INLINE void eval_step(const size_t G, const size_t M, const eval_args *a, kreg_t (*K)[MPSS_CHUNK],
                           uint8_t *const *o, size_t t, size_t nb, int NT)
{
    vec_t acc[8];
    const size_t m = M ? M : a->m, C = m < MPSS_CHUNK ? m : MPSS_CHUNK, top = (m - 1) / C * C;
    for (size_t g = 0; g < G; g++)
        acc[g] = v_zero();
    for (size_t j = top;; j -= C) {
        const size_t width = j == top ? m - top : C;
        if (j != top)
            for (size_t g = 0; g < G; g++)
                acc[g] = v_mul(k_load(&a->kx[C * g + C - 1]), v_prep(acc[g]));
        for (size_t i = 0; i < width; i++) {
            const prep_t p = v_prep(load_n(a->coeffs[j + i] + t, nb));
            for (size_t g = 0; g < G; g++)
                acc[g] = v_xor(acc[g], v_mul(M ? K[g][i] : k_load(&a->kx[C * g + i]), p));
        }
        if (j == 0)
            break;
    }
    const vec_t s = load_n(a->secret + t, nb);
    for (size_t g = 0; g < G; g++)
        store_n(o[g] + t, v_xor(acc[g], s), nb, NT);
}

MPSS_TARGET __attribute__((noinline)) static void eval_part(size_t g, const eval_args *a, uint8_t *const *o,
                                                            size_t t, size_t nb)
{
    eval_step(g, 0, a, NULL, o, t, nb, 0);
}

/* Bytes [start, start + len) of shares outs[0..G). */
MPSS_INLINE void eval_run(const size_t G, const size_t M, const int NT, const eval_args *a,
                          uint8_t *const *outs, size_t start, size_t len)
{
    uint8_t *o[8];
    kreg_t K[8][MPSS_CHUNK];
    for (size_t g = 0; g < G; g++) {
        o[g] = outs[g];
        for (size_t i = 0; i < M; i++)
            K[g][i] = k_load(&a->kx[M * g + i]);
    }
#define MPSS_EVAL_FULL(t) eval_step(G, M, a, K, o, t, MPSS_VEC_W, NT)
#define MPSS_EVAL_PART(t, nb) eval_part(G, a, o, t, nb)
    MPSS_STEPS(MPSS_EVAL_FULL, MPSS_EVAL_PART, NT, o[0], start, len);
#undef MPSS_EVAL_FULL
#undef MPSS_EVAL_PART
}

/* switch (v) over 1..8, each case running CASE(constant). */
#define MPSS_SWITCH_8(v, CASE)                                                                 \
    switch (v) {                                                                               \
    case 1: CASE(1); break;                                                                    \
    case 2: CASE(2); break;                                                                    \
    case 3: CASE(3); break;                                                                    \
    case 4: CASE(4); break;                                                                    \
    case 5: CASE(5); break;                                                                    \
    case 6: CASE(6); break;                                                                    \
    case 7: CASE(7); break;                                                                    \
    case 8: CASE(8); break;                                                                    \
    default: break;                                                                            \
    }

#if MPSS_CHUNK != 4 || MPSS_EVAL_G > 8 || MPSS_COMBINE_G > 8
#error "the dispatch below covers m = 1..4 and groups of up to 8"
#endif

/* Shares outs[0..g) over bytes [start, start + len); nt: stream, if their alignments agree.
 * The cases above MPSS_EVAL_G (or MPSS_EVAL_STREAM_G) are never reached and compile away. */
MPSS_TARGET static void eval_group(size_t g, const eval_args *a, uint8_t *const *outs, int nt, size_t start,
                                   size_t len)
{
    for (size_t i = 1; i < g; i++)
        nt &= (uintptr_t)outs[i] % MPSS_VEC_W == (uintptr_t)outs[0] % MPSS_VEC_W;
#define MPSS_EVAL_RUN(G, M)                                                                    \
    do {                                                                                       \
        if (nt && (G) <= MPSS_EVAL_STREAM_G)                                                   \
            eval_run(G, M, 1, a, outs, start, len);                                            \
        else if ((G) <= MPSS_EVAL_G)                                                           \
            eval_run(G, M, 0, a, outs, start, len);                                            \
    } while (0)
#define MPSS_EVAL_M(G)                                                                         \
    switch (a->m) {                                                                            \
    case 1: MPSS_EVAL_RUN(G, 1); break;                                                        \
    case 2: MPSS_EVAL_RUN(G, 2); break;                                                        \
    case 3: MPSS_EVAL_RUN(G, 3); break;                                                        \
    case 4: MPSS_EVAL_RUN(G, 4); break;                                                        \
    default: MPSS_EVAL_RUN(G, 0); break;                                                       \
    }
    MPSS_SWITCH_8(g, MPSS_EVAL_M)
#undef MPSS_EVAL_M
#undef MPSS_EVAL_RUN
}

/* Operands of x^1..x^C for every share: kx[C * i + e] for x_i^(e+1). NULL on OOM. */
static konst_t *eval_konsts(const mpss_gf256_field *f, size_t m, const uint8_t *xs, size_t n, konst_t *stack)
{
    const size_t C = m < MPSS_CHUNK ? m : MPSS_CHUNK;
    konst_t *kx = konst_alloc(n * C, stack);
    if (!kx)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        uint8_t p = 1;
        for (size_t e = 0; e < C; e++) {
            p = mpss_gf256_mul(f, p, xs[i]);
            konst_build(f, p, &kx[C * i + e]);
        }
    }
    return kx;
}

/* Bytes [start, start + len) of every share, group by group; nt: stream the stores. */
MPSS_TARGET static void eval_range(const uint8_t *secret, const uint8_t *const *coeffs, size_t m,
                                   const konst_t *kx, uint8_t *const *outs, size_t n, int nt, size_t start,
                                   size_t len)
{
    const size_t C = m < MPSS_CHUNK ? m : MPSS_CHUNK;
    const size_t group = nt ? MPSS_EVAL_STREAM_G : MPSS_EVAL_G;
    /* One group writes each share once; more groups go block by block so that each
     * re-reads the coefficients from L1. */
    const size_t block = n <= group ? len : MPSS_BLOCK;
    for (size_t b = start, end = start + len; b < end; b += block) {
        const size_t size = end - b < block ? end - b : block;
        for (size_t gi = 0, i = 0, g; i < n; gi++, i += g) {
            g = mpss_simd_part_size(n, group, gi);
            const eval_args a = {secret, coeffs, m, kx + C * i};
            eval_group(g, &a, outs + i, nt, b, size);
        }
    }
}

MPSS_TARGET static int simd_eval(const mpss_gf256_field *f, const uint8_t *secret,
                                 const uint8_t *const *coeffs, size_t m, const uint8_t *xs,
                                 uint8_t *const *outs, size_t n, size_t len)
{
    if (len == 0)
        return 0;
    konst_t stack[MPSS_STACK_KONSTS];
    konst_t *kx = eval_konsts(f, m, xs, n, stack);
    if (!kx)
        return -1;
    const int nt = MPSS_EVAL_STREAM_G > 0 && MPSS_STREAMS(n * len);
    eval_range(secret, coeffs, m, kx, outs, n, nt, 0, len);
    if (nt)
        v_stream_fence();
    konst_free(kx, stack);
    return 0;
}

#ifdef MPSS_HAVE_FUSED_CTR
/*
 * Fused keyed split: the coefficient vectors are AES-256-CTR keystream made in registers
 * right where the evaluation needs them, so they never touch memory at all. The tier
 * defines (under MPSS_FUSED_TARGET, its own instruction set plus VAES):
 *   fused_supported()            the CPU runs MPSS_FUSED_TARGET
 *   c_round_key(rk16)            a round key in every 128-bit lane
 *   c_counter(row, block)        lane l holds the qwords (row, block + l)
 *   c_advance(c, blocks)         every lane's block + blocks
 *   c_block(c)                   the counter blocks BE64(row) || BE64(block) of c
 *   c_enc(v, rk), c_enclast(v, rk)
 * A vector at byte t (a multiple of 16) of row j is the encryption of the counter blocks
 * (j, t/16 + l): byte t of the keystream row j, exactly what the buffered path reads. U
 * vector steps go together so that U * M independent AES chains hide the latency of each
 * round. Only counters (public) and keys enter the AES instructions' addresses: none.
 */
#define MPSS_FUSED_INLINE static inline __attribute__((always_inline)) MPSS_FUSED_TARGET
#define MPSS_LANES (MPSS_VEC_W / 16)
/* Vector steps per round of AES work: 8 chains in flight for m = 2 and 4 ... */
#define MPSS_FUSED_U(M) ((M) == 1 ? 8 : (M) == 2 ? 4 : 2)
/* The most bytes the fused loop leaves to the buffered path: an alignment head below one
 * vector and a tail below one round of U steps. */
#define MPSS_FUSED_REST (MPSS_VEC_W + 8 * MPSS_VEC_W)

MPSS_FUSED_INLINE void fused_steps(const size_t G, const size_t M, const int NT, const vec_t *rk, vec_t *ctr,
                                   const kreg_t (*K)[MPSS_CHUNK], int one, const uint8_t *secret,
                                   uint8_t *const *o, size_t t)
{
    const size_t U = MPSS_FUSED_U(M);
    vec_t x[MPSS_FUSED_U(1)][MPSS_CHUNK];
    for (size_t i = 0; i < M; i++) {
        vec_t c = ctr[i];
        for (size_t u = 0; u < U; u++) {
            x[u][i] = v_xor(c_block(c), rk[0]);
            c = c_advance(c, MPSS_LANES);
        }
        ctr[i] = c;
    }
    for (int r = 1; r < 14; r++)
        for (size_t u = 0; u < U; u++)
            for (size_t i = 0; i < M; i++)
                x[u][i] = c_enc(x[u][i], rk[r]);
    for (size_t u = 0; u < U; u++)
        for (size_t i = 0; i < M; i++)
            x[u][i] = c_enclast(x[u][i], rk[14]);
    for (size_t u = 0; u < U; u++) {
        const size_t at = t + u * MPSS_VEC_W;
        const vec_t s = v_load(secret + at);
        prep_t p[MPSS_CHUNK];
        for (size_t i = 0; i < M; i++)
            p[i] = v_prep(x[u][i]);
        for (size_t g = 0; g < G; g++) {
            vec_t acc = s;
            if (g == 0 && one) /* x = 1: every power is 1, no multiply (x is public) */
                for (size_t i = 0; i < M; i++)
                    acc = v_xor(acc, x[u][i]);
            else
                for (size_t i = 0; i < M; i++)
                    acc = v_xor(acc, v_mul(K[g][i], p[i]));
            if (NT)
                v_stream(o[g] + at, acc);
            else
                v_store(o[g] + at, acc);
        }
    }
}

/* Bytes from start (a multiple of 16) in whole rounds of U steps; returns where it stopped. */
MPSS_FUSED_INLINE size_t fused_run(const size_t G, const size_t M, const int NT, const mpss_aes256_schedule *key,
                                   const konst_t *kx, int one, const uint8_t *secret, uint8_t *const *outs,
                                   size_t start, size_t end)
{
    const size_t step = MPSS_FUSED_U(M) * MPSS_VEC_W;
    vec_t rk[15], ctr[MPSS_CHUNK];
    kreg_t K[8][MPSS_CHUNK];
    uint8_t *o[8];
    for (int r = 0; r < 15; r++)
        rk[r] = c_round_key(key->rk[r]);
    for (size_t i = 0; i < M; i++)
        ctr[i] = c_counter((uint64_t)i, (uint64_t)(start / 16));
    for (size_t g = 0; g < G; g++) {
        o[g] = outs[g];
        for (size_t i = 0; i < M; i++)
            K[g][i] = k_load(&kx[M * g + i]);
    }
    size_t t = start;
    for (; end - t >= step; t += step)
        fused_steps(G, M, NT, rk, ctr, (const kreg_t(*)[MPSS_CHUNK])K, one, secret, o, t);
    for (size_t i = 0; i < M; i++)
        ctr[i] = v_zero();
    return t;
}

MPSS_FUSED_TARGET __attribute__((noinline)) static size_t fused_dispatch(size_t n, size_t m, int nt,
                                                                         const mpss_aes256_schedule *key,
                                                                         const konst_t *kx, int one,
                                                                         const uint8_t *secret,
                                                                         uint8_t *const *outs, size_t start,
                                                                         size_t end)
{
    size_t done = start;
#define MPSS_FUSED_NT(G, M)                                                                    \
    do {                                                                                       \
        if (nt)                                                                                \
            done = fused_run(G, M, 1, key, kx, one, secret, outs, start, end);                 \
        else                                                                                   \
            done = fused_run(G, M, 0, key, kx, one, secret, outs, start, end);                 \
    } while (0)
#define MPSS_FUSED_M(G)                                                                        \
    switch (m) {                                                                               \
    case 1: MPSS_FUSED_NT(G, 1); break;                                                        \
    case 2: MPSS_FUSED_NT(G, 2); break;                                                        \
    case 3: MPSS_FUSED_NT(G, 3); break;                                                        \
    case 4: MPSS_FUSED_NT(G, 4); break;                                                        \
    default: break;                                                                            \
    }
    MPSS_SWITCH_8(n, MPSS_FUSED_M)
#undef MPSS_FUSED_M
#undef MPSS_FUSED_NT
    return done;
}

/* Bytes [start, start + size) (start a multiple of 16, size <= MPSS_FUSED_REST) through a
 * stack buffer of keystream rows, wiped afterwards. */
MPSS_TARGET static void keyed_rest(const mpss_ctr_impl *ctr, const mpss_aes256_schedule *key,
                                   const uint8_t *secret, size_t m, const konst_t *kx, uint8_t *const *outs,
                                   size_t n, size_t start, size_t size)
{
    _Alignas(64) uint8_t rows[MPSS_CHUNK][MPSS_FUSED_REST + 16];
    const uint8_t *c[MPSS_CHUNK];
    uint8_t *o[8];
    if (size == 0)
        return;
    for (size_t j = 0; j < m; j++) {
        ctr->run(key, (uint64_t)j, (uint64_t)(start / 16), rows[j], (size + 15) / 16);
        c[j] = rows[j];
    }
    for (size_t i = 0; i < n; i++)
        o[i] = outs[i] + start;
    eval_range(secret + start, c, m, kx, o, n, 0, 0, size);
    mpss_wipe(rows, sizeof rows);
}

/* The fused split when it applies (the VAES keystream, m <= 4, n <= 8); -2 when it does not. */
MPSS_TARGET static int fused_eval_keyed(const mpss_gf256_field *f, const mpss_ctr_impl *ctr,
                                        const mpss_aes256_schedule *key, const uint8_t *secret, size_t m,
                                        const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len)
{
    if (m > MPSS_CHUNK || n > MPSS_EVAL_G || len < 2 * MPSS_FUSED_REST || strcmp(ctr->name, "vaes512") != 0 ||
        !fused_supported())
        return -2;
    konst_t kx[8 * MPSS_CHUNK];
    for (size_t i = 0; i < n; i++) {
        uint8_t p = 1;
        for (size_t e = 0; e < m; e++) {
            p = mpss_gf256_mul(f, p, xs[i]);
            konst_build(f, p, &kx[m * i + e]);
        }
    }
    /* Stream when the outputs are large and a 16-byte-aligned start brings all of them
     * to a vector boundary together. */
    size_t head = 0;
    int nt = MPSS_STREAMS(n * len);
    if (nt) {
        head = head_bytes(outs[0], len);
        for (size_t i = 1; i < n; i++)
            nt &= (uintptr_t)outs[i] % MPSS_VEC_W == (uintptr_t)outs[0] % MPSS_VEC_W;
        nt &= head % 16 == 0;
        if (!nt)
            head = 0;
    }
    keyed_rest(ctr, key, secret, m, kx, outs, n, 0, head);
    const size_t done = fused_dispatch(n, m, nt, key, kx, xs[0] == 1, secret, outs, head, len);
    if (nt)
        v_stream_fence();
    keyed_rest(ctr, key, secret, m, kx, outs, n, done, len - done);
    return 0;
}
#endif /* MPSS_HAVE_FUSED_CTR */

/* Keyed split: the coefficient rows are AES-256-CTR keystream made block by block into a
 * small buffer that stays in L1/L2 while the shares of that block are evaluated, so the
 * coefficients never go out to memory and the operands are built once per call. */
MPSS_TARGET static int simd_eval_keyed(const mpss_gf256_field *f, const mpss_ctr_impl *ctr,
                                       const mpss_aes256_schedule *key, const uint8_t *secret, size_t m,
                                       const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len)
{
    if (len == 0)
        return 0;
#ifdef MPSS_HAVE_FUSED_CTR
    const int fused = fused_eval_keyed(f, ctr, key, secret, m, xs, outs, n, len);
    if (fused != -2)
        return fused;
#endif
    const size_t row_bytes = mpss_keyed_row_bytes(m);
    mpss_keyed_buffer buf;
    if (mpss_keyed_buffer_init(&buf, m, row_bytes) != 0)
        return -1;
    konst_t stack[MPSS_STACK_KONSTS];
    konst_t *kx = eval_konsts(f, m, xs, n, stack);
    if (!kx) {
        mpss_keyed_buffer_free(&buf);
        return -1;
    }
    const int nt = MPSS_EVAL_STREAM_G > 0 && MPSS_STREAMS(n * len);
    uint8_t *o[255];
    for (size_t start = 0; start < len; start += row_bytes) {
        const size_t size = len - start < row_bytes ? len - start : row_bytes;
        mpss_keyed_fill(&buf, ctr, key, start, size);
        for (size_t i = 0; i < n; i++)
            o[i] = outs[i] + start;
        eval_range(secret + start, (const uint8_t *const *)buf.rows, m, kx, o, n, nt, 0, size);
    }
    if (nt)
        v_stream_fence();
    konst_free(kx, stack);
    mpss_keyed_buffer_free(&buf);
    return 0;
}

/* Combine: out = sum_i w_i y_i in one pass. The first G inputs are unrolled (their
 * pointers and operands stay in registers); any further ones, and all of them in the one
 * out-of-line copy for short steps (G = 0), are added in a loop. */
MPSS_INLINE void combine_step(const size_t G, const uint8_t *const *y, const kreg_t *K,
                              const uint8_t *const *ys, size_t count, const konst_t *kw, uint8_t *out,
                              size_t t, size_t nb, int NT)
{
    vec_t acc = v_zero();
    for (size_t q = 0; q < G; q++)
        acc = v_xor(acc, v_mul(K[q], v_prep(load_n(y[q] + t, nb))));
    for (size_t q = G; q < count; q++)
        acc = v_xor(acc, v_mul(k_load(&kw[q]), v_prep(load_n(ys[q] + t, nb))));
    store_n(out + t, acc, nb, NT);
}

MPSS_TARGET __attribute__((noinline)) static void combine_part(const uint8_t *const *ys, size_t count,
                                                               const konst_t *kw, uint8_t *out, size_t t,
                                                               size_t nb)
{
    combine_step(0, NULL, NULL, ys, count, kw, out, t, nb, 0);
}

MPSS_INLINE void combine_run(const size_t G, const int NT, const uint8_t *const *ys, size_t count,
                             const konst_t *kw, uint8_t *out, size_t len)
{
    const uint8_t *y[8];
    kreg_t K[8];
    for (size_t q = 0; q < G; q++) {
        y[q] = ys[q];
        K[q] = k_load(&kw[q]);
    }
#define MPSS_COMBINE_FULL(t) combine_step(G, y, K, ys, count, kw, out, t, MPSS_VEC_W, NT)
#define MPSS_COMBINE_PART(t, nb) combine_part(ys, count, kw, out, t, nb)
    MPSS_STEPS(MPSS_COMBINE_FULL, MPSS_COMBINE_PART, NT, out, 0, len);
#undef MPSS_COMBINE_FULL
#undef MPSS_COMBINE_PART
}

MPSS_TARGET static int simd_interpolate(const mpss_gf256_field *f, const uint8_t *xs,
                                        const uint8_t *const *ys, size_t count, uint8_t *out, size_t len)
{
    if (len == 0)
        return 0;
    konst_t stack[MPSS_STACK_KONSTS];
    konst_t *kw = konst_alloc(count, stack);
    if (!kw)
        return -1;
    for (size_t i = 0; i < count; i++)
        konst_build(f, mpss_lagrange_weight(f, xs, count, i), &kw[i]);
    const int nt = count >= 3 ? MPSS_STREAMS_MANY(len) : MPSS_STREAMS(len);
#define MPSS_COMBINE_RUN(G)                                                                    \
    do {                                                                                       \
        if ((G) > MPSS_COMBINE_G)                                                              \
            break;                                                                             \
        if (nt)                                                                                \
            combine_run(G, 1, ys, count, kw, out, len);                                        \
        else                                                                                   \
            combine_run(G, 0, ys, count, kw, out, len);                                        \
    } while (0)
    MPSS_SWITCH_8(count < MPSS_COMBINE_G ? count : MPSS_COMBINE_G, MPSS_COMBINE_RUN)
#undef MPSS_COMBINE_RUN
    if (nt)
        v_stream_fence();
    konst_free(kw, stack);
    return 0;
}

/* XOR of two or three buffers; `out` may be exactly one of the inputs, as every step
 * loads its inputs before it stores. */
MPSS_INLINE void xor_step(const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out, size_t t,
                          size_t nb, int NT)
{
    vec_t v = v_xor(load_n(a + t, nb), load_n(b + t, nb));
    if (c)
        v = v_xor(v, load_n(c + t, nb));
    store_n(out + t, v, nb, NT);
}

MPSS_INLINE void xor_run(const int NT, const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out,
                         size_t len)
{
#define MPSS_XOR_FULL(t) xor_step(a, b, c, out, t, MPSS_VEC_W, NT)
#define MPSS_XOR_PART(t, nb) xor_step(a, b, c, out, t, nb, 0)
    MPSS_STEPS(MPSS_XOR_FULL, MPSS_XOR_PART, NT, out, 0, len);
#undef MPSS_XOR_FULL
#undef MPSS_XOR_PART
}

MPSS_INLINE void xor_any(const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out, size_t len)
{
    if (MPSS_STREAMS(len)) {
        xor_run(1, a, b, c, out, len);
        v_stream_fence();
    } else {
        xor_run(0, a, b, c, out, len);
    }
}

MPSS_TARGET static void simd_xor2(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t len)
{
    xor_any(a, b, NULL, out, len);
}

MPSS_TARGET static void simd_xor3(const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out,
                                  size_t len)
{
    xor_any(a, b, c, out, len);
}

#undef MPSS_SWITCH_8
#undef MPSS_STEPS
#undef MPSS_INLINE
#endif /* MPSS_SIMD_TEMPLATE */
