#include "mpss_table.h"

#include <stdlib.h>
#include <string.h>

/* Bytes per block: the passes over one block find its inputs and outputs still in L1. */
#define BLOCK 4096
/* Shares fused in one eval pass: each coefficient byte is loaded once for the whole group,
 * and the pointers (outputs, coefficients, secret, one row base) still fit in registers. */
#define EVAL_SHARES 5
/* Coefficients per eval pass; also the power x^CHUNK by which Horner steps between passes. */
#define CHUNK 4
/* Inputs fused in one combine pass; with more, the pointers and words spill. */
#define COMBINE_INPUTS 5

uint8_t mpss_lagrange_weight(const mpss_gf256_field *f, const uint8_t *xs, size_t count, size_t i)
{
    uint8_t num = 1, den = 1;
    for (size_t m = 0; m < count; m++) {
        if (m == i)
            continue;
        num = mpss_gf256_mul(f, num, xs[m]);
        den = mpss_gf256_mul(f, den, xs[m] ^ xs[i]);
    }
    return mpss_gf256_mul(f, num, mpss_gf256_inv(f, den));
}

/* Size of part i when total is cut into ceil(total / max) parts as even as possible. */
static size_t part_size(size_t total, size_t max, size_t i)
{
    size_t parts = (total + max - 1) / max;
    return total / parts + (i < total % parts);
}

/* Eight bytes at p as a little-endian word (compiled to one load): byte p[i] is bits
 * 8i..8i+7 on any host. */
