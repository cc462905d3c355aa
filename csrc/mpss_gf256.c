#include "mpss_gf256.h"

static mpss_gf256_field fields[2];
static int initialised = 0;

/* Multiply by the generator without tables: g = 2 is a shift, g = 3 is shift ^ self. */
static unsigned times_generator(unsigned a, unsigned poly, unsigned generator)
{
    unsigned doubled = a << 1;
    if (doubled & 0x100)
        doubled ^= poly;
    return generator == 2 ? doubled : (doubled ^ a);
}

static void build(mpss_gf256_field *f, unsigned poly, unsigned generator)
{
    unsigned a = 1;
    f->poly = (uint16_t)poly;
    f->log[0] = 0;
    for (unsigned i = 0; i < 255; i++) {
        f->exp[i] = (uint8_t)a;
        f->log[a] = (uint8_t)i;
        a = times_generator(a, poly, generator);
    }
    for (unsigned i = 255; i < 512; i++)
        f->exp[i] = f->exp[i - 255];
}

void mpss_gf256_init(void)
{
    if (initialised)
        return;
    build(&fields[0], MPSS_POLY_AES, 3);
    build(&fields[1], MPSS_POLY_GFSHARE, 2);
    initialised = 1;
}

const mpss_gf256_field *mpss_gf256_field_for(int poly)
{
    if (poly == MPSS_POLY_AES)
        return &fields[0];
    if (poly == MPSS_POLY_GFSHARE)
        return &fields[1];
    return 0;
}

void mpss_gf256_mul_row(const mpss_gf256_field *f, uint8_t c, uint8_t row[256])
{
    row[0] = 0;
    if (c == 0) {
        for (unsigned v = 1; v < 256; v++)
            row[v] = 0;
        return;
    }
    unsigned lc = f->log[c];
    for (unsigned v = 1; v < 256; v++)
        row[v] = f->exp[lc + f->log[v]];
}
