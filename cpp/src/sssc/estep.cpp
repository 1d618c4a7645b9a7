// The SSSC E-step: per patch, the evolutionary search of its state set and the truncated
// posterior with its statistics and estimates (ALGORITHM.md §3.4-§3.8, §4.2-§4.6); over patches,
// the fixed-chunk reduction (§7.2).
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>

#include "detail.hpp"
#include "zse/parallel.hpp"
#include "zse/reduction.hpp"
#include "zse/simd.hpp"

namespace zse {
namespace sssc_detail {

// M (R x C) += A^T B for A (rows x R) and B (rows x C), row-major: a vectorised clone.
ZSE_HOT_CLONES void add_transposed_product(double* __restrict M, const double* __restrict A,
                                           const double* __restrict B, index_t rows, index_t R,
                                           index_t C) {
    for (index_t r = 0; r < rows; ++r) {
        const double* a = A + r * R;
        const double* b = B + r * C;
        for (index_t i = 0; i < R; ++i) {
            const double ai = a[i];
            if (ai == 0.0) continue;  // exact: <s> and <sz> are zero off a patch's support
            double* m = M + i * C;
            for (index_t j = 0; j < C; ++j) m[j] += ai * b[j];
        }
    }
}

// y^T W (W: D x H row-major): a vectorised clone.
ZSE_HOT_CLONES void project(const double* __restrict W, const double* __restrict y, index_t D,
                            index_t H, double* __restrict out) {
    for (index_t h = 0; h < H; ++h) out[h] = 0.0;
    for (index_t d = 0; d < D; ++d) {
        const double yd = y[d];
        const double* w = W + d * H;
        for (index_t h = 0; h < H; ++h) out[h] += w[h] * yd;
    }
}

void project_patch(const double* W, const double* y, index_t D, index_t H, double* out) {
    project(W, y, D, H, out);
}

void flush_block(Workspace& ws, SSSCStats& acc, index_t H, index_t D) {
    const index_t rows = ws.block_rows;
    if (rows == 0) return;
    add_transposed_product(acc.B_mm.data(), ws.block_esz.data(), ws.block_esz.data(), rows, H, H);
    add_transposed_product(acc.B_s_sz.data(), ws.block_es.data(), ws.block_esz.data(), rows, H, H);
    // Y_sz transposed, so that the rows of units off a patch's support are skipped.
    add_transposed_product(ws.chunk_Ysz_T.data(), ws.block_esz.data(), ws.block_y.data(), rows, H,
                           D);
    ws.block_rows = 0;
}

void finish_chunk(Workspace& ws, SSSCStats& acc, index_t H, index_t D) {
    flush_block(ws, acc, H, D);
    for (index_t d = 0; d < D; ++d)
        for (index_t h = 0; h < H; ++h) acc.Y_sz[d * H + h] += ws.chunk_Ysz_T[h * D + d];
}

void EStepRunner::run_patch(const PatchJob& job, StateCache& cache, Workspace& ws,
                            SSSCStats& acc) const {
    const index_t H = p_.H, D = p_.D;
    PatchData& pd = ws.pd;
    pd.y = job.y;
    pd.Wy.resize(H);
    project(p_.W, pd.y, D, H, pd.Wy.data());
    pd.yy = 0.0;
    for (index_t d = 0; d < D; ++d) pd.yy += pd.y[d] * pd.y[d];
    std::uint64_t* Kn = job.Kn;
    cache.start_patch();
    ws.expanded.clear();
    ws.cand.assign(Kn, Kn + S_ * words_);
    ws.cand_lpj.resize(S_);
    ws.cand_terms.resize(S_);
    for (index_t s = 0; s < S_; ++s) {
        const index_t r = cache.meet(Kn + s * words_, StateCache::kNoParent, nullptr);
        ws.cand_terms[s] = r;
        ws.cand_lpj[s] = evaluate(cache, ws, r, acc);
    }
    if (opt_.evolve) {
        evolve(job, cache, ws, acc);
        std::copy(ws.cand.begin(), ws.cand.end(), Kn);
    }
    if (job.lpj != nullptr) std::copy(ws.cand_lpj.begin(), ws.cand_lpj.end(), job.lpj);
    if (job.keep_terms) cache.keep_terms(ws.cand_terms.data(), S_);

    // Truncated posterior over K_n (max-shifted), free energy contribution.
    double max_lpj = kMinusInf;
    for (double l : ws.cand_lpj) max_lpj = std::max(max_lpj, l);
    for (double l : ws.cand_lpj) acc.n_invalid += (l == kMinusInf) ? 1 : 0;
    double norm = 0.0;
    for (double l : ws.cand_lpj) norm += (l == kMinusInf) ? 0.0 : std::exp(l - max_lpj);
    acc.log_joint_sum += max_lpj + std::log(norm) + dv_.log_c;
    if (!opt_.want_stats && job.estimates == nullptr) return;

    if (static_cast<index_t>(ws.es.size()) != H) {
        ws.es.assign(H, 0.0);
        ws.esz.assign(H, 0.0);
        ws.in_support.assign(H, 0);
    }
    ws.support.clear();
    const bool want_var = job.variance != nullptr;
    if (want_var) ws.second.assign(D, 0.0);
    for (index_t s = 0; s < S_; ++s) {
        const double l = ws.cand_lpj[s];
        if (l == kMinusInf) continue;
        const double q = std::exp(l - max_lpj) / norm;
        if (q == 0.0) continue;
        const std::int32_t entry = cache.id(ws.cand_terms[s]);
        cache.ensure(entry);
        const index_t k = cache.terms(entry).k;
        if (k == 0) continue;  // the zero state adds nothing to the moments
        const double* diag = want_var ? cache.diag(entry) : nullptr;
        const StateTerms& t = cache.terms(entry);
        const double* data = cache.data(entry);
        const double* active = data;
        const double* mu = data + k;
        const double* Lambda = lambda_of(t, data);
        // kappa = mu_A + Lambda b / sigma2, with the Lambda b the state's evaluation kept, else
        // from log_pseudo_joint (which leaves it in v).
        const double* lambda_b = cache.lambda_b(ws.cand_terms[s]);
        if (lambda_b == nullptr) {
            log_pseudo_joint(dv_, t, data, pd, ws.v);
            lambda_b = ws.v.data();
        }
        ws.kappa.resize(k);
        for (index_t i = 0; i < k; ++i) ws.kappa[i] = mu[i] + lambda_b[i] * dv_.inv_s2;
        for (index_t i = 0; i < k; ++i) {
            const index_t hi = static_cast<index_t>(active[i]);
            if (!ws.in_support[hi]) {
                ws.in_support[hi] = 1;
                ws.support.push_back(hi);
            }
            ws.es[hi] += q;
            ws.esz[hi] += q * ws.kappa[i];
            if (opt_.want_stats) {
                double* bss = acc.B_ss.data() + hi * H;
                double* bzz = acc.B_szsz.data() + hi * H;
                for (index_t j = 0; j < k; ++j) {
                    const index_t hj = static_cast<index_t>(active[j]);
                    bss[hj] += q;
                    bzz[hj] += q * (Lambda[i * k + j] + ws.kappa[i] * ws.kappa[j]);
                }
            }
        }
        if (want_var) {
            // diag(W_A Lambda W_A^T) is stored for cached states; for the shared table's states
            // (k <= 2) it is formed here by the same row_spread.
            add_second_moments(p_, active, Lambda, ws.kappa.data(), k, diag, q, ws.second.data());
        }
    }
    std::sort(ws.support.begin(), ws.support.end());  // fixed summation order
    if (opt_.want_stats) {
        for (index_t hi : ws.support) {
            acc.a_s[hi] += ws.es[hi];
            acc.a_sz[hi] += ws.esz[hi];
        }
        // <s>, <sz> and y of this patch join a block; the outer-product statistics of a block
        // are dense matrix products (flush_block), which vectorise.
        const index_t row = ws.block_rows++;
        std::copy(ws.es.begin(), ws.es.end(), ws.block_es.begin() + row * H);
        std::copy(ws.esz.begin(), ws.esz.end(), ws.block_esz.begin() + row * H);
        std::copy(pd.y, pd.y + D, ws.block_y.begin() + row * D);
        if (ws.block_rows == kStatsBlock) flush_block(ws, acc, H, D);
        acc.T_yy += pd.yy;
    }
    if (job.estimates != nullptr) {
        double* x = job.estimates;
        for (index_t d = 0; d < D; ++d) {
            const double* w = p_.fields_out() + d * H;
            double sum = 0.0;
            for (index_t hi : ws.support) sum += w[hi] * ws.esz[hi];
            x[d] = sum;
        }
        if (want_var) {
            double* var = job.variance;
            // Rounding can make E[x^2] - E[x]^2 a few ulps negative; a variance is >= 0.
            for (index_t d = 0; d < D; ++d) var[d] = std::max(0.0, ws.second[d] - x[d] * x[d]);
        }
    }
    for (index_t hi : ws.support) {
        ws.in_support[hi] = 0;
        ws.es[hi] = 0.0;
        ws.esz[hi] = 0.0;
    }
}

}  // namespace sssc_detail

using namespace sssc_detail;

void SSSCStats::reset(index_t H_, index_t D_) {
    H = H_;
    D = D_;
    a_s.assign(H, 0.0);
    a_sz.assign(H, 0.0);
    B_ss.assign(static_cast<std::size_t>(H * H), 0.0);
    B_szsz.assign(B_ss.size(), 0.0);
    B_mm.assign(B_ss.size(), 0.0);
    B_s_sz.assign(B_ss.size(), 0.0);
    Y_sz.assign(static_cast<std::size_t>(D * H), 0.0);
    T_yy = log_joint_sum = 0.0;
    n_invalid = n_new_states = n_replaced = n_lpj = 0;
}

void SSSCStats::add(const SSSCStats& o) {
    auto add_vec = [](std::vector<double>& a, const std::vector<double>& b) {
        for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) a[i] += b[i];
    };
    add_vec(a_s, o.a_s);
    add_vec(a_sz, o.a_sz);
    add_vec(B_ss, o.B_ss);
    add_vec(B_szsz, o.B_szsz);
    add_vec(B_mm, o.B_mm);
    add_vec(B_s_sz, o.B_s_sz);
    add_vec(Y_sz, o.Y_sz);
    T_yy += o.T_yy;
    log_joint_sum += o.log_joint_sum;
    n_invalid += o.n_invalid;
    n_new_states += o.n_new_states;
    n_replaced += o.n_replaced;
    n_lpj += o.n_lpj;
}