static inline uint64_t load_word(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* The passes below name every pointer as its own local variable: kept in an array, the
 * pointers get reloaded after each uint8_t store (char stores may alias anything), which
 * halves the speed. Product rows all hang off one base R at compile-time offsets, so a
 * lookup is one load with a constant displacement and the rows cost no registers; they are
 * written (R + 256 k)[i], as R[256 k + i] costs an add for the int index on every lookup. */

/*
 * Evaluation. With the coefficients cut into chunks of CHUNK from the bottom,
 *   y = s + sum_j c_j x^(j+1) = s + sum_k x^(CHUNK k) P_k,
 *   P_k = sum_{i<CHUNK} c_{CHUNK k+i} x^(i+1),
 * Horner over the chunks, from the top one (which holds the odd width) down:
 *   y <- P_top;  y <- x^CHUNK y + P_k for each lower k;  y <- y + s.
 * Each share needs only the rows of x^1..x^CHUNK (not one per coefficient), and a pass over
 * a block makes one lookup per coefficient and share, plus one per share for the step.
 */

/* Share q's row of x^(p+1); rows are share-major, W per share. */
#define ROW(q, p) (R + 256 * ((q) * PASS_W + (p)))
#define SHARE_TERMS(q)                                                                         \
    (ROW(q, 0)[a0] ^ (PASS_M > 1 ? ROW(q, 1)[a1] : 0) ^ (PASS_M > 2 ? ROW(q, 2)[a2] : 0) ^     \
     (PASS_M > 3 ? ROW(q, 3)[a3] : 0))
#define SHARE_OUT(q)                                                                           \
    do {                                                                                       \
        if (PASS_G > (q))                                                                      \
            o##q[t] = (PASS_STEP ? ROW(q, CHUNK - 1)[o##q[t]] : 0) ^ v ^ SHARE_TERMS(q);       \
    } while (0)

/* Two bytes of share q, stored back to back (see EVAL_PASS). */
#define PAIR_OUT(q)                                                                            \
    do {                                                                                       \
        if (PASS_G > (q)) {                                                                    \
            o##q[t] = ROW(q, 0)[a0] ^ v;                                                       \
            o##q[t + 1] = ROW(q, 0)[b0] ^ u;                                                   \
        }                                                                                      \
    } while (0)

/* One pass over a block for shares [0, G) and the M coefficients from c:
 * y = [x^CHUNK y, when STEP] + sum_i x^(i+1) c_i [+ s, when LAST]; W rows per share.
 * Byte stores to G different lines commit at about one per cycle, two per cycle when
 * consecutive ones hit the same line. With a single coefficient that bound dominates, so
 * the pass writes each share's bytes in pairs; with more coefficients the pair's extra
 * index registers spill and it gains nothing. */
#define EVAL_PASS(G, M, W, STEP, LAST)                                                         \
    do {                                                                                       \
        enum { PASS_G = (G), PASS_M = (M), PASS_W = (W), PASS_STEP = (STEP) };                 \
        uint8_t *o0 = outs[0] + start, *o1 = (G) > 1 ? outs[1] + start : o0,                   \
                *o2 = (G) > 2 ? outs[2] + start : o0, *o3 = (G) > 3 ? outs[3] + start : o0,    \
                *o4 = (G) > 4 ? outs[4] + start : o0;                                          \
        const uint8_t *c0 = c[0] + start, *c1 = (M) > 1 ? c[1] + start : c0,                   \
                      *c2 = (M) > 2 ? c[2] + start : c0, *c3 = (M) > 3 ? c[3] + start : c0;    \
        size_t t = 0;                                                                          \
        if ((M) == 1 && !(STEP))                                                               \
            for (; t + 2 <= len; t += 2) {                                                     \
                const uint8_t a0 = c0[t], b0 = c0[t + 1], v = (LAST) ? s[t] : 0,               \
                              u = (LAST) ? s[t + 1] : 0;                                       \
                PAIR_OUT(0);                                                                   \
                PAIR_OUT(1);                                                                   \
                PAIR_OUT(2);                                                                   \
                PAIR_OUT(3);                                                                   \
                PAIR_OUT(4);                                                                   \
            }                                                                                  \
        for (; t < len; t++) {                                                                 \
            const uint8_t v = (LAST) ? s[t] : 0;                                               \
            const uint8_t a0 = c0[t], a1 = (M) > 1 ? c1[t] : 0, a2 = (M) > 2 ? c2[t] : 0,      \
                          a3 = (M) > 3 ? c3[t] : 0;                                            \
            (void)a1, (void)a2, (void)a3;                                                      \
            SHARE_OUT(0);                                                                      \
            SHARE_OUT(1);                                                                      \
            SHARE_OUT(2);                                                                      \
            SHARE_OUT(3);                                                                      \
            SHARE_OUT(4);                                                                      \
        }                                                                                      \
    } while (0)

/* The top chunk's pass: it is the only one when m <= CHUNK (then also adds s, and the
 * rows are exactly x^1..x^m); otherwise Horner steps follow and there are CHUNK rows. */
#define EVAL_TOP(G, M)                                                                         \
    do {                                                                                       \
        if (last)                                                                              \
            EVAL_PASS(G, M, M, 0, 1);                                                          \
        else                                                                                   \
            EVAL_PASS(G, M, CHUNK, 0, 0);                                                      \
    } while (0)
#define EVAL_GROUP(G)                                                                          \
    do {                                                                                       \
        if (step) {                                                                            \
            if (last)                                                                          \
                EVAL_PASS(G, CHUNK, CHUNK, 1, 1);                                              \
            else                                                                               \
                EVAL_PASS(G, CHUNK, CHUNK, 1, 0);                                              \
            return;                                                                            \
        }                                                                                      \
        switch (m) {                                                                           \
        case 1: EVAL_TOP(G, 1); return;                                                        \
        case 2: EVAL_TOP(G, 2); return;                                                        \
        case 3: EVAL_TOP(G, 3); return;                                                        \
        default: EVAL_TOP(G, 4); return;                                                       \
        }                                                                                      \
    } while (0)

/* One pass over bytes [start, start+len) of shares outs[0..g) with the m <= CHUNK
 * coefficients c[0..m); step: a Horner step follows an earlier pass; last: add the secret. */
static void eval_pass(const uint8_t *secret, const uint8_t *const *c, size_t m, const uint8_t *R,
                      uint8_t *const *outs, size_t g, int step, int last, size_t start, size_t len)
{
    const uint8_t *s = secret + start;
    switch (g) {
    case 1: EVAL_GROUP(1);
    case 2: EVAL_GROUP(2);
    case 3: EVAL_GROUP(3);
    case 4: EVAL_GROUP(4);
    default: EVAL_GROUP(5);
    }
}

int mpss_table_eval(const mpss_gf256_field *f, const uint8_t *secret, const uint8_t *const *coeffs,
                    size_t m, const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len)
{
    /* With few bytes per coefficient, plain Horner (one row per share, a pass per coefficient)
     * is cheaper: building CHUNK rows per share costs more than the chunked passes save.
     * Measured break-even: m (len + 64) = 3072. */
    const int horner = m > CHUNK && m * (len + 64) < 3072;
    const size_t w = horner ? 1 : m < CHUNK ? m : CHUNK;
    uint8_t *rows = malloc(256 * w * n);
    if (!rows)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t p = 1;
        for (size_t e = 0; e < w; e++) {
            p = mpss_gf256_mul(f, p, xs[i]);
            mpss_gf256_mul_row(f, p, rows + 256 * (w * i + e));
        }
    }
    if (horner) { /* y = (((c[m-1] x + c[m-2]) x + ...) x + c[0]) x + s, a pass per step */
        for (size_t i = 0; i < n; i++) {
            uint8_t *o = outs[i];
            const uint8_t *x = rows + 256 * i, *top = coeffs[m - 1];
            for (size_t t = 0; t < len; t++)
                o[t] = top[t];
            for (size_t j = m - 1; j-- > 0;) {
                const uint8_t *cj = coeffs[j];
                for (size_t t = 0; t < len; t++)
                    o[t] = x[o[t]] ^ cj[t];
            }
            for (size_t t = 0; t < len; t++)
                o[t] = x[o[t]] ^ secret[t];
        }
        free(rows);
        return 0;
    }
    for (size_t start = 0; start < len; start += BLOCK) {
        size_t size = len - start < BLOCK ? len - start : BLOCK;
        for (size_t gi = 0, i = 0, g; i < n; gi++, i += g) {
            g = part_size(n, EVAL_SHARES, gi);
            /* Chunks from the top down; chunk k holds coefficients [CHUNK k, CHUNK k + CHUNK). */
            for (size_t k = (m + CHUNK - 1) / CHUNK; k-- > 0;) {
                const size_t j = CHUNK * k;
                const int top = j + CHUNK >= m;
                eval_pass(secret, coeffs + j, top ? m - j : CHUNK, rows + 256 * w * i, outs + i, g,
                          !top, j == 0, start, size);
            }
        }
    }
    free(rows);
    return 0;
}

