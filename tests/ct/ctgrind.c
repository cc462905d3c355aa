/* Constant-time check driver ("ctgrind"): runs one kernel tier on inputs that memcheck
 * is told are undefined (the secret, coefficients, shares and pads). Under valgrind,
 * any branch or memory address computed from them is reported as a use of an
 * uninitialised value; data merely flowing into outputs is not.
 *
 *   ctgrind list           print the tiers this (possibly emulated) CPU supports
 *   ctgrind keystreams     print the in-kernel AES-CTR keystreams it supports
 *   ctgrind TIER           run every kernel of TIER on secret-marked inputs, keyed splits
 *                          included (with a secret-marked key) where a keystream runs
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <valgrind/memcheck.h>

#include "mpss_tiers.h"

#define MAX_LEN 300
#define MAX_BUFS 8

static uint8_t bufs[MAX_BUFS + 1][MAX_LEN + 64];

/* Test data from a fixed LCG: its values do not matter, only that memcheck sees them as secret. */
static void fill_secret(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    VALGRIND_MAKE_MEM_UNDEFINED(p, len);
}

static int run(const mpss_tier *t)
{
    static const size_t lengths[] = {1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 200, MAX_LEN};
    static const uint8_t xs[MAX_BUFS] = {1, 2, 3, 4, 5, 6, 7, 200};
    const int polys[] = {MPSS_POLY_AES, MPSS_POLY_GFSHARE};
    for (size_t p = 0; p < 2; p++) {
        const mpss_gf256_field *f = mpss_gf256_field_for(polys[p]);
        for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
            size_t len = lengths[l];
            const uint8_t *in[MAX_BUFS];
            uint8_t *out[MAX_BUFS];
            for (int b = 0; b < MAX_BUFS; b++) {
                fill_secret(bufs[b] + b, len, 7u * (unsigned)b + (unsigned)len);
                in[b] = bufs[b] + b;
                out[b] = bufs[b] + b;
            }
            uint8_t *secret = bufs[MAX_BUFS];
            fill_secret(secret, len, 99);
            for (size_t m = 1; m <= 5; m++) /* coefficients in[0..m), shares written to out[m..m+n) */
                if (t->eval(f, secret, in, m, xs, out + m, MAX_BUFS - m, len) != 0)
                    return 2;
            for (size_t count = 1; count <= MAX_BUFS - 1; count++)
                if (t->interpolate(f, xs, in, count, out[MAX_BUFS - 1], len) != 0)
                    return 2;
            const mpss_ctr_impl *ctr = mpss_ctr_best();
            if (ctr) {
                uint8_t key[32];
                mpss_aes256_schedule sched;
                fill_secret(key, sizeof key, (unsigned)len);
                mpss_aes256_expand(key, &sched);
                for (size_t m = 1; m <= 3; m++)
                    if (t->eval_keyed(f, ctr, &sched, secret, m, xs, out, MAX_BUFS, len) != 0)
                        return 2;
            }
            t->xor2(in[0], in[1], out[2], len);
            t->xor2(in[0], in[1], out[0], len);
            t->xor3(in[0], in[1], in[2], out[3], len);
            t->xor3(in[0], in[1], in[2], out[2], len);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    mpss_gf256_init();
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (const mpss_tier *const *t = mpss_all_tiers; *t; t++)
            if ((*t)->supported())
                printf("%s %d\n", (*t)->name, (*t)->constant_time);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "keystreams") == 0) {
        for (const mpss_ctr_impl *const *c = mpss_ctr_impls; *c; c++)
            if ((*c)->supported())
                printf("%s\n", (*c)->name);
        return 0;
    }
    const mpss_tier *t = argc == 2 ? mpss_tier_named(argv[1]) : NULL;
    if (!t || !t->supported()) {
        fprintf(stderr, "usage: ctgrind list | ctgrind keystreams | ctgrind TIER (a supported tier)\n");
        return 2;
    }
    return run(t);
}