FixedChunks sssc_chunks(index_t N) {
    return fixed_chunks(N, 2048);
}

std::vector<SSSCStats> sssc_estep_partials(const double* Y, index_t N, const SSSCParams& params,
                                           std::uint64_t* K, index_t S, const EStepOptions& options,
                                           ChunkShare share, int n_threads) {
    require(S >= 1, "S must be >= 1");
    const EStepRunner runner(params, S, options);
    const FixedChunks chunks = sssc_chunks(N);
    require(share.first >= 0 && share.first <= share.last && share.last <= chunks.count,
            "the chunk share lies outside the patches' chunks");
    const index_t words = state_words(params.H);
    // One cache and workspace per thread (never shared, so no locks), created in the region.
    // Few states recur across patches, so a small cache that stays in L2 is faster than a large
    // one (measured with bench_estep: 2^12 entries beat 2^15 and 2^18).
    std::vector<std::unique_ptr<StateCache>> caches(
        static_cast<std::size_t>(std::max(1, n_threads)));
    std::vector<std::unique_ptr<Workspace>> workspaces(caches.size());
    return chunk_partials<SSSCStats>(share, n_threads, [&](index_t c, SSSCStats& st) {
#ifdef _OPENMP
        const std::size_t tid = static_cast<std::size_t>(omp_get_thread_num());
#else
        const std::size_t tid = 0;
#endif
        if (!caches[tid]) {
            caches[tid] =
                std::make_unique<StateCache>(runner.derived(), words, std::size_t{1} << 12);
            workspaces[tid] = std::make_unique<Workspace>();
        }
        Workspace& ws = *workspaces[tid];
        if (options.want_stats) {
            st.reset(params.H, params.D);
            ws.block_es.resize(static_cast<std::size_t>(kStatsBlock * params.H));
            ws.block_esz.resize(ws.block_es.size());
            ws.block_y.resize(static_cast<std::size_t>(kStatsBlock * params.D));
            ws.chunk_Ysz_T.assign(static_cast<std::size_t>(params.H * params.D), 0.0);
            ws.block_rows = 0;
        } else {
            st.reset(0, 0);
        }
        const index_t D = params.D;
        for (index_t n = chunks.begin(c); n < chunks.end(c); ++n) {
            PatchJob job;
            job.stream = static_cast<std::uint64_t>(n);
            job.y = Y + n * D;
            job.Kn = K + n * S * words;
            job.n_sweeps = options.n_sweeps;
            job.estimates = options.estimates != nullptr ? options.estimates + n * D : nullptr;
            job.variance = options.variance != nullptr ? options.variance + n * D : nullptr;
            job.lpj = options.lpj_out != nullptr ? options.lpj_out + n * S : nullptr;
            runner.run_patch(job, *caches[tid], ws, st);
        }
        if (options.want_stats) finish_chunk(ws, st, params.H, params.D);
    });
}

