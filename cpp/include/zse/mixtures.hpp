// Poisson mixture (PMM) and Gamma-Poisson mixture (GPMM) kernels: exact posteriors over all C
// components, sufficient statistics, estimates, k-means++ seeding (ALGORITHM.md §5-§6).
#pragma once

#include <cstdint>
#include <vector>

#include "zse/block_match.hpp"
#include "zse/common.hpp"
#include "zse/reduction.hpp"
#include "zse/tiles.hpp"
#include "zse/volume.hpp"

namespace zse {

/// Parameters of either mixture, in the form the E-step needs. For component c and patch y with
/// total t = sum_d y_d, the log-pseudo-joint is
///     lpj(c, y) = sum_d y_d log_W[c, d] + log_pi[c] + coupling(c, t)
/// with coupling = -sum_d W[c, d]                                    (PMM), or
///      coupling = -(alpha_c + t) log(beta + W_c) + alpha_c log beta
///                 - log Gamma(alpha_c) + log Gamma(alpha_c + t)      (GPMM, W_c = sum_d W[c, d]).
/// The estimate of the noise-free patch is sum_c r_c a_c V[c, :] with a_c = 1, V = W (PMM) or
/// a_c = alpha_c + t, V = W / (beta + W_c) (GPMM, the posterior mean of z W_c).
struct MixtureParams {
    index_t C = 0, D = 0;
    bool gamma = false;              ///< GPMM when true
    const double* W = nullptr;       ///< C x D rates (> 0)
    const double* log_pi = nullptr;  ///< C
    const double* alpha = nullptr;   ///< C shapes (GPMM; equal entries for a global alpha)
    double beta = 1.0;               ///< GPMM rate of z
};

/// Per-component statistics of one E-step plus the log-likelihood.
struct MixtureStats {
    std::vector<double> R;        ///< C: sum_n r_nc
    std::vector<double> S;        ///< C x D: sum_n r_nc y_nd
    std::vector<double> T;        ///< C: sum_n r_nc t_n
    std::vector<double> hist;     ///< C x K: sum of r_nc over patches whose total is value k
    double log_likelihood = 0.0;  ///< sum_n log p(y_n) including every constant
    void add(const MixtureStats& other);
};

/// Distinct patch totals and, per patch, the index of its total (for the alpha equations).
struct TotalsIndex {
    std::vector<double> values;          ///< K distinct totals, ascending
    std::vector<double> counts;          ///< K: number of patches with that total
    std::vector<std::int32_t> of_patch;  ///< N: index into values
};

TotalsIndex index_totals(const double* Y, index_t N, index_t D);

/// sum_d log Gamma(y_nd + 1) per patch: the data constant of the Poisson log-likelihood.
void sum_log_factorials(const double* Y, index_t N, index_t D, double* out, int n_threads);

/// One E-step over all N patches (N x D, row-major): exact posteriors, statistics, and the
/// log-likelihood. `log_factorials` holds sum_d log Gamma(y_nd + 1) per patch (data constant).
/// With `totals` non-null and want_hist, also fills the per-class histogram of totals.
/// Patches are processed in chunks fixed by N alone, reduced in chunk order, so results do not
/// depend on n_threads. The N x C log-joints are computed in cache-sized blocks, never stored.
MixtureStats mixture_estep(const double* Y, index_t N, const MixtureParams& params,
                           const double* log_factorials, const TotalsIndex* totals, bool want_hist,
                           int n_threads);

/// The fixed chunks the mixture kernels split N patches into (ALGORITHM.md §7.2).
FixedChunks mixture_chunks(index_t N);

/// The E-step of the chunks in `share` only, one MixtureStats per chunk in chunk order; summed
/// with sum_in_chunk_order, the partials of all chunks give mixture_estep's statistics bit for bit.
std::vector<MixtureStats> mixture_estep_partials(const double* Y, index_t N,
                                                 const MixtureParams& params,
                                                 const double* log_factorials,
                                                 const TotalsIndex* totals, bool want_hist,
                                                 ChunkShare share, int n_threads);

/// Posterior-mean estimate of every patch (N x D) and, if `variance` is non-null, the posterior
/// variance of the noise-free intensity per pixel.
void mixture_estimate(const double* Y, index_t N, const MixtureParams& params, double* estimates,
                      double* variance, int n_threads);

/// The nonlocal estimate of a mixture (ALGORITHM.md §5.6): with size K > 1 every patch's group
/// is itself and its K - 1 most similar patches in `guide` (an image of the grid's extents, in
/// the data's units) within `window`; the patch's estimate weighs the group sharing one component
/// (responsibilities from the sum of the members' log-likelihoods, each member with its own
/// brightness for the GPMM) against its members being unrelated (its own posterior), by their
/// evidences. K = 1: every patch alone.
struct MixtureGroups {
    index_t size = 1;
    MatchWindow window;
    const double* guide = nullptr;
};

/// Estimates every patch of `volume` (read as counts through `to_model`) and merges the
/// estimates, mapped back to grey values by `to_data`, into `out` (estimate_and_merge).
void mixture_estimate_volume(const double* volume, const VolumeGrid& grid,
                             const MixtureParams& params, const PatchTransform& to_model,
                             const EstimateTransform& to_data, const StreamOutputs& out,
                             int n_threads, const MixtureGroups& groups = MixtureGroups{});

/// Per-patch responsibilities r (N x C), for tests and small problems.
void mixture_responsibilities(const double* Y, index_t N, const MixtureParams& params, double* r,
                              int n_threads);

/// k-means++ seeding: indices of C distinct seed patches chosen with D^2 weighting from one random
/// stream seeded by `seed` (results do not depend on n_threads). With 0 < max_candidates < N the
/// seeds are drawn from a random subset of max_candidates patches.
std::vector<index_t> kmeans_plusplus(const double* Y, index_t N, index_t D, index_t C,
                                     std::uint64_t seed, int n_threads, index_t max_candidates);

/// Solves the GPMM shape equation for a global alpha (ALGORITHM.md §6.5):
///   sum_k n_k [psi(alpha + v_k) - psi(alpha)] + sum_c R_c log(alpha / (alpha + M_c)) = 0,
/// M_c = T_c / R_c, with weights n_k of the distinct totals v_k. Brent's method on
/// [alpha_min, alpha_max]; returns alpha_max when the equation has no root below it (totals not
/// over-dispersed within classes) and sets `capped`.
double solve_alpha(const std::vector<double>& values, const double* weights,
                   const std::vector<double>& R, const std::vector<double>& T, index_t c_begin,
                   index_t c_end, double alpha_min, double alpha_max, bool& capped);

}  // namespace zse
