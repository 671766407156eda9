/* lkconv depthwise convolution kernel (stride 1, any padding and dilation), fp32 accumulation.
 * Channels are processed in blocks of 16 lanes; inputs are packed into a per-thread tile, taps that fall
 * wholly on padding are skipped. Two register-blocking schemes: along output columns (mode 0) or along
 * the batch (mode 1). */
#include "lk_native.h"

static inline void transpose16(v16* r) {
#define L1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define H1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define L2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define H2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define L4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define H4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define L8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define H8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define LK_STAGE(h, ML, MH) for (int i = 0; i < 16; ++i) if (!(i & (h))) { \
        const v16 a = r[i], b = r[i + (h)]; \
        r[i] = LK_SHUFFLE16(a, b, ML); r[i + (h)] = LK_SHUFFLE16(a, b, MH); }
    LK_STAGE(1, L1, H1) LK_STAGE(2, L2, H2) LK_STAGE(4, L4, H4) LK_STAGE(8, L8, H8)
#undef LK_STAGE
#undef L1
#undef H1
#undef L2
#undef H2
#undef L4
#undef H4
#undef L8
#undef H8
}

/* the taps [ky0, ky1) x [kx0, kx1) that any output reads a real pixel with */
void lk_tap_window(int64_t H, int64_t W, int64_t Ho, int64_t Wo, int kh, int kw, int dh, int dw, int64_t pt, int64_t pl,
                   int32_t* win) {
    win[0] = kmin_ge(pt - (Ho - 1), dh, kh); win[1] = kmax_le(H - 1 + pt, dh, kh);
    win[2] = kmin_ge(pl - (Wo - 1), dw, kw); win[3] = kmax_le(W - 1 + pl, dw, kw);
    if (win[1] < win[0]) win[1] = win[0];
    if (win[3] < win[2]) win[3] = win[2];
}

/* pack weight (C, kh, kw) taps in win to fp32 [CB][ky][kx][16] (zero lanes past C) */
void lk_pack_weight(const void* w, float* wpk, int64_t C, int kh, int kw, const int32_t* win, int bf, int nthreads) {
    const int64_t CB = cdiv(C, VL);
    const int nky = win[1] - win[0], nkx = win[3] - win[2];
    (void)nthreads;  /* unused without OpenMP */
    LK_OMP(omp parallel for num_threads(nthreads) schedule(static))
    for (int64_t cb = 0; cb < CB; ++cb) {
        float* wp = wpk + cb * (int64_t)nky * nkx * VL;
        const int nl = (int)mn(C - cb * VL, VL);
        v16 v[VL];
        for (int a = 0; a < nky; ++a) {
            float* dst = wp + (int64_t)a * nkx * VL;
            int b = 0;
            for (; b + VL <= nkx; b += VL) {
                for (int l = 0; l < VL; ++l) {
                    if (l >= nl) { v[l] = (v16){0}; continue; }
                    const int64_t i = ((cb * VL + l) * kh + win[0] + a) * kw + win[2] + b;
                    if (!bf) v[l] = *(const v16u*)((const float*)w + i);
                    else for (int j = 0; j < VL; ++j) v[l][j] = bf2f(((const uint16_t*)w)[i + j]);
                }
                transpose16(v);
                for (int j = 0; j < VL; ++j) *(v16*)(dst + (int64_t)(b + j) * VL) = v[j];
            }
            for (; b < nkx; ++b)
                for (int l = 0; l < VL; ++l) {
                    const int64_t i = ((cb * VL + l) * kh + win[0] + a) * kw + win[2] + b;
                    dst[(int64_t)b * VL + l] = l >= nl ? 0.f
                        : bf ? bf2f(((const uint16_t*)w)[i]) : ((const float*)w)[i];
                }
        }
    }
}

