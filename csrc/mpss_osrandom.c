#define _DEFAULT_SOURCE /* getrandom, explicit_bzero in glibc */
#include "mpss_osrandom.h"

#include <errno.h>
#include <string.h>

#if defined(__linux__)
#include <sys/random.h>
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
#include <stdlib.h>
#define MPSS_HAVE_ARC4RANDOM 1
#endif

int mpss_os_random(void *buf, size_t len)
{
#if defined(__linux__)
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t got = getrandom(p, len, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += got;
        len -= (size_t)got;
    }
    return 0;
#elif defined(MPSS_HAVE_ARC4RANDOM)
    arc4random_buf(buf, len);
    return 0;
#else
    (void)buf;
    (void)len;
    return -1;
#endif
}

void mpss_wipe(void *buf, size_t len)
{
    /* Stores through a volatile pointer cannot be elided as dead. */
    volatile unsigned char *p = buf;
    while (len--)
        *p++ = 0;
}
