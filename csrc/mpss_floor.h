/* The floor harness of `mpss bench`: the least memory work each engine workload must do,
 * as plain loops, so every engine figure can be quoted as a fraction of what this machine
 * allows in the same run. Not part of the share engine (built as its own extension,
 * mpss_fast._floor); pure C, no Python.h.
 *
 *   store: read `src` once, write it to n outputs         (the split floor: the secret in, n shares out)
 *   xor:   read k inputs, write their XOR to one output   (the combine floor for k shares; k = 2: xor_into)
 *
 * and one loop that is not a floor but a bound on keyed splits:
 *
 *   keystream: the AES-256-CTR coefficient rows a keyed split makes (mpss_aesctr.h), made
 *              in registers and folded into 64 bytes, nothing else stored
 *
 * Each comes per instruction set (MPSS_FLOOR_ISA_*, widest first), with ordinary or
 * non-temporal ("streaming") stores; streaming needs every output aligned to
 * mpss_floor_align(isa). The loops do no arithmetic beyond what the engine must also do
 * (the combine floor's XOR is the cheapest operation that depends on every input byte).
 */
#ifndef MPSS_FLOOR_H
#define MPSS_FLOOR_H

#include <stddef.h>
#include <stdint.h>

enum {
    MPSS_FLOOR_ISA_AVX512 = 0, /* 64-byte zmm loads and stores (AVX-512F) */
    MPSS_FLOOR_ISA_AVX2 = 1,   /* 32-byte ymm */
    MPSS_FLOOR_ISA_SSE2 = 2,   /* 16-byte xmm, the x86-64 baseline */
    MPSS_FLOOR_ISA_PORTABLE = 3, /* plain C on 64-bit words, vectorised by -O3 for the build's baseline */
    MPSS_FLOOR_ISA_COUNT = 4
};

/* The name of `isa` ("avx512", "avx2", "sse2", "portable"), or NULL if out of range. */
const char *mpss_floor_isa_name(int isa);

/* 1 if this CPU (and OS) runs `isa`; streaming is available on the x86 ISAs only. */
int mpss_floor_supported(int isa);
int mpss_floor_has_streaming(int isa);

/* The output alignment streaming stores need with `isa` (its vector width). */
size_t mpss_floor_align(int isa);

/* outs[j][i] = src[i] for j < n, i < length, reading src once. Returns 0, or -1 if
 * `isa` is unsupported, or streaming is asked where unavailable or an output misaligned. */
int mpss_floor_store(int isa, int streaming, const uint8_t *src, uint8_t *const *outs, size_t n, size_t length);

/* out[i] = ins[0][i] ^ ... ^ ins[k-1][i] for i < length, 1 <= k <= 255. Returns 0 or -1 (as above). */
int mpss_floor_xor(int isa, int streaming, const uint8_t *const *ins, size_t k, uint8_t *out, size_t length);

/* The most coefficient rows a keyed split makes (k - 1 for k <= 255 shares). */
#define MPSS_FLOOR_MAX_ROWS 254

/* The AES implementation of the keystream loop with `isa` on this CPU: "vaes512" (avx512,
 * where the CPU has VAES and AVX-512BW), "aesni" (avx2 and sse2, where it has AES-NI), or
 * NULL where there is none (no AES instructions, the portable ISA, not x86). */
const char *mpss_floor_keystream_name(int isa);

/* The coefficient rows of a keyed split of `length` secret bytes: rows 0 .. m-1 of
 * AES-256-CTR keystream under `key`, `length` bytes each, byte t of row j being byte t of
 * the stream from the counter block BE64(j) || BE64(0) (the engine's, mpss_aesctr.h). The
 * keystream stays in registers; only its XOR fold in 64-byte lanes is stored:
 * fold[i] = XOR over j < m and t < length with t % 64 == i of row j's byte t (zeros when
 * length is 0). The key schedule is expanded per call, as a split does, and wiped.
 * Returns 0, or -1 if `isa` has no keystream loop here or m is not in 1 .. MPSS_FLOOR_MAX_ROWS. */
int mpss_floor_keystream(int isa, const uint8_t key[32], size_t m, size_t length, uint8_t fold[64]);

#endif