static inline __attribute__((always_inline)) void block_kernel(
    const int B, const float* restrict src, int64_t rstep, int64_t cstep, int64_t ps_acc, int nky, int nkx,
    const float* restrict wp, int64_t wrs, const v16 init, float* restrict out, int64_t ops)
{
    v16 acc[BMAX];
    for (int i = 0; i < B; ++i) acc[i] = init;
    for (int a = 0; a < nky; ++a) {
        const float* t0 = src + (int64_t)a * rstep;
        const float* wrow = wp + (int64_t)a * wrs;
        for (int b = 0; b < nkx; ++b) {
            const v16 wv = *(const v16*)(wrow + b * VL);
            const float* t = t0 + (int64_t)b * cstep;
            for (int i = 0; i < B; ++i) acc[i] += wv * *(const v16*)(t + i * ps_acc);
        }
    }
    for (int i = 0; i < B; ++i) *(v16*)(out + i * ops) = acc[i];
}
#define LK_CASE(n) case n: block_kernel(n, src, rstep, cstep, ps_acc, nky, nkx, wp, wrs, init, out, ops); break;
/* B accumulators over an nky x nkx tap grid: tap (a, b) reads src + a * rstep + b * cstep (+ i * ps_acc for output i)
 * and weight wp + a * wrs + b * 16 */
static void run_block(int B, const float* src, int64_t rstep, int64_t cstep, int64_t ps_acc, int nky, int nkx,
                      const float* wp, int64_t wrs, v16 init, float* out, int64_t ops) {
    switch (B) {
        LK_CASE(1) LK_CASE(2) LK_CASE(3) LK_CASE(4) LK_CASE(5) LK_CASE(6) LK_CASE(7) LK_CASE(8)
        LK_CASE(9) LK_CASE(10) LK_CASE(11) LK_CASE(12) LK_CASE(13) LK_CASE(14) LK_CASE(15) LK_CASE(16)
        default: break;
    }
}
#undef LK_CASE

/* Copy rows [r0, r1) of channels c0..c0+nl of image n (layout NCHW or NHWC, fp32 or bf16) into dst:
 * pixel (r, col) of the copied range lands at dst + (r - r0) * rs + col * ps, 16 lanes, missing lanes zero. */
static void pack_in(const void* x, int in_nhwc, int bf, int64_t n, int64_t C, int64_t H, int64_t W, int64_t c0, int nl,
                    int64_t r0, int64_t r1, float* dst, int64_t rs, int64_t ps) {
    if (in_nhwc) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t col = 0; col < W; ++col) {
                const int64_t off = ((n * H + r) * W + col) * C + c0;
                float* d = dst + (r - r0) * rs + col * ps;
                if (!bf && nl == VL) { *(v16*)d = *(const v16u*)((const float*)x + off); continue; }
                int l = 0;
                if (!bf) for (; l < nl; ++l) d[l] = ((const float*)x)[off + l];
                else for (; l < nl; ++l) d[l] = bf2f(((const uint16_t*)x)[off + l]);
                for (; l < VL; ++l) d[l] = 0.f;
            }
        return;
    }
    const int64_t M = (r1 - r0) * W, base = r0 * W;
    int64_t m = 0, r = 0, col = 0;  /* pixel m of the copied range is (r, col) */
    v16 v[VL];
    for (; m + VL <= M; m += VL) {
        for (int l = 0; l < VL; ++l) {
            if (l >= nl) { v[l] = (v16){0}; continue; }
            const int64_t off = (n * C + c0 + l) * H * W + base + m;
            if (!bf) v[l] = *(const v16u*)((const float*)x + off);
            else for (int j = 0; j < VL; ++j) v[l][j] = bf2f(((const uint16_t*)x)[off + j]);
        }
        transpose16(v);
        for (int j = 0; j < VL; ++j) {
            *(v16*)(dst + r * rs + col * ps) = v[j];
            if (++col == W) { col = 0; ++r; }
        }
    }
    for (; m < M; ++m) {
        float* d = dst + r * rs + col * ps;
        if (++col == W) { col = 0; ++r; }
        for (int l = 0; l < VL; ++l) {
            const int64_t off = (n * C + c0 + l) * H * W + base + m;
            d[l] = l >= nl ? 0.f : bf ? bf2f(((const uint16_t*)x)[off]) : ((const float*)x)[off];
        }
    }
}

