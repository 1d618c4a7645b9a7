// The mixtures' estimates: posterior means and variances of patches, responsibilities, and the
// streamed estimate of a volume (ALGORITHM.md §5.4, §6.3, §6.4, §2.6).
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "detail.hpp"
#include "zse/parallel.hpp"
#include "zse/reduction.hpp"
#include "zse/tiles.hpp"

namespace zse {

using namespace mixtures_detail;

constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();

namespace {

struct GroupScratch {
    std::vector<index_t> members;
    std::vector<double> Y, G, first, second;
    MatchScratch match;
    std::unique_ptr<BlockWorkspace> ws;
};

// Patch n's estimate (and variance) from its group (ALGORITHM.md §5.6), mixed into `estimate`
// and `variance`, which hold its own on entry.
void group_estimate(const Prepared& q, const MixtureParams& params, const double* volume,
                    const VolumeGrid& grid, const PatchTransform& to_model,
                    const MixtureGroups& groups, index_t n, const double* y, GroupScratch& g,
                    double* estimate, double* variance) {
    const index_t C = q.C, D = q.D, C_pad = q.C_pad, D_ext = q.D_ext, K = groups.size;
    g.members.resize(static_cast<std::size_t>(K));
    g.Y.resize(static_cast<std::size_t>(K * D));
    if (!g.ws) g.ws = std::make_unique<BlockWorkspace>(q);
    const index_t found =
        match_patch(groups.guide, grid, n, groups.window, K, g.match, g.members.data());
    if (found < 2) return;
    std::copy(y, y + D, g.Y.begin());
    for (index_t i = 1; i < found; ++i)
        read_patch(volume, grid, g.members[i], to_model, g.Y.data() + i * D);
    BlockWorkspace& ws = *g.ws;
    block_posteriors(g.Y.data(), 0, found, q, ws);
    // G_c = sum_i log(pi_c p(y_i | c)) - (K - 1) log pi_c, from each member's responsibilities
    // and log-normaliser (the members' constants cancel against the unrelated hypothesis).
    g.G.assign(static_cast<std::size_t>(C), 0.0);
    double unrelated = 0.0;
    for (index_t i = 0; i < found; ++i) {
        const double* r = ws.r.data() + i * C_pad;
        unrelated += ws.log_norm[i];
        for (index_t c = 0; c < C; ++c)
            g.G[c] += r[c] > 0.0 ? std::log(r[c]) + ws.log_norm[i] : kMinusInfinity;
    }
    double top = kMinusInfinity;
    for (index_t c = 0; c < C; ++c) {
        g.G[c] -= static_cast<double>(found - 1) * params.log_pi[c];
        top = std::max(top, g.G[c]);
    }
    if (top == kMinusInfinity) return;
    double sum = 0.0;
    for (index_t c = 0; c < C; ++c) sum += std::exp(g.G[c] - top);
    const double shared = top + std::log(sum);
    // The posterior probability that the group shares its component (prior odds 1:1).
    const double rho = 1.0 / (1.0 + std::exp(unrelated - shared));
    const double t = ws.total(0, q);
    // The shared hypothesis's first and second moments: sum_c r_c a_c V_c and
    // sum_c r_c a_c (a_c + 1) V2_c (PMM: a_c = 1 and no (a_c + 1)), as mixture_estimate forms them.
    g.first.assign(static_cast<std::size_t>(D), 0.0);
    g.second.assign(static_cast<std::size_t>(D), 0.0);
    for (index_t c = 0; c < C; ++c) {
        const double r = std::exp(g.G[c] - shared);
        if (r == 0.0) continue;
        const double a = q.gamma ? q.alpha[c] + t : 1.0;
        const double w1 = r * a, w2 = r * (q.gamma ? a * (a + 1.0) : 1.0);
        const double* v = q.V.data() + c * D_ext;
        const double* v2 = q.V2.data() + c * D_ext;
        for (index_t d = 0; d < D; ++d) {
            g.first[d] += w1 * v[d];
            g.second[d] += w2 * v2[d];
        }
    }
    for (index_t d = 0; d < D; ++d) {
        const double mean = rho * g.first[d] + (1.0 - rho) * estimate[d];
        if (variance != nullptr) {
            const double own_second = variance[d] + estimate[d] * estimate[d];
            variance[d] = std::max(0.0, rho * g.second[d] + (1.0 - rho) * own_second - mean * mean);
        }
        estimate[d] = mean;
    }
}

}  // namespace

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
                             int n_threads, const MixtureGroups& groups) {
    require(grid.D() == params.D, "the patch size does not match the model's D");
    const index_t K = groups.size;
    require(K >= 1 && K <= kBlock, "the group size must be in [1, 64]");
    if (K > 1) {
        require(groups.guide != nullptr, "a nonlocal estimate needs a guide image");
        // Members are read anywhere in their window: the whole input must be at hand.
        require(out.input_first_slice == 0 && out.input_slices < 0,
                "a nonlocal estimate needs the whole image, not a slab of it");
    }
    const Prepared q = prepare(params);
    // A row of patches is one block for the register-tiled kernels; bands run in parallel, so
    // each row is estimated on the calling thread.
    const RowEstimator estimator = [&](const RowJob& job) {
        mixture_estimate(job.patches, job.count, params, job.estimates, job.variances, 1);
        if (K == 1) return;
        thread_local GroupScratch scratch;
        for (index_t t = 0; t < job.count; ++t) {
            const index_t n = job.first + t;
            const double* y = job.patches + t * q.D;
            group_estimate(q, params, volume, grid, to_model, groups, n, y, scratch,
                           job.estimates + t * q.D,
                           job.variances != nullptr ? job.variances + t * q.D : nullptr);
        }
    };
    estimate_and_merge(volume, grid, to_model, estimator, to_data, out, n_threads);
}

}  // namespace zse
