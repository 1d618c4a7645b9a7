// The blocked posterior machinery of PMM and GPMM: parameters rearranged once per call, the one
// register-tiled product (three uses), the softmax of a row and a block's responsibilities
// (ALGORITHM.md §5.1, §6.2, §6.7).
#include <algorithm>
#include <cmath>
#include <limits>

#include "detail.hpp"
#include "zse/simd.hpp"
#include "zse/special.hpp"

namespace zse {
namespace mixtures_detail {

Prepared prepare(const MixtureParams& p) {
    require(p.C >= 1 && p.D >= 1, "mixture needs C >= 1 and D >= 1");
    Prepared q;
    q.C = p.C;
    q.D = p.D;
    q.C_pad = round_up(p.C, kTileCols);
    q.D_ext = round_up(p.D + 2, kTileCols);
    q.gamma = p.gamma;
    q.log_WT.assign(static_cast<std::size_t>(p.D * q.C_pad), 0.0);
    // Padding components get bias -inf: they take part in the vector loops but get weight 0.
    q.bias.assign(q.C_pad, -std::numeric_limits<double>::infinity());
    q.slope.assign(q.C_pad, 0.0);
    q.alpha.assign(q.C_pad, 0.0);
    q.V.assign(static_cast<std::size_t>(q.C_pad * q.D_ext), 0.0);
    q.V2.assign(static_cast<std::size_t>(q.C_pad * q.D_ext), 0.0);
    for (index_t c = 0; c < p.C; ++c) {
        double W_c = 0.0;
        for (index_t d = 0; d < p.D; ++d) {
            const double w = p.W[c * p.D + d];
            require(w > 0.0 && std::isfinite(w), "mixture rates W must be finite and > 0");
            q.log_WT[d * q.C_pad + c] = std::log(w);
            W_c += w;
        }
        require(std::isfinite(p.log_pi[c]), "log mixing proportions must be finite");
        double scale = 1.0;
        if (!p.gamma) {
            q.bias[c] = p.log_pi[c] - W_c;
        } else {
            const double a = p.alpha[c];
            require(a > 0.0 && std::isfinite(a), "GPMM shape alpha must be finite and > 0");
            q.alpha[c] = a;
            q.slope[c] = -std::log(p.beta + W_c);
            q.bias[c] = p.log_pi[c] + a * std::log(p.beta) - log_gamma(a);
            scale = 1.0 / (p.beta + W_c);
        }
        for (index_t d = 0; d < p.D; ++d) {
            const double v = p.W[c * p.D + d] * scale;
            q.V[c * q.D_ext + d] = v;
            q.V2[c * q.D_ext + d] = v * v;
        }
    }
    if (p.gamma) {
        q.global_alpha = q.alpha[0];
        q.class_alpha = std::any_of(q.alpha.begin(), q.alpha.begin() + p.C,
                                    [&](double a) { return a != q.global_alpha; });
    }
    return q;
}

namespace {

using simd::v4d;

// C[i][j] (+)= sum_k A(i, k) B[k][j] for i < M (a multiple of kTileRows), j < N (of kTileCols),
// in register tiles of kTileRows x kTileCols; A(i, k) is A[i * lda + k], or A[k * lda + i] when
// kTransposed. Each tile sums over k in order from zero, then is stored (or added).
template <bool kTransposed, bool kAccumulate>
__attribute__((always_inline)) inline void tile_product(const double* __restrict A, index_t lda,
                                                        const double* __restrict B, index_t ldb,
                                                        double* __restrict C, index_t ldc,
                                                        index_t M, index_t N, index_t K) {
    for (index_t i0 = 0; i0 < M; i0 += kTileRows) {
        for (index_t j0 = 0; j0 < N; j0 += kTileCols) {
            v4d acc[kTileRows][2] = {};
            for (index_t k = 0; k < K; ++k) {
                const v4d b0 = simd::load(B + k * ldb + j0);
                const v4d b1 = simd::load(B + k * ldb + j0 + 4);
                for (index_t i = 0; i < kTileRows; ++i) {
                    const v4d a =
                        simd::broadcast(kTransposed ? A[k * lda + i0 + i] : A[(i0 + i) * lda + k]);
                    acc[i][0] += a * b0;
                    acc[i][1] += a * b1;
                }
            }
            for (index_t i = 0; i < kTileRows; ++i) {
                double* c = C + (i0 + i) * ldc + j0;
                if (kAccumulate) {
                    simd::store(c, simd::load(c) + acc[i][0]);
                    simd::store(c + 4, simd::load(c + 4) + acc[i][1]);
                } else {
                    simd::store(c, acc[i][0]);
                    simd::store(c + 4, acc[i][1]);
                }
            }
        }
    }
}

// Turns one row of log-joint products into responsibilities in place and returns the log of the
// normaliser. lpj[c] += bias[c] (+ (alpha[c] + t) slope[c] for the GPMM); the padding entries
// have bias -inf and end as exactly 0. Non-finite log-joints are mapped to -inf on purpose (weight
// 0), so one bad component cannot poison the normaliser.
ZSE_HOT_CLONES double softmax_row(double* __restrict lpj, index_t C_pad,
                                  const double* __restrict bias, const double* __restrict slope,
                                  const double* __restrict alpha, double t, bool gamma) {
    using simd::v4d;
    const double minus_inf = -std::numeric_limits<double>::infinity();
    v4d running_max = simd::broadcast(minus_inf);
    for (index_t c = 0; c < C_pad; c += 4) {
        v4d v = simd::load(lpj + c) + simd::load(bias + c);
        if (gamma) v += (simd::load(alpha + c) + t) * simd::load(slope + c);
        v = (v - v == 0.0) ? v : simd::broadcast(minus_inf);  // v - v is NaN for inf and NaN
        simd::store(lpj + c, v);
        running_max = simd::max(running_max, v);
    }
    double max_lpj = minus_inf;
    for (int k = 0; k < 4; ++k) max_lpj = std::max(max_lpj, running_max[k]);
    v4d sum4 = simd::broadcast(0.0);
    for (index_t c = 0; c < C_pad; c += 4) {
        const v4d x = simd::load(lpj + c) - max_lpj;
        v4d e = simd::exp_nonpositive(simd::max(x, simd::broadcast(-708.0)));
        // Below -708 the result is subnormal or 0: rare, done exactly by the scalar fix-up.
        if (x[0] < -708.0 || x[1] < -708.0 || x[2] < -708.0 || x[3] < -708.0) {
            for (int k = 0; k < 4; ++k) {
                if (x[k] < -708.0) e[k] = x[k] < kExpUnderflow ? 0.0 : std::exp(x[k]);
            }
        }
        simd::store(lpj + c, e);
        sum4 += e;
    }
    const double sum = simd::sum(sum4);
    const v4d inv = simd::broadcast(1.0 / sum);
    for (index_t c = 0; c < C_pad; c += 4) simd::store(lpj + c, simd::load(lpj + c) * inv);
    return max_lpj + std::log(sum);
}

}  // namespace

ZSE_HOT_CLONES void log_joint_product(const double* Yb, index_t rows, index_t D, index_t D_ext,
                                      const double* log_WT, index_t C_pad, double* out) {
    tile_product<false, false>(Yb, D_ext, log_WT, C_pad, out, C_pad, rows, C_pad, D);
}

ZSE_HOT_CLONES void accumulate_statistics(const double* r, index_t rows, index_t C_pad,
                                          const double* Yb, index_t D_ext, double* S) {
    tile_product<true, true>(r, C_pad, Yb, D_ext, S, D_ext, C_pad, D_ext, rows);
}

ZSE_HOT_CLONES void weighted_components(const double* A, index_t rows, index_t C_pad,
                                        const double* V, index_t D_ext, double* X) {
    tile_product<false, false>(A, C_pad, V, D_ext, X, D_ext, rows, D_ext, C_pad);
}

// Copies patches [n_begin, n_begin + nb) into the extended block, computes their log-joints and
// turns them in place into responsibilities (rows and columns of padding hold 0). Returns the
// padded row count.
index_t block_posteriors(const double* Y, index_t n_begin, index_t nb, const Prepared& q,
                         BlockWorkspace& ws) {
    const index_t D = q.D, C = q.C, C_pad = q.C_pad, D_ext = q.D_ext;
    const index_t rows = round_up(nb, kTileRows);
    std::fill(ws.Yb.begin(), ws.Yb.begin() + rows * D_ext, 0.0);
    for (index_t i = 0; i < nb; ++i) {
        const double* y = Y + (n_begin + i) * D;
        double* yb = ws.Yb.data() + i * D_ext;
        double t = 0.0;
        for (index_t d = 0; d < D; ++d) {
            yb[d] = y[d];
            t += y[d];
        }
        yb[D] = t;
        yb[D + 1] = 1.0;
    }
    log_joint_product(ws.Yb.data(), rows, D, D_ext, q.log_WT.data(), C_pad, ws.r.data());
    for (index_t i = 0; i < nb; ++i) {
        double* lpj = ws.r.data() + i * C_pad;
        const double t = ws.total(i, q);
        if (q.class_alpha) {
            for (index_t c = 0; c < C; ++c) lpj[c] += log_gamma(q.alpha[c] + t);
        }
        ws.log_norm[i] = softmax_row(lpj, C_pad, q.bias.data(), q.slope.data(), q.alpha.data(),
                                     q.gamma ? t : 0.0, q.gamma);
    }
    std::fill(ws.r.begin() + nb * C_pad, ws.r.begin() + rows * C_pad, 0.0);
    return rows;
}

}  // namespace mixtures_detail
}  // namespace zse