/* Write output rows [r0, r1) of image n from src (pixel (r, col) at src + (r - r0) * rs + col * ps). */
static void unpack_out(void* y, int out_nhwc, int bf, int64_t n, int64_t C, int64_t Ho, int64_t Wo, int64_t c0, int nl,
                       int64_t r0, int64_t r1, const float* src, int64_t rs, int64_t ps) {
    if (out_nhwc) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t col = 0; col < Wo; ++col) {
                const int64_t off = ((n * Ho + r) * Wo + col) * C + c0;
                const float* s = src + (r - r0) * rs + col * ps;
                if (!bf && nl == VL) { *(v16u*)((float*)y + off) = *(const v16*)s; continue; }
                if (!bf) for (int l = 0; l < nl; ++l) ((float*)y)[off + l] = s[l];
                else for (int l = 0; l < nl; ++l) ((uint16_t*)y)[off + l] = f2bf(s[l]);
            }
        return;
    }
    const int64_t M = (r1 - r0) * Wo, base = r0 * Wo;
    int64_t m = 0, r = 0, col = 0;  /* pixel m of the written range is (r, col) */
    v16 v[VL];
    for (; m + VL <= M; m += VL) {
        for (int j = 0; j < VL; ++j) {
            v[j] = *(const v16*)(src + r * rs + col * ps);
            if (++col == Wo) { col = 0; ++r; }
        }
        transpose16(v);
        for (int l = 0; l < nl; ++l) {
            const int64_t off = (n * C + c0 + l) * Ho * Wo + base + m;
            if (!bf) *(v16u*)((float*)y + off) = v[l];
            else for (int j = 0; j < VL; ++j) ((uint16_t*)y)[off + j] = f2bf(v[l][j]);
        }
    }
    for (; m < M; ++m) {
        const float* s = src + r * rs + col * ps;
        if (++col == Wo) { col = 0; ++r; }
        for (int l = 0; l < nl; ++l) {
            const int64_t off = (n * C + c0 + l) * Ho * Wo + base + m;
            if (!bf) ((float*)y)[off] = s[l]; else ((uint16_t*)y)[off] = f2bf(s[l]);
        }
    }
}


/* mode 0: blocks of up to `block` output columns of one image; mode 1: blocks of up to `block` images at one pixel.
 * wpk: weights packed by lk_pack_weight for the tap window win. Inputs and outputs are dense NCHW or NHWC. */
