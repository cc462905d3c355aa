#include "mpss_tiers.h"

#include <string.h>

extern const mpss_tier mpss_tier_swar, mpss_tier_table;
#if defined(__x86_64__) || defined(__i386__)
extern const mpss_tier mpss_tier_gfni512, mpss_tier_gfni256, mpss_tier_avx2, mpss_tier_ssse3;
#endif

const mpss_tier *const mpss_all_tiers[] = {
#if defined(__x86_64__) || defined(__i386__)
    &mpss_tier_gfni512, &mpss_tier_gfni256, &mpss_tier_avx2, &mpss_tier_ssse3,
#endif
    &mpss_tier_swar,    &mpss_tier_table,   0,
};

const mpss_tier *mpss_tier_named(const char *name)
{
    for (const mpss_tier *const *t = mpss_all_tiers; *t; t++)
        if (strcmp((*t)->name, name) == 0)
            return *t;
    return 0;
}

const mpss_tier *mpss_tier_best(void)
{
    for (const mpss_tier *const *t = mpss_all_tiers; *t; t++)
        if ((*t)->constant_time && (*t)->supported())
            return *t;
    return &mpss_tier_swar;
}
