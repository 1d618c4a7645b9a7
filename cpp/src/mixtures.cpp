#include "zse/mixtures.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "zse/parallel.hpp"
#include "zse/reduction.hpp"
#include "zse/simd.hpp"
#include "zse/special.hpp"

namespace zse {
namespace {

constexpr index_t kBlock = 64;    // patches per block: a block of log-joints stays in L2
constexpr index_t kTileRows = 4;  // register tiles of the three products: 4 rows x 8 columns
constexpr index_t kTileCols = 8;
// exp(x) is exactly 0 in double for x below about -745.13; skipping those exps changes nothing.
constexpr double kExpUnderflow = -746.0;

index_t round_up(index_t x, index_t m) {
    return (x + m - 1) / m * m;
}

// Parameters rearranged once per call into the operands of the blocked products.
//
// A block of patches is copied into Yb (kBlock x D_ext) with two extra columns: the patch total t
// at column D and 1 at column D + 1. Then one product r^T Yb gives, per component, sum r y
// (columns < D), T_c = sum r t (column D) and R_c = sum r (column D + 1).
struct Prepared {
    index_t C = 0, D = 0, C_pad = 0, D_ext = 0;
    bool gamma = false, class_alpha = false;
    std::vector<double> log_WT;  // D x C_pad: B operand of the log-joint product (zero padding)
    std::vector<double> bias;    // C: log pi_c + class constants
    std::vector<double> slope;   // C: multiplies (alpha_c + t) (GPMM), 0 (PMM)
    std::vector<double> alpha;   // C
    std::vector<double> V;   // C_pad x D_ext: what the estimate averages (W or W / (beta + W_c))
    std::vector<double> V2;  // C_pad x D_ext: V squared
    double global_alpha = 0.0;
};

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

using simd::v4d;

// out[n][c] = sum_d Yb[n][d] log_WT[d][c], n < rows (multiple of 4), c < C_pad (multiple of 8).
ZSE_HOT_CLONES void log_joint_product(const double* __restrict Yb, index_t rows, index_t D,
                                      index_t D_ext, const double* __restrict log_WT, index_t C_pad,
                                      double* __restrict out) {
    for (index_t n0 = 0; n0 < rows; n0 += kTileRows) {
        for (index_t c0 = 0; c0 < C_pad; c0 += kTileCols) {
            v4d acc[kTileRows][2] = {};
            for (index_t d = 0; d < D; ++d) {
                const v4d w0 = simd::load(log_WT + d * C_pad + c0);
                const v4d w1 = simd::load(log_WT + d * C_pad + c0 + 4);
                for (index_t i = 0; i < kTileRows; ++i) {
                    const v4d y = simd::broadcast(Yb[(n0 + i) * D_ext + d]);
                    acc[i][0] += y * w0;
                    acc[i][1] += y * w1;
                }
            }
            for (index_t i = 0; i < kTileRows; ++i) {
                simd::store(out + (n0 + i) * C_pad + c0, acc[i][0]);
                simd::store(out + (n0 + i) * C_pad + c0 + 4, acc[i][1]);
            }
        }
    }
}

// S[c][e] += sum_n r[n][c] Yb[n][e] for c < C_pad, e < D_ext: statistics of a block.
ZSE_HOT_CLONES void accumulate_statistics(const double* __restrict r, index_t rows, index_t C_pad,
                                          const double* __restrict Yb, index_t D_ext,
                                          double* __restrict S) {
    for (index_t c0 = 0; c0 < C_pad; c0 += kTileRows) {
        for (index_t e0 = 0; e0 < D_ext; e0 += kTileCols) {
            v4d acc[kTileRows][2] = {};
            for (index_t n = 0; n < rows; ++n) {
                const v4d y0 = simd::load(Yb + n * D_ext + e0);
                const v4d y1 = simd::load(Yb + n * D_ext + e0 + 4);
                for (index_t i = 0; i < kTileRows; ++i) {
                    const v4d rc = simd::broadcast(r[n * C_pad + c0 + i]);
                    acc[i][0] += rc * y0;
                    acc[i][1] += rc * y1;
                }
            }
            for (index_t i = 0; i < kTileRows; ++i) {
                double* s = S + (c0 + i) * D_ext + e0;
                simd::store(s, simd::load(s) + acc[i][0]);
                simd::store(s + 4, simd::load(s + 4) + acc[i][1]);
            }
        }
    }
}

// X[n][e] = sum_c A[n][c] V[c][e] for n < rows, e < D_ext: estimates (and second moments).
ZSE_HOT_CLONES void weighted_components(const double* __restrict A, index_t rows, index_t C_pad,
                                        const double* __restrict V, index_t D_ext,
                                        double* __restrict X) {
    for (index_t n0 = 0; n0 < rows; n0 += kTileRows) {
        for (index_t e0 = 0; e0 < D_ext; e0 += kTileCols) {
            v4d acc[kTileRows][2] = {};
            for (index_t c = 0; c < C_pad; ++c) {
                const v4d v0 = simd::load(V + c * D_ext + e0);
                const v4d v1 = simd::load(V + c * D_ext + e0 + 4);
                for (index_t i = 0; i < kTileRows; ++i) {
                    const v4d a = simd::broadcast(A[(n0 + i) * C_pad + c]);
                    acc[i][0] += a * v0;
                    acc[i][1] += a * v1;
                }
            }
            for (index_t i = 0; i < kTileRows; ++i) {
                simd::store(X + (n0 + i) * D_ext + e0, acc[i][0]);
                simd::store(X + (n0 + i) * D_ext + e0 + 4, acc[i][1]);
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

struct BlockWorkspace {
    std::vector<double> Yb, r, log_norm;
    explicit BlockWorkspace(const Prepared& q)
        : Yb(static_cast<std::size_t>(kBlock * q.D_ext)),
          r(static_cast<std::size_t>(kBlock * q.C_pad)),
          log_norm(kBlock) {}
    double total(index_t i, const Prepared& q) const { return Yb[i * q.D_ext + q.D]; }
};

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

// d2[n] = min(d2[n], |y_n - center|^2) for n in [begin, end); returns the sum of the new d2.
ZSE_HOT_CLONES double update_min_distances(const double* __restrict Y, index_t begin, index_t end,
                                           index_t D, const double* __restrict center,
                                           double* __restrict d2) {
    double total = 0.0;
    for (index_t n = begin; n < end; ++n) {
        const double* y = Y + n * D;
        simd::v4d acc = simd::broadcast(0.0);
        index_t d = 0;
        for (; d + 4 <= D; d += 4) {
            const simd::v4d diff = simd::load(y + d) - simd::load(center + d);
            acc += diff * diff;
        }
        double dist = simd::sum(acc);
        for (; d < D; ++d) dist += (y[d] - center[d]) * (y[d] - center[d]);
        d2[n] = std::min(d2[n], dist);
        total += d2[n];
    }
    return total;
}

template <class Body>
void for_each_block(index_t begin, index_t end, Body&& body) {
    for (index_t n = begin; n < end; n += kBlock) body(n, std::min(kBlock, end - n));
}

}  // namespace

TotalsIndex index_totals(const double* Y, index_t N, index_t D) {
    TotalsIndex index;
    std::vector<double> totals(static_cast<std::size_t>(N));
    for (index_t n = 0; n < N; ++n) {
        double t = 0.0;
        for (index_t d = 0; d < D; ++d) t += Y[n * D + d];
        totals[n] = t;
    }
    index.values = totals;
    std::sort(index.values.begin(), index.values.end());
    index.values.erase(std::unique(index.values.begin(), index.values.end()), index.values.end());
    index.counts.assign(index.values.size(), 0.0);
    index.of_patch.resize(static_cast<std::size_t>(N));
    for (index_t n = 0; n < N; ++n) {
        const auto k = std::lower_bound(index.values.begin(), index.values.end(), totals[n]) -
                       index.values.begin();
        index.of_patch[n] = static_cast<std::int32_t>(k);
        index.counts[k] += 1.0;
    }
    return index;
}

void sum_log_factorials(const double* Y, index_t N, index_t D, double* out, int n_threads) {
    parallel_for(
        N, n_threads,
        [&](index_t n) {
            double sum = 0.0;
            for (index_t d = 0; d < D; ++d) sum += log_gamma(Y[n * D + d] + 1.0);
            out[n] = sum;
        },
        1024);
}

FixedChunks mixture_chunks(index_t N) {
    return fixed_chunks(N, 4096);
}

void MixtureStats::add(const MixtureStats& o) {
    auto add_vec = [](std::vector<double>& a, const std::vector<double>& b) {
        for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) a[i] += b[i];
    };
    add_vec(R, o.R);
    add_vec(S, o.S);
    add_vec(T, o.T);
    add_vec(hist, o.hist);
    log_likelihood += o.log_likelihood;
}

std::vector<MixtureStats> mixture_estep_partials(const double* Y, index_t N,
                                                 const MixtureParams& params,
                                                 const double* log_factorials,
                                                 const TotalsIndex* totals, bool want_hist,
                                                 ChunkShare share, int n_threads) {
    const Prepared q = prepare(params);
    const index_t C = q.C, D = q.D, D_ext = q.D_ext;
    const index_t K =
        (want_hist && totals != nullptr) ? static_cast<index_t>(totals->values.size()) : 0;
    const FixedChunks chunks = mixture_chunks(N);
    require(share.first >= 0 && share.first <= share.last && share.last <= chunks.count,
            "the chunk share lies outside the patches' chunks");
    return chunk_partials<MixtureStats>(share, n_threads, [&](index_t k, MixtureStats& st) {
        std::vector<double> S_ext(static_cast<std::size_t>(q.C_pad * D_ext), 0.0);
        if (K > 0) st.hist.assign(static_cast<std::size_t>(C * K), 0.0);
        BlockWorkspace ws(q);
        for_each_block(chunks.begin(k), chunks.end(k), [&](index_t n0, index_t nb) {
            const index_t rows = block_posteriors(Y, n0, nb, q, ws);
            accumulate_statistics(ws.r.data(), rows, q.C_pad, ws.Yb.data(), D_ext, S_ext.data());
            for (index_t i = 0; i < nb; ++i) {
                double constant = -log_factorials[n0 + i];
                if (q.gamma && !q.class_alpha)
                    constant += log_gamma(q.global_alpha + ws.total(i, q));
                st.log_likelihood += ws.log_norm[i] + constant;
            }
            if (K > 0) {
                for (index_t i = 0; i < nb; ++i) {
                    const double* r = ws.r.data() + i * q.C_pad;
                    const std::int32_t bin = totals->of_patch[n0 + i];
                    for (index_t c = 0; c < C; ++c) st.hist[c * K + bin] += r[c];
                }
            }
        });
        // The extended columns hold sum r y, T_c and R_c (see Prepared); copying them apart
        // changes no value, so chunk sums of the parts equal the parts of chunk sums.
        st.R.resize(C);
        st.T.resize(C);
        st.S.resize(static_cast<std::size_t>(C * D));
        for (index_t c = 0; c < C; ++c) {
            std::copy(S_ext.begin() + c * D_ext, S_ext.begin() + c * D_ext + D,
                      st.S.begin() + c * D);
            st.T[c] = S_ext[c * D_ext + D];
            st.R[c] = S_ext[c * D_ext + D + 1];
        }
    });
}

MixtureStats mixture_estep(const double* Y, index_t N, const MixtureParams& params,
                           const double* log_factorials, const TotalsIndex* totals, bool want_hist,
                           int n_threads) {
    std::vector<MixtureStats> partials =
        mixture_estep_partials(Y, N, params, log_factorials, totals, want_hist,
                               ChunkShare{0, mixture_chunks(N).count}, n_threads);
    return sum_in_chunk_order(partials, [](MixtureStats& a, const MixtureStats& b) { a.add(b); });
}

// Both loops below walk the same fixed chunks as the E-step, so each chunk allocates its block
// workspace once instead of once per block of kBlock patches.
void mixture_estimate(const double* Y, index_t N, const MixtureParams& params, double* estimates,
                      double* variance, int n_threads) {
    const Prepared q = prepare(params);
    const index_t C = q.C, D = q.D, D_ext = q.D_ext, C_pad = q.C_pad;
    const FixedChunks chunks = mixture_chunks(N);
    parallel_for(chunks.count, n_threads, [&](index_t k) {
        BlockWorkspace ws(q);
        std::vector<double> first(static_cast<std::size_t>(kBlock * D_ext)), second, rb;
        if (variance != nullptr) {
            second.resize(first.size());
            // Padding columns stay 0; padded rows of a last partial block only feed outputs that
            // are discarded.
            rb.assign(static_cast<std::size_t>(kBlock * C_pad), 0.0);
        }
        for_each_block(chunks.begin(k), chunks.end(k), [&](index_t n0, index_t nb) {
            const index_t rows = block_posteriors(Y, n0, nb, q, ws);
            // r_c a_c with a_c = E[z | c, y] (GPMM) or 1 (PMM), and r_c E[z^2 | c, y].
            for (index_t i = 0; i < nb; ++i) {
                double* r = ws.r.data() + i * C_pad;
                const double t = ws.total(i, q);
                for (index_t c = 0; c < C; ++c) {
                    const double a = q.gamma ? q.alpha[c] + t : 1.0;
                    if (variance != nullptr)
                        rb[i * C_pad + c] = r[c] * (q.gamma ? a * (a + 1.0) : 1.0);
                    r[c] *= a;
                }
            }
            weighted_components(ws.r.data(), rows, C_pad, q.V.data(), D_ext, first.data());
            if (variance != nullptr) {
                weighted_components(rb.data(), rows, C_pad, q.V2.data(), D_ext, second.data());
            }
            for (index_t i = 0; i < nb; ++i) {
                const double* x = first.data() + i * D_ext;
                std::copy(x, x + D, estimates + (n0 + i) * D);
                if (variance != nullptr) {
                    const double* x2 = second.data() + i * D_ext;
                    // Rounding can make E[x^2] - E[x]^2 a few ulps negative; a variance is >= 0.
                    for (index_t d = 0; d < D; ++d)
                        variance[(n0 + i) * D + d] = std::max(0.0, x2[d] - x[d] * x[d]);
                }
            }
        });
    });
}

void mixture_responsibilities(const double* Y, index_t N, const MixtureParams& params, double* r,
                              int n_threads) {
    const Prepared q = prepare(params);
    const FixedChunks chunks = mixture_chunks(N);
    parallel_for(chunks.count, n_threads, [&](index_t k) {
        BlockWorkspace ws(q);
        for_each_block(chunks.begin(k), chunks.end(k), [&](index_t n0, index_t nb) {
            block_posteriors(Y, n0, nb, q, ws);
            for (index_t i = 0; i < nb; ++i)
                std::copy(ws.r.data() + i * q.C_pad, ws.r.data() + i * q.C_pad + q.C,
                          r + (n0 + i) * q.C);
        });
    });
}

std::vector<index_t> kmeans_plusplus(const double* Y, index_t N, index_t D, index_t C,
                                     std::uint64_t seed, int n_threads, index_t max_candidates) {
    require(C >= 1 && C <= N, "k-means++ needs 1 <= C <= N (C=" + std::to_string(C) +
                                  ", N=" + std::to_string(N) + ")");
    std::mt19937_64 rng(seed);
    auto uniform = [&rng]() { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
    if (max_candidates > 0 && N > max_candidates && max_candidates >= C) {
        // Each seeding step streams every candidate, so seeding from all N patches costs C full
        // passes over the data (more than several EM epochs). Seed from a random subset instead;
        // the seeds are still patches of the image.
        std::vector<index_t> pool(static_cast<std::size_t>(N));
        for (index_t n = 0; n < N; ++n) pool[n] = n;
        for (index_t k = 0; k < max_candidates; ++k) {  // partial Fisher-Yates shuffle
            const index_t j = k + static_cast<index_t>(uniform() * static_cast<double>(N - k));
            std::swap(pool[k], pool[std::min(j, N - 1)]);
        }
        pool.resize(static_cast<std::size_t>(max_candidates));
        std::sort(pool.begin(), pool.end());
        std::vector<double> subset(static_cast<std::size_t>(max_candidates * D));
        for (index_t k = 0; k < max_candidates; ++k)
            std::copy(Y + pool[k] * D, Y + (pool[k] + 1) * D, subset.begin() + k * D);
        std::vector<index_t> chosen =
            kmeans_plusplus(subset.data(), max_candidates, D, C, rng(), n_threads, 0);
        for (index_t& index : chosen) index = pool[index];
        return chosen;
    }
    std::vector<index_t> chosen;
    chosen.reserve(C);
    chosen.push_back(static_cast<index_t>(uniform() * static_cast<double>(N)));
    std::vector<double> d2(static_cast<std::size_t>(N), std::numeric_limits<double>::infinity());
    const FixedChunks chunks = mixture_chunks(N);
    const index_t n_chunks = chunks.count;
    std::vector<double> chunk_sum(static_cast<std::size_t>(n_chunks));
    while (true) {
        const double* center = Y + chosen.back() * D;
        parallel_for(n_chunks, n_threads, [&](index_t k) {
            chunk_sum[k] =
                update_min_distances(Y, chunks.begin(k), chunks.end(k), D, center, d2.data());
        });
        if (static_cast<index_t>(chosen.size()) == C) break;
        double total = 0.0;
        for (double s : chunk_sum) total += s;
        require(total > 0.0, "the patches hold fewer than C=" + std::to_string(C) +
                                 " distinct patches; use fewer components");
        double u = uniform() * total;
        index_t k = 0;
        while (k + 1 < n_chunks && u >= chunk_sum[k]) u -= chunk_sum[k++];
        index_t pick = -1;
        for (index_t n = chunks.begin(k); n < chunks.end(k); ++n) {
            if (d2[n] > 0.0) pick = n;  // last positive-weight patch guards against rounding
            if (u < d2[n]) break;
            u -= d2[n];
        }
        require(pick >= 0, "k-means++ found no patch with positive distance");
        chosen.push_back(pick);
    }
    return chosen;
}

double solve_alpha(const std::vector<double>& values, const double* weights,
                   const std::vector<double>& R, const std::vector<double>& T, index_t c_begin,
                   index_t c_end, double alpha_min, double alpha_max, bool& capped) {
    auto g = [&](double alpha) {
        const double psi_alpha = digamma(alpha);
        double sum = 0.0;
        for (std::size_t k = 0; k < values.size(); ++k) {
            if (weights[k] != 0.0 && values[k] != 0.0) {
                sum += weights[k] * (digamma(alpha + values[k]) - psi_alpha);
            }
        }
        for (index_t c = c_begin; c < c_end; ++c) {
            if (R[c] > 0.0) sum += R[c] * std::log(alpha / (alpha + T[c] / R[c]));
        }
        return sum;
    };
    capped = false;
    double a = alpha_min, b = alpha_max;
    double fa = g(a), fb = g(b);
    if (fb > 0.0) {  // no sign change: the totals are not over-dispersed; alpha -> infinity
        capped = true;
        return alpha_max;
    }
    if (fa <= 0.0) return alpha_min;
    // Brent's method: inverse quadratic interpolation, falling back to bisection.
    double c = a, fc = fa, d = b - a, e = d;
    for (int iter = 0; iter < 200; ++iter) {
        if ((fb > 0.0) == (fc > 0.0)) {
            c = a;
            fc = fa;
            d = e = b - a;
        }
        if (std::fabs(fc) < std::fabs(fb)) {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        const double tol = 2.0 * 1e-15 * std::fabs(b) + 1e-12 * std::fabs(b);
        const double m = 0.5 * (c - b);
        if (std::fabs(m) <= tol || fb == 0.0) return b;
        if (std::fabs(e) >= tol && std::fabs(fa) > std::fabs(fb)) {
            double p, qq, r;
            const double s = fb / fa;
            if (a == c) {
                p = 2.0 * m * s;
                qq = 1.0 - s;
            } else {
                qq = fa / fc;
                r = fb / fc;
                p = s * (2.0 * m * qq * (qq - r) - (b - a) * (r - 1.0));
                qq = (qq - 1.0) * (r - 1.0) * (s - 1.0);
            }
            if (p > 0.0)
                qq = -qq;
            else
                p = -p;
            if (2.0 * p < std::min(3.0 * m * qq - std::fabs(tol * qq), std::fabs(e * qq))) {
                e = d;
                d = p / qq;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        a = b;
        fa = fb;
        b += std::fabs(d) > tol ? d : (m > 0 ? tol : -tol);
        fb = g(b);
    }
    return b;
}

void mixture_estimate_volume(const double* volume, const VolumeGrid& grid,
                             const MixtureParams& params, const PatchTransform& to_model,
                             const EstimateTransform& to_data, const StreamOutputs& out,
                             int n_threads) {
    require(grid.D() == params.D, "the patch size does not match the model's D");
    // A row of patches is one block for the register-tiled kernels; bands run in parallel, so
    // each row is estimated on the calling thread.
    const RowEstimator estimator = [&](const RowJob& job) {
        mixture_estimate(job.patches, job.count, params, job.estimates, job.variances, 1);
    };
    estimate_and_merge(volume, grid, to_model, estimator, to_data, out, n_threads);
}

}  // namespace zse