int lk_dwconv2d(const void* x, const float* wpk, const int32_t* win, const void* bias, void* y,
                int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                int kh, int kw, int dh, int dw, int64_t pt, int64_t pl,
                int in_nhwc, int out_nhwc, int bf, int mode, int block, int nthreads) {
    if (block < 1 || block > BMAX || (mode != 0 && mode != 1) || nthreads < 1) return 1;
    if (N <= 0 || C <= 0 || Ho <= 0 || Wo <= 0) return 0;
    if (bf && in_nhwc && out_nhwc && dw == 1 && mode == 0) {  /* pairs of taps per AVX512-BF16 dot product */
        const int rc = lk_dwconv2d_bf16dot((const uint16_t*)x, wpk, win, (const uint16_t*)bias, (uint16_t*)y, N, C,
                                           H, W, Ho, Wo, dh, pt, pl, block, nthreads);
        if (rc >= 0) return rc;
    }
    const int64_t CB = cdiv(C, VL);
    const int wy0 = win[0], wx0 = win[2], wkw = win[3] - win[2];
    const int64_t wrs = (int64_t)wkw * VL, wcb = (int64_t)(win[1] - win[0]) * wkw * VL;
    int XB = 1, NB = 1;
    int64_t TL = 0, NG = N;
    if (mode == 0) { XB = (int)cdiv(Wo, cdiv(Wo, block)); TL = XB - 1; }
    else { NG = cdiv(N, block); NB = (int)cdiv(N, NG); }
    const int64_t TW = W + 2 * TL;                  /* tile columns */
    const int64_t tps = (int64_t)NB * VL;           /* tile pixel stride */
    const int64_t trs = TW * tps;                   /* tile row stride */
    const int64_t halo = (int64_t)(kh - 1) * dh;
    /* row chunks: enough tasks for the threads, and tiles of moderate size */
    const int64_t base = NG * CB;
    int64_t R = base < 4 * nthreads ? cdiv(4 * nthreads, base) : 1;
    if (R > Ho) R = Ho;
    int64_t rows = cdiv(Ho, R);
    while (rows > 1 && (mn(rows + halo, H) * trs + rows * Wo * tps) * 4 > (1 << 20)) rows = cdiv(rows, 2);
    R = cdiv(Ho, rows);
    const int64_t ntask = base * R;
    const int64_t tile_rows = mn(rows + halo, H);
    const int64_t tile_sz = tile_rows * trs, obuf_sz = rows * Wo * tps;
    int err = 0;
    LK_OMP(omp parallel num_threads(nthreads))
    {
        float* tile = (float*)aligned_alloc(64, (size_t)((tile_sz + obuf_sz) * 4 + 64));
        if (!tile) {
            LK_OMP(omp atomic write)
            err = 2;
        } else {
            float* obuf = tile + tile_sz;
            if (TL > 0) for (int64_t r = 0; r < tile_rows; ++r) {   /* column pads stay zero */
                memset(tile + r * trs, 0, (size_t)(TL * VL * 4));
                memset(tile + r * trs + (TL + W) * VL, 0, (size_t)(TL * VL * 4));
            }
            LK_OMP(omp for schedule(dynamic, 1))
            for (int64_t task = 0; task < ntask; ++task) {
                const int64_t rc = task % R, g = (task / R) / CB, cb = (task / R) % CB;
                const int64_t c0 = cb * VL;
                const int nl = (int)mn(C - c0, VL);
                const int64_t y0 = rc * rows, y1 = mn(y0 + rows, Ho);
                const int64_t iy0 = mn(mx(y0 - pt, 0), H);
                const int64_t iy1 = mx(mn(y1 - 1 - pt + halo + 1, H), iy0);
                v16 init = {0};
                if (bias) for (int l = 0; l < nl; ++l)
                    init[l] = bf ? bf2f(((const uint16_t*)bias)[c0 + l]) : ((const float*)bias)[c0 + l];
                const float* wcbp = wpk + cb * wcb;
                const int64_t n0 = g * NB;
                const int nb = mode == 0 ? 1 : (int)mn(N - n0, NB);
                for (int j = 0; j < nb; ++j)
                    pack_in(x, in_nhwc, bf, n0 + j, C, H, W, c0, nl, iy0, iy1, tile + TL * tps + j * VL, trs, tps);
                for (int64_t yy = y0; yy < y1; ++yy) {
                    const int ky0 = kmin_ge(pt - yy, dh, kh), ky1 = kmax_le(H - 1 - yy + pt, dh, kh);
                    if (ky0 >= ky1) {
                        float* orow0 = obuf + (yy - y0) * Wo * tps;
                        for (int64_t i = 0; i < Wo * nb; ++i) *(v16*)(orow0 + (i / nb) * tps + (i % nb) * VL) = init;
                        continue;
                    }
                    const float* trow = tile + (yy + (int64_t)ky0 * dh - pt - iy0) * trs;   /* tile row of tap ky0 */
                    const float* wrow = wcbp + (int64_t)(ky0 - wy0) * wrs;
                    float* orow = obuf + (yy - y0) * Wo * tps;
                    if (mode == 0) {
                        for (int64_t x0 = 0; x0 < Wo; x0 += XB) {
                            const int xb = (int)mn(Wo - x0, XB);
                            const int kx0 = kmin_ge(pl - (x0 + xb - 1), dw, kw), kx1 = kmax_le(W - 1 - x0 + pl, dw, kw);
                            if (kx0 >= kx1) {
                                for (int i = 0; i < xb; ++i) *(v16*)(orow + (x0 + i) * VL) = init;
                                continue;
                            }
                            const float* src = trow + (x0 - pl + TL + (int64_t)kx0 * dw) * VL;
                            run_block(xb, src, dh * trs, dw * VL, VL, ky1 - ky0, kx1 - kx0, wrow + (kx0 - wx0) * VL,
                                      wrs, init, orow + x0 * VL, VL);
                        }
                    } else {
                        for (int64_t xx = 0; xx < Wo; ++xx) {
                            const int kx0 = kmin_ge(pl - xx, dw, kw), kx1 = kmax_le(W - 1 - xx + pl, dw, kw);
                            if (kx0 >= kx1) {
                                for (int i = 0; i < nb; ++i) *(v16*)(orow + xx * tps + i * VL) = init;
                                continue;
                            }
                            run_block(nb, trow + (xx - pl + (int64_t)kx0 * dw) * tps, dh * trs, dw * tps, VL, ky1 - ky0,
                                      kx1 - kx0, wrow + (kx0 - wx0) * VL, wrs, init, orow + xx * tps, VL);
                        }
                    }
                }
                for (int j = 0; j < nb; ++j)
                    unpack_out(y, out_nhwc, bf, n0 + j, C, Ho, Wo, c0, nl, y0, y1, obuf + j * VL, Wo * tps, tps);
            }
            free(tile);
        }
    }
    return err;
}
/* lk_dwconv2d with an unpacked weight (C, kh, kw) in the input's dtype: packs the used tap window itself. */
int lk_dwconv2d_raw(const void* x, const void* w, const void* bias, void* y,
                    int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                    int kh, int kw, int dh, int dw, int64_t pt, int64_t pl,
                    int in_nhwc, int out_nhwc, int bf, int mode, int block, int nthreads) {
    int32_t win[4];
    lk_tap_window(H, W, Ho, Wo, kh, kw, dh, dw, pt, pl, win);
    const size_t n = (size_t)(cdiv(C, VL) * (win[1] - win[0]) * (win[3] - win[2]) * VL + VL);
    float* wpk = (float*)aligned_alloc(64, ((n * 4 + 63) / 64) * 64);
    if (!wpk) return 2;
    lk_pack_weight(w, wpk, C, kh, kw, win, bf, nthreads);
    const int rc = lk_dwconv2d(x, wpk, win, bias, y, N, C, H, W, Ho, Wo, kh, kw, dh, dw, pt, pl,
                               in_nhwc, out_nhwc, bf, mode, block, nthreads);
    free(wpk);
    return rc;
}

