/* Randomness straight from the operating system into a caller's buffer, and wiping.
 * Pure C, no Python.h. */
#ifndef MPSS_OSRANDOM_H
#define MPSS_OSRANDOM_H

#include <stddef.h>

/* Fill buf with len bytes from the OS CSPRNG (getrandom on Linux, arc4random_buf on
 * the BSDs and macOS). Returns 0, or -1 where no such source is available or it fails;
 * the caller then falls back to another source. */
int mpss_os_random(void *buf, size_t len);

/* Overwrite len bytes with zeros in a way the compiler may not drop. */
void mpss_wipe(void *buf, size_t len);

#endif
