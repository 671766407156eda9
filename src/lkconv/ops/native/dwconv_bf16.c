/* bf16 depthwise convolution that multiplies pairs of taps with AVX512-BF16 dot products.
 *
 * Where the compiler targets AVX512-BF16 (-march=native on such a CPU: the shared object is built per machine),
 * lk_dwconv2d sends bf16 channels_last inputs without column dilation here. vdpbf16ps multiplies two pairs of bf16
 * values and adds both products to an fp32 lane, so one instruction does two taps of 16 channels; the fp32 path
 * needs one FMA per tap after converting every input to fp32.
 *
 * Layout: per task (image, 16 channels, a chunk of output rows) the input rows it reads are packed once into a
 * pair tile: entry (row, col) holds, per channel, the bf16 pair (x[row, col], x[row, col + 1]) as one 32-bit lane,
 * with zeros outside the image, so the taps (kx, kx + 1) of output column o are one 64-byte load at column o + kx.
 * The weights are packed the same way, pairs (w[ky, kx], w[ky, kx + 1]) with w[ky, kw] = 0. Taps that only ever see
 * padding are skipped as in the fp32 path (per output row and per block of output columns); an odd count of live
 * taps reads one extra tap that lies on padding for every column of the block, so it adds zero. Products of bf16
 * values are exact in fp32 and each lane accumulates in fp32 (round to nearest even, denormals flushed, like the
 * instruction), so results equal the fp32 path's up to summation order; the output is rounded to bf16 like torch. */
#include "lk_native.h"

static int lk_bf16dot_on = 1;

#ifdef __AVX512BF16__
#include <immintrin.h>
#define LK_XB 14  /* most output columns per register block (14 accumulators + weights + inputs in 32 registers) */

/* acc[i] += sum over the live tap pairs of the rows [0, nky) of pairs(src[i + kx]) . w[kx] */
#define LK_DOT_BLOCK(NB)                                                                                     \
static inline __attribute__((always_inline)) void lk_dot_block_##NB(                                        \
        const __m512i* src, int64_t rstep, const __m512i* w, int64_t wstep, int nky, int kx0, int kx1,      \
        __m512 init, __m512* out) {                                                                          \
    __m512 acc[NB];                                                                                          \
    for (int i = 0; i < NB; ++i) acc[i] = init;                                                              \
    for (int ky = 0; ky < nky; ++ky) {                                                                       \
        const __m512i* s = src + ky * rstep;                                                                 \
        const __m512i* wr = w + ky * wstep;                                                                  \
        for (int kx = kx0; kx < kx1; kx += 2) {                                                              \
            const __m512bh wv = (__m512bh)wr[kx];                                                            \
            for (int i = 0; i < NB; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)s[i + kx], wv);         \
        }                                                                                                    \
    }                                                                                                        \
    for (int i = 0; i < NB; ++i) out[i] = acc[i];                                                            \
}
LK_DOT_BLOCK(1) LK_DOT_BLOCK(2) LK_DOT_BLOCK(3) LK_DOT_BLOCK(4) LK_DOT_BLOCK(5) LK_DOT_BLOCK(6) LK_DOT_BLOCK(7)
LK_DOT_BLOCK(8) LK_DOT_BLOCK(9) LK_DOT_BLOCK(10) LK_DOT_BLOCK(11) LK_DOT_BLOCK(12) LK_DOT_BLOCK(13) LK_DOT_BLOCK(14)
#undef LK_DOT_BLOCK

static void lk_dot_block(int nb, const __m512i* src, int64_t rstep, const __m512i* w, int64_t wstep, int nky,
                         int kx0, int kx1, __m512 init, __m512* out) {
    switch (nb) {
#define LK_CASE(NB) case NB: lk_dot_block_##NB(src, rstep, w, wstep, nky, kx0, kx1, init, out); break;
        LK_CASE(1) LK_CASE(2) LK_CASE(3) LK_CASE(4) LK_CASE(5) LK_CASE(6) LK_CASE(7)
        LK_CASE(8) LK_CASE(9) LK_CASE(10) LK_CASE(11) LK_CASE(12) LK_CASE(13) LK_CASE(14)
#undef LK_CASE
        default: break;
    }
}