/* Weight gradient of the depthwise convolution, fp32, NHWC x (N, H, W, C) and grad_out g (N, Ho, Wo, C):
 * dw[c, i, j] = sum over n, yo, xo of g[n, yo, xo, c] * x[n, yo + i*dh - pt, xo + j*dw - pl, c], taps on padding
 * skipped. Channels run in 16-lane vectors; tasks are (channel block, batch slice) with private sums, reduced at the
 * end in a fixed order (deterministic). Returns 0, or 2 if out of memory. */
static inline void gw_tail(const float* x, const float* g, float* acc, int64_t n0, int64_t n1, int64_t C, int64_t H,
                           int64_t W, int64_t Ho, int64_t Wo, int kh, int kw, int dh, int dwd, int64_t pt, int64_t pl,
                           int64_t c0, int nl) {
    for (int i = 0; i < kh; ++i) {
        const int64_t oy = (int64_t)i * dh - pt, ya = mx(0, -oy), yb = mn(Ho, H - oy);
        for (int j = 0; j < kw; ++j) {
            const int64_t ox = (int64_t)j * dwd - pl, xa = mx(0, -ox), xb = mn(Wo, W - ox);
            float* a = acc + ((int64_t)i * kw + j) * VL;
            for (int64_t n = n0; n < n1; ++n)
                for (int64_t yo = ya; yo < yb; ++yo) {
                    const float* grow = g + ((n * Ho + yo) * Wo) * C + c0;
                    const float* xrow = x + ((n * H + yo + oy) * W) * C + c0;
                    for (int64_t xo = xa; xo < xb; ++xo)
                        for (int l = 0; l < nl; ++l) a[l] += grow[xo * C + l] * xrow[(xo + ox) * C + l];
                }
        }
    }
}

