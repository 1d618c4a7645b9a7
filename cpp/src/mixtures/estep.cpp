// The mixtures' E-step: patch totals, log-factorials and the sufficient statistics summed per
// fixed chunk (ALGORITHM.md §5.2, §6.5, §7.2).
#include <algorithm>
#include <vector>

#include "detail.hpp"
#include "zse/parallel.hpp"
#include "zse/reduction.hpp"
#include "zse/special.hpp"

namespace zse {

using namespace mixtures_detail;

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

}  // namespace zse