/* One pass over a block for inputs [0, G): out = [out, when ACC] + sum_q R_q[y_q]. Input 0
 * is read byte by byte and the others eight bytes at a time: the mix balances the load
 * ports against the shifts that pick bytes out of a word. It also keeps gcc -O3 from
 * "vectorizing" the loop: when every lookup is indexed by a loaded byte, it emulates
 * gathers (lane extracts, spills, a stalled 16-byte reload), which runs at half the speed
 * of scalar code; it does not take indices cut from a 64-bit word as gather offsets. */
#define LANE(q, i) (PASS_G > (q) ? (R + 256 * (q))[(w##q >> 8 * (i)) & 255] : 0)
#define COMBINE_PASS(G, ACC)                                                                   \
    do {                                                                                       \
        enum { PASS_G = (G) };                                                                 \
        const uint8_t *y0 = ys[0] + start, *y1 = (G) > 1 ? ys[1] + start : y0,                 \
                      *y2 = (G) > 2 ? ys[2] + start : y0, *y3 = (G) > 3 ? ys[3] + start : y0,  \
                      *y4 = (G) > 4 ? ys[4] + start : y0;                                      \
        for (size_t t = 0; t < len; t += 8) {                                                  \
            const uint64_t w1 = (G) > 1 ? load_word(y1 + t) : 0,                               \
                           w2 = (G) > 2 ? load_word(y2 + t) : 0,                               \
                           w3 = (G) > 3 ? load_word(y3 + t) : 0,                               \
                           w4 = (G) > 4 ? load_word(y4 + t) : 0;                               \
            (void)w1, (void)w2, (void)w3, (void)w4;                                            \
            for (int i = 0; i < 8; i++)                                                        \
                o[t + i] = ((ACC) ? o[t + i] : 0) ^ R[y0[t + i]] ^ LANE(1, i) ^ LANE(2, i) ^   \
                           LANE(3, i) ^ LANE(4, i);                                            \
        }                                                                                      \
    } while (0)
#define COMBINE_GROUP(G)                                                                       \
    do {                                                                                       \
        if (acc)                                                                               \
            COMBINE_PASS(G, 1);                                                                \
        else                                                                                   \
            COMBINE_PASS(G, 0);                                                                \
        return;                                                                                \
    } while (0)

/* One pass over bytes [start, start+len), len a multiple of 8: inputs ys[0..g), 2 <= g. */
static void combine_pass(const uint8_t *const *ys, const uint8_t *R, size_t g, uint8_t *out, int acc,
                         size_t start, size_t len)
{
    uint8_t *o = out + start;
    switch (g) {
    case 2: COMBINE_GROUP(2);
    case 3: COMBINE_GROUP(3);
    case 4: COMBINE_GROUP(4);
    default: COMBINE_GROUP(5);
    }
}

int mpss_table_interpolate(const mpss_gf256_field *f, const uint8_t *xs, const uint8_t *const *ys,
                           size_t count, uint8_t *out, size_t len)
{
    if (count == 1) { /* the weight of a lone point is 1 */
        memmove(out, ys[0], len);
        return 0;
    }
    uint8_t *rows = malloc(256 * count);
    if (!rows)
        return -1;
    for (size_t i = 0; i < count; i++)
        mpss_gf256_mul_row(f, mpss_lagrange_weight(f, xs, count, i), rows + 256 * i);
    /* Passes of 2..COMBINE_INPUTS inputs: the first writes, the others add. */
    const size_t body = len & ~(size_t)7;
    for (size_t start = 0; start < body; start += BLOCK) {
        size_t size = body - start < BLOCK ? body - start : BLOCK;
        for (size_t gi = 0, i = 0, g; i < count; gi++, i += g) {
            g = part_size(count, COMBINE_INPUTS, gi);
            combine_pass(ys + i, rows + 256 * i, g, out, i > 0, start, size);
        }
    }
    /* The last len % 8 bytes. */
    for (size_t t = body; t < len; t++) {
        uint8_t v = 0;
        for (size_t i = 0; i < count; i++)
            v ^= rows[256 * i + ys[i][t]];
        out[t] = v;
    }
    free(rows);
    return 0;
}