int lk_dwconv2d_grad_weight(const float* x, const float* g, float* out, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t Ho, int64_t Wo, int kh, int kw, int dh, int dwd, int64_t pt, int64_t pl,
                            int nthreads) {
    if (nthreads < 1) nthreads = 1;
    const int64_t ncb = cdiv(C, VL), K = (int64_t)kh * kw;
    int64_t nbs = cdiv(4 * (int64_t)nthreads, ncb);
    if (nbs > N) nbs = N;
    if (nbs < 1) nbs = 1;
    const int64_t tasks = ncb * nbs;
    float* part = (float*)aligned_alloc(64, (size_t)(tasks * K * VL) * sizeof(float));
    if (!part) return 2;
    memset(part, 0, (size_t)(tasks * K * VL) * sizeof(float));
LK_OMP(omp parallel for num_threads(nthreads) schedule(dynamic, 1))
    for (int64_t task = 0; task < tasks; ++task) {
        const int64_t cb = task / nbs, bs = task % nbs, c0 = cb * VL;
        const int nl = (int)mn(VL, C - c0);
        const int64_t n0 = N * bs / nbs, n1 = N * (bs + 1) / nbs;
        float* acc = part + task * K * VL;
        if (nl < VL) {
            gw_tail(x, g, acc, n0, n1, C, H, W, Ho, Wo, kh, kw, dh, dwd, pt, pl, c0, nl);
            continue;
        }
        for (int i = 0; i < kh; ++i) {
            const int64_t oy = (int64_t)i * dh - pt, ya = mx(0, -oy), yb = mn(Ho, H - oy);
            for (int j = 0; j < kw; ++j) {
                const int64_t ox = (int64_t)j * dwd - pl, xa = mx(0, -ox), xb = mn(Wo, W - ox);
                v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                for (int64_t n = n0; n < n1; ++n)
                    for (int64_t yo = ya; yo < yb; ++yo) {
                        const float* grow = g + ((n * Ho + yo) * Wo) * C + c0;
                        const float* xrow = x + ((n * H + yo + oy) * W + ox) * C + c0;
                        int64_t xo = xa;
                        for (; xo + 4 <= xb; xo += 4) {
                            a0 += *(const v16u*)(grow + xo * C) * *(const v16u*)(xrow + xo * C);
                            a1 += *(const v16u*)(grow + (xo + 1) * C) * *(const v16u*)(xrow + (xo + 1) * C);
                            a2 += *(const v16u*)(grow + (xo + 2) * C) * *(const v16u*)(xrow + (xo + 2) * C);
                            a3 += *(const v16u*)(grow + (xo + 3) * C) * *(const v16u*)(xrow + (xo + 3) * C);
                        }
                        for (; xo < xb; ++xo) a0 += *(const v16u*)(grow + xo * C) * *(const v16u*)(xrow + xo * C);
                    }
                *(v16*)(acc + ((int64_t)i * kw + j) * VL) = (a0 + a1) + (a2 + a3);
            }
        }
    }
    for (int64_t cb = 0; cb < ncb; ++cb) {
        const int64_t c0 = cb * VL, nl = mn(VL, C - c0);
        for (int64_t k = 0; k < K; ++k)
            for (int64_t l = 0; l < nl; ++l) {
                float s = 0.0f;
                for (int64_t bs = 0; bs < nbs; ++bs) s += part[((cb * nbs + bs) * K + k) * VL + l];
                out[(c0 + l) * K + k] = s;
            }
    }
    free(part);
    return 0;
}
