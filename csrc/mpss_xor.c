#include "mpss_xor.h"

#include <string.h>

void mpss_xor(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t len)
{
    size_t i = 0;
    /* 32 bytes per step through memcpy'd words: no alignment or aliasing
     * assumptions, and GCC/Clang turn it into vector loads at -O3. */
    for (; i + 32 <= len; i += 32) {
        uint64_t x[4], y[4];
        memcpy(x, a + i, 32);
        memcpy(y, b + i, 32);
        x[0] ^= y[0];
        x[1] ^= y[1];
        x[2] ^= y[2];
        x[3] ^= y[3];
        memcpy(out + i, x, 32);
    }
    for (; i < len; i++)
        out[i] = a[i] ^ b[i];
}

void mpss_xor3(const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out, size_t len)
{
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        uint64_t x[4], y[4], z[4];
        memcpy(x, a + i, 32);
        memcpy(y, b + i, 32);
        memcpy(z, c + i, 32);
        for (int w = 0; w < 4; w++)
            x[w] ^= y[w] ^ z[w];
        memcpy(out + i, x, 32);
    }
    for (; i < len; i++)
        out[i] = a[i] ^ b[i] ^ c[i];
}
