/* The `table` tier: log/antilog product rows (mpss_table.c) and word-wise XOR.
 * Kept for comparison and for its simplicity; NOT constant time. */
#include "mpss_table.h"
#include "mpss_tiers.h"
#include "mpss_xor.h"

static int always(void)
{
    return 1;
}

const mpss_tier mpss_tier_table = {
    "table", 0, always, mpss_table_eval, mpss_table_interpolate, mpss_xor, mpss_xor3,
};
