// SHA-1's compression function over sixteen independent messages at once, one per 32-bit lane of
// an AVX-512 register. OpenSSL hashes one message at a time (with the CPU's SHA extensions, about
// 1.6-1.9 GB/s per core here); sixteen lanes of plain vector arithmetic reach about three times
// that when every lane has data.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define POTLUCK_SHA1_LANES 16

// Whether this CPU and kernel run the sixteen-lane function (AVX-512 F and BW).
int potluck_sha1_lanes_available(void);

// Advances sixteen SHA-1 states by `count` 64-byte blocks each. `state` holds word k (a..e) of lane
// j at `state[k * 16 + j]`; `blocks[j]` is lane j's next block, `count` blocks read from it. An
// idle lane points at any readable 64 * count bytes and its state is ignored by the caller.
// Call only when `potluck_sha1_lanes_available()`.
void potluck_sha1_lanes(uint32_t state[5 * POTLUCK_SHA1_LANES], const uint8_t *const blocks[POTLUCK_SHA1_LANES],
                        size_t count);
