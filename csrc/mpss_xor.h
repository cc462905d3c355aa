/* Whole-buffer XOR, the one-time-pad primitive. Pure C, no Python.h. */
#ifndef MPSS_XOR_H
#define MPSS_XOR_H

#include <stddef.h>
#include <stdint.h>

/* out[i] = a[i] ^ b[i] for i < len. out may be exactly a or b (in place);
 * any other overlap is the caller's bug (the Python layer rejects it). */
void mpss_xor(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t len);

/* out[i] = a[i] ^ b[i] ^ c[i]: a relay's re-encryption in one pass. */
void mpss_xor3(const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out, size_t len);

#endif
