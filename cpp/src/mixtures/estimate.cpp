// The mixtures' estimates: posterior means and variances of patches, responsibilities, and the
// streamed estimate of a volume (ALGORITHM.md §5.4, §6.3, §6.4, §2.6).
#include <algorithm>
#include <vector>

#include "detail.hpp"
#include "zse/parallel.hpp"
#include "zse/reduction.hpp"

namespace zse {

using namespace mixtures_detail;

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
