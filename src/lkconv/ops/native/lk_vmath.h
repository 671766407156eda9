/* Scalar and 16-lane GELU, bf16 rounding and bf16 loads/stores shared by pointwise.c and layernorm.c.
 *
 * erf uses Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7) with a Cody-Waite range-reduced exp; bf16 values are
 * rounded to nearest even like torch. */
#ifndef LK_VMATH_H
#define LK_VMATH_H

#include "lk_native.h"

#include <math.h>
/* Flush denormals to zero inside the kernels: GELU's tails and their squares are often denormal, and each one
 * costs a microcode assist (measured: the GRN statistic over a GELU output 15x slower). Only values below
 * 1.2e-38 change. The caller's floating-point state is restored. */
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define LK_FTZ_BEGIN const unsigned int lk_csr_ = _mm_getcsr(); _mm_setcsr(lk_csr_ | 0x8040u);
#define LK_FTZ_END _mm_setcsr(lk_csr_);
#else
#define LK_FTZ_BEGIN
#define LK_FTZ_END
#endif
static inline float lk_exp_neg(float z) {            /* e^-z for z >= 0 */
    z = __builtin_fminf(z, 87.0f);
    const float fx = -z * 1.44269504088896341f;     /* <= 0 */
    const int n = (int)(fx - 0.5f);                  /* round to nearest (fx <= 0) */
    const float fn = (float)n;
    const float r = (-z - fn * 0.693359375f) + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const uint32_t bits = (uint32_t)(n + 127) << 23;
    float s;
    memcpy(&s, &bits, 4);
    return p * s;
}

static inline float lk_gelu(float x) {
    const float u = x * 0.70710678118654752f;
    const float a = __builtin_fabsf(u);
    const float t = 1.0f / (1.0f + 0.3275911f * a);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f
                       + t * 1.061405429f))));
    const float erf_a = 1.0f - poly * lk_exp_neg(a * a);
    const float erf_u = __builtin_copysignf(erf_a, u);
    return 0.5f * x * (1.0f + erf_u);
}

static inline float lk_bf16_round(float f) {         /* the fp32 value of f rounded to bf16 (NaN kept) */
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t nan = 0u - (uint32_t)((u & 0x7fffffffu) > 0x7f800000u);   /* all ones for NaN */
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    u = (((u | 0x00400000u) & 0xffff0000u) & nan) | (r & ~nan);
    memcpy(&f, &u, 4);
    return f;
}

/* the same functions on 16 lanes (GCC vector extensions; the scalar versions above handle the tails) */
static inline v16 lk_vbits(v16i i) { v16 f; memcpy(&f, &i, 64); return f; }
static inline v16i lk_vint(v16 f) { v16i i; memcpy(&i, &f, 64); return i; }

static inline v16 lk_vgelu(v16 x) {
    const v16 u = x * 0.70710678118654752f;
    const v16i sign = lk_vint(u) & (int32_t)0x80000000u;
    const v16 a = lk_vbits(lk_vint(u) ^ sign);
    const v16 t = 1.0f / (1.0f + 0.3275911f * a);
    const v16 poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f
                     + t * 1.061405429f))));
    v16 z = a * a;
    z = lk_vbits((lk_vint(z) & (z < 87.0f)) | (lk_vint((v16){0} + 87.0f) & ~(z < 87.0f)));
    const v16 fx = -z * 1.44269504088896341f;
    const v16i n = __builtin_convertvector(fx - 0.5f, v16i);
    const v16 fn = __builtin_convertvector(n, v16);
    const v16 r = (-z - fn * 0.693359375f) + fn * 2.12194440e-4f;
    v16 p = 1.9875691500e-4f + 0.0f * r;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const v16 e = p * lk_vbits((n + 127) << 23);
    const v16 erf_a = 1.0f - poly * e;
    const v16 erf_u = lk_vbits(lk_vint(erf_a) ^ sign);
    return 0.5f * x * (1.0f + erf_u);
}

static inline v16 lk_vbf16_round(v16 f) {
    const v16i u = lk_vint(f);
    const v16i nan = (u & 0x7fffffff) > 0x7f800000;
    const v16i r = (u + 0x7fff + ((u >> 16) & 1)) & (int32_t)0xffff0000u;
    return lk_vbits((((u | 0x00400000) & (int32_t)0xffff0000u) & nan) | (r & ~nan));
}

static inline v16 lk_vload_bf16(const uint16_t* p) {
    typedef uint16_t v16h __attribute__((vector_size(32), aligned(2)));
    v16h h;
    memcpy(&h, p, 32);
    return lk_vbits(__builtin_convertvector(h, v16i) << 16);
}

static inline void lk_vstore_bf16(uint16_t* p, v16 f) {  /* f already rounded: keep the high halves */
    typedef uint16_t v16h __attribute__((vector_size(32), aligned(2)));
    const v16h h = __builtin_convertvector((lk_vint(f) >> 16) & 0xffff, v16h);
    memcpy(p, &h, 32);
}

#endif
