/* lkconv native kernels: the shared vector types and helpers, and the prototypes of every exported function.
 *
 * Each .c file of this folder includes this header and compiles on its own; the loader (lkconv.ops.native) builds
 * them into one shared object with -fvisibility=hidden, so only the functions marked LK_API are exported.
 * The argument lists below are the ABI that Python calls through ctypes: lkconv/ops/native/signatures.py holds the
 * same lists as a table, and tests/ops/test_native.py fails when the two disagree. */
#ifndef LK_NATIVE_H
#define LK_NATIVE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LK_API __attribute__((visibility("default")))

/* An OpenMP directive, or nothing in a build without OpenMP (one thread). */
#ifdef _OPENMP
#define LK_OMP(...) _Pragma(#__VA_ARGS__)
#else
#define LK_OMP(...)
#endif

/* Without AVX-512 the compilers note that passing a 64-byte vector by value has a different calling convention. Only
 * static functions inside one translation unit take or return vectors (no exported function does), so the note
 * cannot describe a real mismatch here. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* 16 fp32 lanes (GCC/Clang vector extensions); v16u: the same, at any 4-byte aligned address */
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(64)));
#define VL 16
#define BMAX 16

/* Lane permutation of two vectors with constant indices: Clang and GCC >= 12 spell it __builtin_shufflevector,
 * older GCC __builtin_shuffle with an index vector. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define LK_SHUFFLE16(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define LK_SHUFFLE16(a, b, ...) __builtin_shuffle(a, b, (v16i){__VA_ARGS__})
#endif

static inline float bf2f(uint16_t h) { uint32_t u = ((uint32_t)h) << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t f2bf(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t mn(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t mx(int64_t a, int64_t b) { return a > b ? a : b; }
/* smallest k in [0, K] with k * d >= v */
static inline int kmin_ge(int64_t v, int d, int K) {
    if (v <= 0) return 0;
    const int64_t k = d == 1 ? v : cdiv(v, d);  /* no division in the common undilated case */
    return k > K ? K : (int)k;
}
/* one past the largest k in [0, K) with k * d <= v (0 when none) */
static inline int kmax_le(int64_t v, int d, int K) {
    if (v < 0) return 0;
    const int64_t k = (d == 1 ? v : v / d) + 1;
    return k > K ? K : (int)k;
}

/* ---- dwconv.c: depthwise convolution, stride 1 ---- */
LK_API void lk_tap_window(int64_t H, int64_t W, int64_t Ho, int64_t Wo, int kh, int kw, int dh, int dw, int64_t pt,
                          int64_t pl, int32_t* win);
LK_API void lk_pack_weight(const void* w, float* wpk, int64_t C, int kh, int kw, const int32_t* win, int bf,
                           int nthreads);
LK_API int lk_dwconv2d(const void* x, const float* wpk, const int32_t* win, const void* bias, void* y,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                       int kh, int kw, int dh, int dw, int64_t pt, int64_t pl,
                       int in_nhwc, int out_nhwc, int bf, int mode, int block, int nthreads);
LK_API int lk_dwconv2d_raw(const void* x, const void* w, const void* bias, void* y,
                           int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                           int kh, int kw, int dh, int dw, int64_t pt, int64_t pl,
                           int in_nhwc, int out_nhwc, int bf, int mode, int block, int nthreads);
LK_API int lk_dwconv2d_grad_weight(const float* x, const float* g, float* out, int64_t N, int64_t C, int64_t H,
                                   int64_t W, int64_t Ho, int64_t Wo, int kh, int kw, int dh, int dwd, int64_t pt,
                                   int64_t pl, int nthreads);

/* ---- dwconv_bf16.c: the AVX512-BF16 path of lk_dwconv2d ---- */
LK_API int lk_has_bf16dot(void);
LK_API void lk_set_bf16dot(int on);
/* internal: bf16 NHWC in and out, no column dilation; returns -1 when this build has no such path (or it is turned
 * off), else lk_dwconv2d's return code */
int lk_dwconv2d_bf16dot(const uint16_t* x, const float* wpk, const int32_t* win, const uint16_t* bias, uint16_t* y,
                        int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int dh, int64_t pt,
                        int64_t pl, int block, int nthreads);

/* ---- pointwise.c: GELU + GRN statistic, channel scaling (float or uint8 codes), SE excitation ---- */
LK_API int lk_channel_stats(void* y, int64_t B, int64_t HW, int64_t C, int bf, int mode, float* out, int nthreads);
LK_API void lk_scale_channels(void* y, const float* s, int64_t B, int64_t HW, int64_t C, int bf, int nthreads);
LK_API void lk_scale_channels_u8(const void* y, const float* s, uint8_t* q, int64_t B, int64_t HW, int64_t C,
                                 int bf, float inv_scale, int zero_point, int nthreads);
LK_API void lk_se_excite(const float* sums, float inv_hw, const float* w1, const float* b1, const float* w2,
                         const float* b2, int64_t B, int64_t C, int64_t hidden, float* h, float* gate);

/* ---- layernorm.c: LayerNorm over the channels of each pixel ---- */
LK_API int lk_layernorm_rows(const void* x, void* y, const float* w, const float* b, int64_t rows, int64_t C,
                             float eps, int bf, int gelu, int nthreads);

#endif
