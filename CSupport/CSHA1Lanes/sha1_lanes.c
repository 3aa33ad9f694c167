#include <immintrin.h>

#include "potluck_sha1_lanes.h"

#define AVX512 __attribute__((target("avx512f,avx512bw")))

int potluck_sha1_lanes_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}

// Loads block `index` of every lane and transposes the 16x16 matrix of 32-bit words, so that w[i]
// holds word i of each lane's block, in the big-endian order SHA-1 reads.
AVX512 static inline void load_words(__m512i w[16], const uint8_t *const blocks[16], size_t index) {
    __m512i r[16], t[16];
    for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_si512(blocks[j] + 64 * index);
    // Within each 128-bit chunk: 4x4 transposes of rows 4k..4k+3.
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
    }
    for (int j = 0; j < 16; j += 4) {
        r[j] = _mm512_unpacklo_epi64(t[j], t[j + 2]);
        r[j + 1] = _mm512_unpackhi_epi64(t[j], t[j + 2]);
        r[j + 2] = _mm512_unpacklo_epi64(t[j + 1], t[j + 3]);
        r[j + 3] = _mm512_unpackhi_epi64(t[j + 1], t[j + 3]);
    }
    // Now chunk g of r[4k + m] holds word 4g + m of rows 4k..4k+3: gather the chunks across rows.
    for (int m = 0; m < 4; m++) {
        t[m] = _mm512_shuffle_i32x4(r[m], r[m + 4], 0x88);
        t[m + 4] = _mm512_shuffle_i32x4(r[m], r[m + 4], 0xdd);
        t[m + 8] = _mm512_shuffle_i32x4(r[m + 8], r[m + 12], 0x88);
        t[m + 12] = _mm512_shuffle_i32x4(r[m + 8], r[m + 12], 0xdd);
    }
    const __m512i big_endian = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
    for (int m = 0; m < 4; m++) {
        w[m] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(t[m], t[m + 8], 0x88), big_endian);
        w[m + 8] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(t[m], t[m + 8], 0xdd), big_endian);
        w[m + 4] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(t[m + 4], t[m + 12], 0x88), big_endian);
        w[m + 12] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(t[m + 4], t[m + 12], 0xdd), big_endian);
    }
}

// One round t of FIPS 180-4's SHA-1 in every lane. `f` is the round function as a ternary-logic
// table over (b, c, d): 0xca choose, 0x96 parity, 0xe8 majority. The schedule keeps the last 16 words.
#define ROUND(t, f, k)                                                                                    \
    do {                                                                                                  \
        __m512i word = w[(t) & 15];                                                                       \
        if ((t) >= 16) {                                                                                  \
            word = _mm512_ternarylogic_epi32(w[((t) - 3) & 15], w[((t) - 8) & 15], w[((t) - 14) & 15], 0x96); \
            word = _mm512_rol_epi32(_mm512_xor_si512(word, w[(t) & 15]), 1);                              \
            w[(t) & 15] = word;                                                                           \
        }                                                                                                 \
        __m512i sum = _mm512_add_epi32(_mm512_add_epi32(e, _mm512_set1_epi32((int)(k))), word);           \
        sum = _mm512_add_epi32(sum, _mm512_ternarylogic_epi32(b, c, d, (f)));                             \
        sum = _mm512_add_epi32(sum, _mm512_rol_epi32(a, 5));                                              \
        e = d;                                                                                            \
        d = c;                                                                                            \
        c = _mm512_rol_epi32(b, 30);                                                                      \
        b = a;                                                                                            \
        a = sum;                                                                                          \
    } while (0)

AVX512 void potluck_sha1_lanes(uint32_t state[5 * POTLUCK_SHA1_LANES], const uint8_t *const blocks[POTLUCK_SHA1_LANES],
                               size_t count) {
    __m512i a = _mm512_loadu_si512(state), b = _mm512_loadu_si512(state + 16), c = _mm512_loadu_si512(state + 32),
            d = _mm512_loadu_si512(state + 48), e = _mm512_loadu_si512(state + 64);
    for (size_t index = 0; index < count; index++) {
        __m512i w[16];
        load_words(w, blocks, index);
        const __m512i a0 = a, b0 = b, c0 = c, d0 = d, e0 = e;
        for (int t = 0; t < 20; t++) ROUND(t, 0xca, 0x5A827999u);
        for (int t = 20; t < 40; t++) ROUND(t, 0x96, 0x6ED9EBA1u);
        for (int t = 40; t < 60; t++) ROUND(t, 0xe8, 0x8F1BBCDCu);
        for (int t = 60; t < 80; t++) ROUND(t, 0x96, 0xCA62C1D6u);
        a = _mm512_add_epi32(a, a0);
        b = _mm512_add_epi32(b, b0);
        c = _mm512_add_epi32(c, c0);
        d = _mm512_add_epi32(d, d0);
        e = _mm512_add_epi32(e, e0);
    }
    _mm512_storeu_si512(state, a);
    _mm512_storeu_si512(state + 16, b);
    _mm512_storeu_si512(state + 32, c);
    _mm512_storeu_si512(state + 48, d);
    _mm512_storeu_si512(state + 64, e);
}
