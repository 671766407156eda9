/* Fused element-wise kernels of a UniRepLKNet block's FFN (and its SE) on channels_last activations.
 *
 * Tensors are NHWC in memory (B, H*W, C), fp32 or bf16 (bf == 1); statistics are accumulated in fp32 from the values
 * as stored. lk_channel_stats: GELU in place plus the per (sample, channel) sum of squares (the GRN statistic), or
 * only the statistic, or the plain sum (the SE's pooling); lk_scale_channels: y[b, :, c] *= s[b, c] (the GRN
 * scaling, the SE's gating); lk_scale_channels_u8: the same scaling written as uint8 codes of a per-tensor affine
 * quantization (the int8 pointwise layers' input); lk_se_excite: the SE's two small layers on the pooled sums. */
#include <math.h>

#include "lk_vmath.h"

/* acc[c] += row[c] (sq == 0: the SE pooling) or row[c]^2 (sq == 1: the GRN statistic); inlined with a constant sq */
static inline void accum_row_f32(const float* restrict row, float* restrict acc, int64_t C, int sq) {
    int64_t c = 0;
    for (; c + VL <= C; c += VL) {
        v16 v, a;
        memcpy(&v, row + c, 64);
        memcpy(&a, acc + c, 64);
        a += sq ? v * v : v;
        memcpy(acc + c, &a, 64);
    }
    for (; c < C; ++c) acc[c] += sq ? row[c] * row[c] : row[c];
}

static inline void accum_row_bf16(const uint16_t* restrict row, float* restrict acc, int64_t C, int sq) {
    int64_t c = 0;
    for (; c + VL <= C; c += VL) {
        v16 a;
        memcpy(&a, acc + c, 64);
        const v16 v = lk_vload_bf16(row + c);
        a += sq ? v * v : v;
        memcpy(acc + c, &a, 64);
    }
    for (; c < C; ++c) {
        uint32_t u = (uint32_t)row[c] << 16;
        float v;
        memcpy(&v, &u, 4);
        acc[c] += sq ? v * v : v;
    }
}

static void gelu_sumsq_row_f32(float* restrict row, float* restrict acc, int64_t C) {
    int64_t c = 0;
    for (; c + VL <= C; c += VL) {
        v16 v, a;
        memcpy(&v, row + c, 64);
        memcpy(&a, acc + c, 64);
        const v16 g = lk_vgelu(v);
        memcpy(row + c, &g, 64);
        a += g * g;
        memcpy(acc + c, &a, 64);
    }
    for (; c < C; ++c) {
        const float g = lk_gelu(row[c]);
        row[c] = g;
        acc[c] += g * g;
    }
}

static void gelu_sumsq_row_bf16(uint16_t* restrict row, float* restrict acc, int64_t C) {
    int64_t c = 0;
    for (; c + VL <= C; c += VL) {
        v16 a;
        memcpy(&a, acc + c, 64);
        const v16 g = lk_vbf16_round(lk_vgelu(lk_vload_bf16(row + c)));
        lk_vstore_bf16(row + c, g);
        a += g * g;
        memcpy(acc + c, &a, 64);
    }
    for (; c < C; ++c) {
        uint32_t u = (uint32_t)row[c] << 16;
        float v;
        memcpy(&v, &u, 4);
        const float g = lk_bf16_round(lk_gelu(v));
        memcpy(&u, &g, 4);
        row[c] = (uint16_t)(u >> 16);
        acc[c] += g * g;
    }
}

/* Per (sample, channel) statistics of y (B, HW, C) into out (B, C):
 *   mode 0: sum over HW of y^2;  mode 1: y = gelu(y) in place, then the sum of y^2 (the GRN statistic);
 *   mode 2: sum over HW of y (the SE pooling, times HW).
 * Returns 0, or 1 if out of memory. */
