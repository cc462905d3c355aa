#include "mpss_table.h"

#include <stdlib.h>

/* Bytes per block: the block's inputs stay in L1 while every output group is written. */
#define BLOCK 4096
/* Shares (or inputs) handled per unrolled group: their pointers and rows stay in registers. */
#define GROUP 4
/* Above this many (share, coefficient) product rows (16 KiB) they no longer fit in L1
 * and cost more to build than they save: use Horner with one row per share instead. */
#define POWER_ROWS_MAX 64

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

/* rows[(i*m + j)*256 ..] = product row of x_i^(j+1): one row per (share, coefficient). */
static void build_power_rows(const mpss_gf256_field *f, const uint8_t *xs, size_t n, size_t m, uint8_t *rows)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t p = 1;
        for (size_t j = 0; j < m; j++) {
            p = mpss_gf256_mul(f, p, xs[i]);
            mpss_gf256_mul_row(f, p, rows + 256 * (i * m + j));
        }
    }
}

/* The fused loops below name every pointer as its own local variable: kept in an
 * array, the pointers get reloaded after each uint8_t store (char stores may alias
 * anything), which halves the speed. */

/* A term of share q: the product row of x_q^(j+1) at the coefficient byte a_j. */
#define TERM(q, j, a) r##q[256 * (j) + (a)]

/* One block for a full group of 4 shares and M (1..4) coefficients. */
#define EVAL_GROUP4(M, EXPR)                                                                   \
    do {                                                                                       \
        const uint8_t *r0 = rows, *r1 = rows + 256 * (M), *r2 = rows + 512 * (M),              \
                      *r3 = rows + 768 * (M);                                                  \
        uint8_t *o0 = outs[0] + start, *o1 = outs[1] + start, *o2 = outs[2] + start,           \
                *o3 = outs[3] + start;                                                         \
        for (size_t t = 0; t < len; t++) {                                                     \
            const uint8_t v = s[t];                                                            \
            const uint8_t a0 = c0[t], a1 = (M) > 1 ? c1[t] : 0, a2 = (M) > 2 ? c2[t] : 0,      \
                          a3 = (M) > 3 ? c3[t] : 0;                                            \
            (void)a1, (void)a2, (void)a3;                                                      \
            o0[t] = v ^ EXPR(0);                                                               \
            o1[t] = v ^ EXPR(1);                                                               \
            o2[t] = v ^ EXPR(2);                                                               \
            o3[t] = v ^ EXPR(3);                                                               \
        }                                                                                      \
    } while (0)
#define SUM1(q) TERM(q, 0, a0)
#define SUM2(q) (TERM(q, 0, a0) ^ TERM(q, 1, a1))
#define SUM3(q) (TERM(q, 0, a0) ^ TERM(q, 1, a1) ^ TERM(q, 2, a2))
#define SUM4(q) (TERM(q, 0, a0) ^ TERM(q, 1, a1) ^ TERM(q, 2, a2) ^ TERM(q, 3, a3))

/* One block, shares [g, g+cnt) with cnt <= GROUP: y_i = s + sum_j R_ij[c_j]. */
static void eval_group(const uint8_t *secret, const uint8_t *const *coeffs, size_t m,
                       const uint8_t *rows, uint8_t *const *outs, size_t cnt,
                       size_t start, size_t len)
{
    const uint8_t *s = secret + start;
    if (cnt == GROUP && m <= 4) {
        const uint8_t *c0 = coeffs[0] + start;
        const uint8_t *c1 = m > 1 ? coeffs[1] + start : c0;
        const uint8_t *c2 = m > 2 ? coeffs[2] + start : c0;
        const uint8_t *c3 = m > 3 ? coeffs[3] + start : c0;
        switch (m) {
        case 1: EVAL_GROUP4(1, SUM1); return;
        case 2: EVAL_GROUP4(2, SUM2); return;
        case 3: EVAL_GROUP4(3, SUM3); return;
        default: EVAL_GROUP4(4, SUM4); return;
        }
    }
    /* Remainder shares or many coefficients: one share at a time, accumulated in place. */
    const size_t stride = 256 * m;
    for (size_t q = 0; q < cnt; q++) {
        uint8_t *o = outs[q] + start;
        const uint8_t *rq = rows + q * stride;
        const uint8_t *c0 = coeffs[0] + start;
        for (size_t t = 0; t < len; t++)
            o[t] = rq[c0[t]] ^ s[t];
        for (size_t j = 1; j < m; j++) {
            const uint8_t *cj = coeffs[j] + start;
            const uint8_t *r = rq + 256 * j;
            for (size_t t = 0; t < len; t++)
                o[t] ^= r[cj[t]];
        }
    }
}