/* NHWC bf16 x (N, H, W, C) -> NHWC bf16 y (N, Ho, Wo, C); stride 1, row dilation dh, no column dilation.
 * wpk: fp32 weights packed by lk_pack_weight for the tap window win (exact bf16 values). Returns 0, or 2 if out of
 * memory. */
static int bf16dot(const uint16_t* x, const float* wpk, const int32_t* win, const uint16_t* bias, uint16_t* y,
                   int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int dh, int64_t pt, int64_t pl,
                   int block, int nthreads) {
    const int XB = block < 1 ? 1 : block > LK_XB ? LK_XB : block;
    /* the tap window as the kernel: taps outside it never see a real pixel */
    const int kh = win[1] - win[0], kw = win[3] - win[2];
    pt -= (int64_t)win[0] * dh;
    pl -= win[2];
    if (kh <= 0 || kw <= 0) {  /* every tap on padding: the output is the bias */
        for (int64_t i = 0; i < N * Ho * Wo; ++i)
            for (int64_t c = 0; c < C; ++c) y[i * C + c] = bias ? bias[c] : 0;
        return 0;
    }
    const int64_t CB = cdiv(C, VL);
    const int64_t TW = Wo + kw + 1;                 /* pair-tile columns: input columns -pl .. Wo + kw - pl */
    const int64_t kwp = kw + 1;                     /* packed weight pairs per row (the last pairs w[kw-1], 0) */
    __m512i* wp = (__m512i*)aligned_alloc(64, (size_t)(CB * kh * kwp) * 64);
    if (!wp) return 2;
    for (int64_t cb = 0; cb < CB; ++cb)
        for (int ky = 0; ky < kh; ++ky) {
            const float* wrow = wpk + (cb * kh + ky) * (int64_t)kw * VL;
            for (int kx = 0; kx < kwp; ++kx) {
                uint32_t lanes[VL];
                for (int l = 0; l < VL; ++l) {
                    uint32_t lo = 0, hi = 0;
                    if (kx < kw) memcpy(&lo, wrow + kx * VL + l, 4);
                    if (kx + 1 < kw) memcpy(&hi, wrow + (kx + 1) * VL + l, 4);
                    lanes[l] = (lo >> 16) | (hi & 0xffff0000u);   /* exact bf16 values: the low halves are zero */
                }
                memcpy(&wp[(cb * kh + ky) * kwp + kx], lanes, 64);
            }
        }
    const int64_t halo = (int64_t)(kh - 1) * dh;
    const int64_t base = N * CB;
    int64_t R = base < 4 * nthreads ? cdiv(4 * nthreads, base) : 1;
    if (R > Ho) R = Ho;
    int64_t rows = cdiv(Ho, R);
    while (rows > 1 && mn(rows + halo, H) * TW * 64 > (1 << 19)) rows = cdiv(rows, 2);
    R = cdiv(Ho, rows);
    const int64_t ntask = base * R;
    const int64_t tile_rows = mn(rows + halo, H);
    int err = 0;
    LK_OMP(omp parallel num_threads(nthreads))
    {
        __m512i* tile = (__m512i*)aligned_alloc(64, (size_t)(tile_rows * TW) * 64);
        if (!tile) {
            LK_OMP(omp atomic write)
            err = 2;
        } else {
            LK_OMP(omp for schedule(dynamic, 1))
            for (int64_t task = 0; task < ntask; ++task) {
                const int64_t rc = task % R, n = (task / R) / CB, cb = (task / R) % CB;
                const int64_t c0 = cb * VL;
                const int nl = (int)mn(C - c0, VL);
                const __mmask16 m = (__mmask16)((1u << nl) - 1u);
                const int64_t y0 = rc * rows, y1 = mn(y0 + rows, Ho);
                const int64_t iy0 = mn(mx(y0 - pt, 0), H);
                const int64_t iy1 = mx(mn(y1 - 1 - pt + halo + 1, H), iy0);
                /* the pair tile of input rows [iy0, iy1) */
                for (int64_t iy = iy0; iy < iy1; ++iy) {
                    const uint16_t* xrow = x + ((n * H + iy) * W) * C + c0;
                    __m512i* trow = tile + (iy - iy0) * TW;
                    __m512i cur = _mm512_setzero_si512();
                    int64_t ix = -pl;  /* input column of tile column 0 */
                    if (ix >= 0 && ix < W) cur = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, xrow + ix * C));
                    for (int64_t j = 0; j < TW; ++j, ++ix) {
                        __m512i nxt = _mm512_setzero_si512();
                        if (ix + 1 >= 0 && ix + 1 < W)
                            nxt = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, xrow + (ix + 1) * C));
                        trow[j] = _mm512_or_si512(cur, _mm512_slli_epi32(nxt, 16));
                        cur = nxt;
                    }
                }
                __m512 init = _mm512_setzero_ps();
                if (bias) init = _mm512_castsi512_ps(_mm512_slli_epi32(
                    _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, bias + c0)), 16));
                const __m512i* wcb = wp + cb * kh * kwp;
                __m512 acc[LK_XB];
                for (int64_t yy = y0; yy < y1; ++yy) {
                    const int ky0 = kmin_ge(pt - yy, dh, kh), ky1 = kmax_le(H - 1 - yy + pt, dh, kh);
                    uint16_t* yrow = y + ((n * Ho + yy) * Wo) * C + c0;
                    for (int64_t x0 = 0; x0 < Wo; x0 += XB) {
                        const int xb = (int)mn(Wo - x0, XB);
                        const int kx0 = kmin_ge(pl - (x0 + xb - 1), 1, kw), kx1 = kmax_le(W - 1 - x0 + pl, 1, kw);
                        if (ky0 >= ky1 || kx0 >= kx1) {
                            for (int i = 0; i < xb; ++i) acc[i] = init;
                        } else {
                            const __m512i* src = tile + (yy + (int64_t)ky0 * dh - pt - iy0) * TW + x0;
                            lk_dot_block(xb, src, (int64_t)dh * TW, wcb + (int64_t)ky0 * kwp, kwp, ky1 - ky0, kx0,
                                         kx1, init, acc);
                        }
                        for (int i = 0; i < xb; ++i)
                            _mm256_mask_storeu_epi16(yrow + (x0 + i) * C, m, (__m256i)_mm512_cvtneps_pbh(acc[i]));
                    }
                }
            }
            free(tile);
        }
    }
    free(wp);
    return err;
}
#endif

int lk_dwconv2d_bf16dot(const uint16_t* x, const float* wpk, const int32_t* win, const uint16_t* bias, uint16_t* y,
                        int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int dh, int64_t pt,
                        int64_t pl, int block, int nthreads) {
#ifdef __AVX512BF16__
    if (lk_bf16dot_on) return bf16dot(x, wpk, win, bias, y, N, C, H, W, Ho, Wo, dh, pt, pl, block, nthreads);
#else
    (void)x; (void)wpk; (void)win; (void)bias; (void)y; (void)N; (void)C; (void)H; (void)W; (void)Ho; (void)Wo;
    (void)dh; (void)pt; (void)pl; (void)block; (void)nthreads;
#endif
    return -1;
}

/* 1 when this build has the AVX512-BF16 path; lk_set_bf16dot(0) turns it off (tests, benchmarks). */
int lk_has_bf16dot(void) {
#ifdef __AVX512BF16__
    return 1;
#else
    return 0;
#endif
}
void lk_set_bf16dot(int on) { lk_bf16dot_on = on != 0; }