int lk_channel_stats(void* y, int64_t B, int64_t HW, int64_t C, int bf, int mode, float* out, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    int64_t P = (2 * (int64_t)nthreads + B - 1) / B;  /* chunks of HW per sample: >= 2 tasks per thread */
    if (P > HW) P = HW;
    if (P < 1) P = 1;
    float* part = (float*)calloc((size_t)(B * P * C), sizeof(float));
    if (!part) return 1;
    const int64_t tasks = B * P;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
    LK_FTZ_BEGIN
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t task = 0; task < tasks; ++task) {
        const int64_t b = task / P, p = task % P;
        const int64_t h0 = HW * p / P, h1 = HW * (p + 1) / P;
        float* acc = part + task * C;
        for (int64_t hw = h0; hw < h1; ++hw) {
            const int64_t off = (b * HW + hw) * C;
            if (mode == 1) {
                if (bf) gelu_sumsq_row_bf16((uint16_t*)y + off, acc, C);
                else gelu_sumsq_row_f32((float*)y + off, acc, C);
            } else if (mode == 2) {
                if (bf) accum_row_bf16((const uint16_t*)y + off, acc, C, 0);
                else accum_row_f32((const float*)y + off, acc, C, 0);
            } else {
                if (bf) accum_row_bf16((const uint16_t*)y + off, acc, C, 1);
                else accum_row_f32((const float*)y + off, acc, C, 1);
            }
        }
    }
    LK_FTZ_END
    }
    for (int64_t b = 0; b < B; ++b) {
        float* o = out + b * C;
        memcpy(o, part + b * P * C, (size_t)C * sizeof(float));
        for (int64_t p = 1; p < P; ++p) {
            const float* src = part + (b * P + p) * C;
            for (int64_t c = 0; c < C; ++c) o[c] += src[c];
        }
    }
    free(part);
    return 0;
}

/* One row of lk_scale_channels: row[c] *= sc[c] (bf16 rows rounded back to bf16). */
static inline void scale_row(void* y, const float* sc, int64_t r, int64_t C, int bf) {
    int64_t c = 0;
    if (bf) {
        uint16_t* row = (uint16_t*)y + r * C;
        for (; c + VL <= C; c += VL) {
            v16 f;
            memcpy(&f, sc + c, 64);
            lk_vstore_bf16(row + c, lk_vbf16_round(lk_vload_bf16(row + c) * f));
        }
        for (; c < C; ++c) {
            uint32_t u;
            float v = lk_bf16_round(bf2f(row[c]) * sc[c]);
            memcpy(&u, &v, 4);
            row[c] = (uint16_t)(u >> 16);
        }
    } else {
        float* row = (float*)y + r * C;
        for (; c < C; ++c) row[c] *= sc[c];
    }
}

/* uint8 codes of the fp32 values v as torch.quantize_per_tensor(quint8) writes them (its x86 quantizer, fbgemm):
 * t = fma(v, 1 / scale, zero_point), one rounding to fp32, then rounded half to even (the default rounding mode) and
 * clamped to [0, 255]. Measured against torch 2.13: this form matches all of 8M random values, while
 * round(fp32(v / scale)) + zp differs on a few in a million (ties decided by the rounding of the product). Clamping
 * t before rounding gives the same codes (integer bounds commute with rounding), keeps the magic-number rounding
 * exact, and sends NaN to 255 as torch does. fmaf: one instruction where the target has FMA, a libm call (still
 * exact) where not. */
static inline void quant_store_u8(uint8_t* dst, v16 v, float inv, float zp) {
    typedef uint8_t v16b __attribute__((vector_size(16)));
#if defined(__FMA__) || defined(__aarch64__)
    v16 t = v * inv + zp;                           /* contracted into one FMA (gnu11: -ffp-contract=fast) */
#else
    v16 t = v;
    for (int k = 0; k < VL; ++k) t[k] = __builtin_fmaf(v[k], inv, zp);
#endif
    const v16i below = t < 255.0f;                  /* false for NaN: it becomes 255 */
    t = lk_vbits((lk_vint(t) & below) | (lk_vint((v16){0} + 255.0f) & ~below));
    const v16i above = t > 0.0f;
    t = lk_vbits(lk_vint(t) & above);               /* 0.0f: all bits zero */
    t = (t + 12582912.0f) - 12582912.0f;            /* 1.5 * 2^23: round half to even for |t| < 2^22 */
    const v16b q = __builtin_convertvector(__builtin_convertvector(t, v16i), v16b);
    memcpy(dst, &q, 16);
}

static inline uint8_t quant_u8(float v, float inv, float zp) {
    float t = __builtin_fmaf(v, inv, zp);
    t = t < 255.0f ? t : 255.0f;
    t = t > 0.0f ? t : 0.0f;
    return (uint8_t)(int32_t)nearbyintf(t);
}

