"""C source of the fused element-wise kernels of a UniRepLKNet block's FFN on channels_last activations.

Between the two 1×1 convolutions of the FFN the plain module makes four passes over the widest tensor of the block
(GELU, the GRN norm over H×W, the GRN scaling, and the reads in between): on a CPU they cost about as much as the
convolutions of the small models. Two passes do the same work here:

* ``lk_channel_stats``: exact GELU, 0.5·x·(1 + erf(x/√2)), in place, and per (sample, channel) the sum of squares
  of the result (the GRN statistic), in one read and one write (or only the statistic, read-only, when the GELU was
  already applied by the convolution before it); or per (sample, channel) the plain sum (the SE's pooling);
* ``lk_scale_channels``: y[b, :, c] *= s[b, c] in place (the GRN scaling, s = 1 + γ·N(x); the SE's gating);
* ``lk_se_excite``: the SE's two small layers on the pooled sums (ReLU, sigmoid), one thread;
* ``lk_layernorm_rows``: LayerNorm over the channels of each pixel (optionally followed by GELU), the stem's and
  the downsampling layers' channels-first LayerNorm on a channels_last tensor, where ``F.layer_norm`` over 20–80
  channels spends most of its time per row.

``erf`` uses Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7) with a Cody–Waite range-reduced ``exp``; the loops are
plain C that ``-O3 -march=native`` vectorizes. Tensors are NHWC in memory (B, H·W, C), fp32 or bf16 (bf == 1,
rounded to nearest even like torch); statistics are accumulated in fp32 from the values as stored.
"""

C_SOURCE_POINTWISE = r"""
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
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
/* ---- fused element-wise FFN kernels (NHWC) ---- */
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

/* y (B, HW, C) in place: y[b, hw, c] *= s[b, c]. */
void lk_scale_channels(void* y, const float* s, int64_t B, int64_t HW, int64_t C, int bf, int nthreads) {
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
        if (bf) {
            uint16_t* row = (uint16_t*)y + r * C;
            int64_t c = 0;
            for (; c + VL <= C; c += VL) {
                v16 f;
                memcpy(&f, sc + c, 64);
                lk_vstore_bf16(row + c, lk_vbf16_round(lk_vload_bf16(row + c) * f));
            }
            for (; c < C; ++c) {
                uint32_t u = (uint32_t)row[c] << 16;
                float v;
                memcpy(&v, &u, 4);
                v = lk_bf16_round(v * sc[c]);
                memcpy(&u, &v, 4);
                row[c] = (uint16_t)(u >> 16);
            }
        } else {
            float* row = (float*)y + r * C;
            for (int64_t c = 0; c < C; ++c) row[c] *= sc[c];
        }
    }
    LK_FTZ_END
    }
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

/* LayerNorm over the C channels of each row of x (rows, C) -> y (may alias x), then GELU when gelu != 0.
 * Statistics in fp32 (two passes over the row, like torch); rows are split over the threads. */
/* 16 rows at a time: buf holds them transposed (C vectors of 16 lanes, one lane per row), so the statistics are
 * vertical vector operations whatever C is. */
static void ln_rows(const void* x, void* y, const float* w, const float* b, int64_t r0, int64_t r1, int64_t C,
                    float eps, int bf, int gelu, float* buf) {
    v16* v = (v16*)buf;
    for (int64_t rb = r0; rb < r1; rb += VL) {
        const int64_t nr = mn(VL, r1 - rb);
        if (nr < VL) memset(buf, 0, (size_t)(C * VL) * sizeof(float));
        if (bf) {
            const uint16_t* xr = (const uint16_t*)x + rb * C;
            for (int64_t i = 0; i < nr; ++i)
                for (int64_t c = 0; c < C; ++c) { uint32_t u = (uint32_t)xr[i * C + c] << 16; memcpy(buf + c * VL + i, &u, 4); }
        } else {
            const float* xr = (const float*)x + rb * C;
            for (int64_t i = 0; i < nr; ++i)
                for (int64_t c = 0; c < C; ++c) buf[c * VL + i] = xr[i * C + c];
        }
        v16 mean = v[0] * 0.0f, var = v[0] * 0.0f;
        for (int64_t c = 0; c < C; ++c) mean += v[c];
        mean *= 1.0f / (float)C;
        for (int64_t c = 0; c < C; ++c) { const v16 d = v[c] - mean; var += d * d; }
        var = var * (1.0f / (float)C) + eps;
        v16 rstd;
        for (int i = 0; i < VL; ++i) rstd[i] = 1.0f / __builtin_sqrtf(var[i]);
        for (int64_t c = 0; c < C; ++c) {
            v16 t = (v[c] - mean) * rstd * w[c] + b[c];
            if (gelu) t = lk_vgelu(t);
            if (bf) t = lk_vbf16_round(t);
            v[c] = t;
        }
        if (bf) {
            uint16_t* yr = (uint16_t*)y + rb * C;
            for (int64_t i = 0; i < nr; ++i)
                for (int64_t c = 0; c < C; ++c) { uint32_t u; memcpy(&u, buf + c * VL + i, 4); yr[i * C + c] = (uint16_t)(u >> 16); }
        } else {
            float* yr = (float*)y + rb * C;
            for (int64_t i = 0; i < nr; ++i)
                for (int64_t c = 0; c < C; ++c) yr[i * C + c] = buf[c * VL + i];
        }
    }
}

/* Returns 0, or 1 if out of memory. */
int lk_layernorm_rows(const void* x, void* y, const float* w, const float* b, int64_t rows, int64_t C, float eps,
                      int bf, int gelu, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    int fail = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(|: fail)
#endif
    {
        LK_FTZ_BEGIN
        int tid = 0, nt = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        float* buf = (float*)aligned_alloc(64, (size_t)(C * VL) * sizeof(float));
        if (!buf) {
            fail = 1;
        } else {
            const int64_t blocks = (rows + VL - 1) / VL;   /* split on 16-row boundaries */
            ln_rows(x, y, w, b, mn(rows, blocks * tid / nt * VL), mn(rows, blocks * (tid + 1) / nt * VL), C, eps, bf,
                    gelu, buf);
            free(buf);
        }
        LK_FTZ_END
    }
    return fail;
}
"""
