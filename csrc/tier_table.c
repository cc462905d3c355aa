/* The `table` tier: log/antilog product rows (mpss_table.c) and word-wise XOR.
 * Kept for comparison and for its simplicity; NOT constant time. */
#include "mpss_keyed.h"
#include "mpss_table.h"
#include "mpss_tiers.h"
#include "mpss_xor.h"

static int always(void)
{
    return 1;
}

static int eval_keyed(const mpss_gf256_field *f, const mpss_ctr_impl *ctr, const mpss_aes256_schedule *key,
                      const uint8_t *secret, size_t m, const uint8_t *xs, uint8_t *const *outs, size_t n, size_t len)
{
    return mpss_eval_keyed_via(mpss_table_eval, f, ctr, key, secret, m, xs, outs, n, len);
}

const mpss_tier mpss_tier_table = {
    "table", 0, always, mpss_table_eval, eval_keyed, mpss_table_interpolate, mpss_xor, mpss_xor3,
};