/* One row of lk_scale_channels_u8: the codes of what scale_row would store, y unchanged. */
static inline void scale_row_u8(const void* y, const float* sc, uint8_t* out, int64_t r, int64_t C, int bf,
                                float inv_scale, float zp) {
    int64_t c = 0;
    if (bf) {
        const uint16_t* row = (const uint16_t*)y + r * C;
        for (; c + VL <= C; c += VL) {
            v16 f;
            memcpy(&f, sc + c, 64);
            quant_store_u8(out + c, lk_vbf16_round(lk_vload_bf16(row + c) * f), inv_scale, zp);
        }
        for (; c < C; ++c) out[c] = quant_u8(lk_bf16_round(bf2f(row[c]) * sc[c]), inv_scale, zp);
    } else {
        const float* row = (const float*)y + r * C;
        for (; c + VL <= C; c += VL) {
            v16 v, f;
            memcpy(&v, row + c, 64);
            memcpy(&f, sc + c, 64);
            quant_store_u8(out + c, v * f, inv_scale, zp);
        }
        for (; c < C; ++c) out[c] = quant_u8(row[c] * sc[c], inv_scale, zp);
    }
}

/* The rows of y (B, HW, C) scaled by s[b, :] over nthreads threads: in place (q NULL) or as uint8 codes in q. */
static void scale_rows(void* y, const float* s, uint8_t* q, int64_t B, int64_t HW, int64_t C, int bf,
                       float inv_scale, float zp, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    const int64_t rows = B * HW;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
    LK_FTZ_BEGIN
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t r = 0; r < rows; ++r) {
        const float* sc = s + (r / HW) * C;
        if (q)
            scale_row_u8(y, sc, q + r * C, r, C, bf, inv_scale, zp);
        else
            scale_row(y, sc, r, C, bf);
    }
    LK_FTZ_END
    }
}

/* y (B, HW, C) in place: y[b, hw, c] *= s[b, c]. */
void lk_scale_channels(void* y, const float* s, int64_t B, int64_t HW, int64_t C, int bf, int nthreads) {
    scale_rows(y, s, NULL, B, HW, C, bf, 0.0f, 0.0f, nthreads);
}

/* q (B, HW, C) = the uint8 codes (scale 1 / inv_scale, zero point zp) of y[b, hw, c] * s[b, c] as lk_scale_channels
 * would store it (rounded to bf16 when bf), y unchanged: the scaling and torch.quantize_per_tensor in one pass, no
 * float tensor written. inv_scale: the fp32 value 1.0f / (float)scale, which torch multiplies by. */
void lk_scale_channels_u8(const void* y, const float* s, uint8_t* q, int64_t B, int64_t HW, int64_t C, int bf,
                          float inv_scale, int zero_point, int nthreads) {
    scale_rows((void*)y, s, q, B, HW, C, bf, inv_scale, (float)zero_point, nthreads);  /* y only read when q is set */
}

/* sum_i a[i] * b[i] in fp32, 16 lanes at a time. */
static float lk_dot(const float* a, const float* b, int64_t n) {
    v16 acc = {0};
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        v16 va, vb;
        memcpy(&va, a + i, 64);
        memcpy(&vb, b + i, 64);
        acc += va * vb;
    }
    float s = 0.0f;
    for (int k = 0; k < VL; ++k) s += acc[k];
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

/* The SE's excitation on the pooled sums (B, C): gate = sigmoid(W2 · ReLU(W1 · sums/HW + b1) + b2), fp32, one
 * thread (B·C·hidden·2 multiply-adds: tens of microseconds; a GEMM library call this small cost 0.4-1 ms here).
 * w1 (hidden, C), w2 (C, hidden); b1, b2 may be NULL; h is scratch of B·hidden floats. */
void lk_se_excite(const float* sums, float inv_hw, const float* w1, const float* b1, const float* w2,
                  const float* b2, int64_t B, int64_t C, int64_t hidden, float* h, float* gate) {
    for (int64_t b = 0; b < B; ++b) {
        const float* m = sums + b * C;
        float* hb = h + b * hidden;
        for (int64_t j = 0; j < hidden; ++j) {
            const float v = lk_dot(w1 + j * C, m, C) * inv_hw + (b1 ? b1[j] : 0.0f);
            hb[j] = v > 0.0f ? v : 0.0f;
        }
        float* g = gate + b * C;
        for (int64_t c = 0; c < C; ++c) {
            const float z = lk_dot(w2 + c * hidden, hb, hidden) + (b2 ? b2[c] : 0.0f);
            g[c] = 1.0f / (1.0f + expf(-z));
        }
    }
}