SSSCStats sssc_estep(const double* Y, index_t N, const SSSCParams& params, std::uint64_t* K,
                     index_t S, const EStepOptions& options, int n_threads) {
    const FixedChunks chunks = sssc_chunks(N);
    std::vector<SSSCStats> partials =
        sssc_estep_partials(Y, N, params, K, S, options, ChunkShare{0, chunks.count}, n_threads);
    SSSCStats total =
        sum_in_chunk_order(partials, [](SSSCStats& a, const SSSCStats& b) { a.add(b); });
    total.H = params.H;
    total.D = params.D;
    return total;
}

void sssc_log_joint(const double* Y, index_t N, const SSSCParams& params,
                    const std::uint64_t* states, index_t M, double* out, int n_threads) {
    const Derived dv = derive(params, false);
    const index_t words = state_words(params.H);
    StateCache cache(dv, words, std::size_t{1} << 30);
    std::vector<std::int32_t> entries(static_cast<std::size_t>(M));
    for (index_t m = 0; m < M; ++m) entries[m] = cache.get(states + m * words);
    parallel_for(N, n_threads, [&](index_t n) {
        PatchData pd;
        pd.y = Y + n * params.D;
        pd.Wy.resize(params.H);
        project(params.W, pd.y, params.D, params.H, pd.Wy.data());
        pd.yy = 0.0;
        for (index_t d = 0; d < params.D; ++d) pd.yy += pd.y[d] * pd.y[d];
        std::vector<double> v;
        for (index_t m = 0; m < M; ++m) {
            out[n * M + m] =
                log_pseudo_joint(dv, cache.terms(entries[m]), cache.data(entries[m]), pd, v) +
                dv.log_c;
        }
    });
}

}  // namespace zse