/* Horner for many shares and coefficients, with one product row per x (n rows instead of n*m):
 * y = (((c[m-1] x + c[m-2]) x + ...) x + c[0]) x + s, one pass per coefficient over a block. */
static int eval_horner(const mpss_gf256_field *f, const uint8_t *secret, const uint8_t *const *coeffs,
                       size_t m, const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len)
{
    uint8_t *rows = malloc(256 * n);
    if (!rows)
        return -1;
    for (size_t i = 0; i < n; i++)
        mpss_gf256_mul_row(f, xs[i], rows + 256 * i);
    for (size_t start = 0; start < len; start += BLOCK) {
        size_t size = len - start < BLOCK ? len - start : BLOCK;
        const uint8_t *s = secret + start;
        for (size_t i = 0; i < n; i++) {
            uint8_t *o = outs[i] + start;
            const uint8_t *r = rows + 256 * i;
            const uint8_t *top = coeffs[m - 1] + start;
            for (size_t t = 0; t < size; t++)
                o[t] = top[t];
            for (size_t j = m - 1; j-- > 0;) {
                const uint8_t *cj = coeffs[j] + start;
                for (size_t t = 0; t < size; t++)
                    o[t] = r[o[t]] ^ cj[t];
            }
            for (size_t t = 0; t < size; t++)
                o[t] = r[o[t]] ^ s[t];
        }
    }
    free(rows);
    return 0;
}

int mpss_table_eval(const mpss_gf256_field *f, const uint8_t *secret, const uint8_t *const *coeffs,
                    size_t m, const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len)
{
    if (n * m > POWER_ROWS_MAX)
        return eval_horner(f, secret, coeffs, m, xs, outs, n, len);
    uint8_t *rows = malloc(256 * n * m);
    if (!rows)
        return -1;
    build_power_rows(f, xs, n, m, rows);
    for (size_t start = 0; start < len; start += BLOCK) {
        size_t size = len - start < BLOCK ? len - start : BLOCK;
        for (size_t g = 0; g < n; g += GROUP) {
            size_t cnt = n - g < GROUP ? n - g : GROUP;
            eval_group(secret, coeffs, m, rows + 256 * m * g, outs + g, cnt, start, size);
        }
    }
    free(rows);
    return 0;
}

/* One block: out (+)= sum over inputs [0, cnt) of R_i[y_i], cnt <= GROUP. */
static void combine_group(const uint8_t *const *ys, const uint8_t *rows, size_t cnt,
                          uint8_t *out, int accumulate, size_t start, size_t len)
{
    const uint8_t *y0 = ys[0] + start;
    const uint8_t *y1 = cnt > 1 ? ys[1] + start : y0;
    const uint8_t *y2 = cnt > 2 ? ys[2] + start : y0;
    const uint8_t *y3 = cnt > 3 ? ys[3] + start : y0;
    const uint8_t *r0 = rows, *r1 = rows + 256, *r2 = rows + 512, *r3 = rows + 768;
    uint8_t *o = out + start;
#define COMBINE_LOOP(EXPR)                                       \
    do {                                                         \
        if (accumulate)                                          \
            for (size_t t = 0; t < len; t++)                     \
                o[t] ^= EXPR;                                    \
        else                                                     \
            for (size_t t = 0; t < len; t++)                     \
                o[t] = EXPR;                                     \
    } while (0)
    switch (cnt) {
    case 1: COMBINE_LOOP(r0[y0[t]]); break;
    case 2: COMBINE_LOOP(r0[y0[t]] ^ r1[y1[t]]); break;
    case 3: COMBINE_LOOP(r0[y0[t]] ^ r1[y1[t]] ^ r2[y2[t]]); break;
    default: COMBINE_LOOP(r0[y0[t]] ^ r1[y1[t]] ^ r2[y2[t]] ^ r3[y3[t]]); break;
    }
#undef COMBINE_LOOP
}

int mpss_table_interpolate(const mpss_gf256_field *f, const uint8_t *xs, const uint8_t *const *ys,
                           size_t count, uint8_t *out, size_t len)
{
    uint8_t *rows = malloc(256 * count);
    if (!rows)
        return -1;
    for (size_t i = 0; i < count; i++)
        mpss_gf256_mul_row(f, mpss_lagrange_weight(f, xs, count, i), rows + 256 * i);
    for (size_t start = 0; start < len; start += BLOCK) {
        size_t size = len - start < BLOCK ? len - start : BLOCK;
        for (size_t g = 0; g < count; g += GROUP) {
            size_t cnt = count - g < GROUP ? count - g : GROUP;
            combine_group(ys + g, rows + 256 * g, cnt, out, g > 0, start, size);
        }
    }
    free(rows);
    return 0;
}
