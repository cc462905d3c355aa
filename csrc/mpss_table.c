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

/* One block, shares [g, g+cnt) with cnt <= GROUP: y_i = s + sum_j R_ij[c_j]. */
static void eval_group(const uint8_t *secret, const uint8_t *const *coeffs, size_t m,
                       const uint8_t *rows, uint8_t *const *outs, size_t cnt,
                       size_t start, size_t len)
{
    uint8_t *o0 = outs[0] + start;
    uint8_t *o1 = cnt > 1 ? outs[1] + start : o0;
    uint8_t *o2 = cnt > 2 ? outs[2] + start : o0;
    uint8_t *o3 = cnt > 3 ? outs[3] + start : o0;
    const uint8_t *s = secret + start;
    /* Rows of share q, coefficient j: rows + 256*(q*m + j). */
    const size_t stride = 256 * m;

    if (m == 1 && cnt == GROUP) {
        const uint8_t *c0 = coeffs[0] + start;
        const uint8_t *r0 = rows, *r1 = rows + stride, *r2 = rows + 2 * stride, *r3 = rows + 3 * stride;
        for (size_t t = 0; t < len; t++) {
            uint8_t a = c0[t], v = s[t];
            o0[t] = r0[a] ^ v;
            o1[t] = r1[a] ^ v;
            o2[t] = r2[a] ^ v;
            o3[t] = r3[a] ^ v;
        }
        return;
    }
    if (m == 2 && cnt == GROUP) {
        const uint8_t *c0 = coeffs[0] + start, *c1 = coeffs[1] + start;
        const uint8_t *r0 = rows, *r1 = rows + stride, *r2 = rows + 2 * stride, *r3 = rows + 3 * stride;
        for (size_t t = 0; t < len; t++) {
            uint8_t a = c0[t], b = c1[t], v = s[t];
            o0[t] = r0[a] ^ r0[256 + b] ^ v;
            o1[t] = r1[a] ^ r1[256 + b] ^ v;
            o2[t] = r2[a] ^ r2[256 + b] ^ v;
            o3[t] = r3[a] ^ r3[256 + b] ^ v;
        }
        return;
    }
    /* General case: one share at a time, coefficients accumulated in place. */
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
    /* Unused inputs read the all-zero row: their product is 0. */
    static const uint8_t zero_row[256];
    const uint8_t *r0 = rows;
    const uint8_t *r1 = cnt > 1 ? rows + 256 : zero_row;
    const uint8_t *r2 = cnt > 2 ? rows + 512 : zero_row;
    const uint8_t *r3 = cnt > 3 ? rows + 768 : zero_row;
    uint8_t *o = out + start;
    if (accumulate) {
        for (size_t t = 0; t < len; t++)
            o[t] ^= r0[y0[t]] ^ r1[y1[t]] ^ r2[y2[t]] ^ r3[y3[t]];
    } else {
        for (size_t t = 0; t < len; t++)
            o[t] = r0[y0[t]] ^ r1[y1[t]] ^ r2[y2[t]] ^ r3[y3[t]];
    }
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
