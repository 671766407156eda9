/* LayerNorm over the channels of each pixel of a channels_last tensor (optionally followed by GELU): the stem's and
 * the downsampling layers' channels-first LayerNorm, where F.layer_norm over 20-80 channels spends most of its time
 * per row. */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "lk_vmath.h"

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
