// Spike-and-slab sparse coding (SSSC) with evolutionary truncated EM (ES3C), ALGORITHM.md §3-§4.
#pragma once

#include <cstdint>
#include <vector>

#include "zse/block_match.hpp"
#include "zse/common.hpp"
#include "zse/evo.hpp"
#include "zse/reduction.hpp"
#include "zse/tiles.hpp"
#include "zse/volume.hpp"

namespace zse {

/// Model parameters: y = W (s * z) + noise, s_h ~ Bernoulli(pi_h), z ~ N(mu, Psi),
/// noise ~ N(0, sigma2 I). W is D x H row-major, Psi H x H.
struct SSSCParams {
    index_t H = 0, D = 0;
    const double* W = nullptr;
    const double* pi = nullptr;
    const double* mu = nullptr;
    const double* Psi = nullptr;
    double sigma2 = 1.0;
    /// The fields the estimates and their variances are formed with (D x H), or nullptr for W.
    /// With a stationary noise covariance Sigma = sigma2 L L^T the likelihood sees the whitened
    /// patches L^-1 y and fields W = L^-1 W_out, the estimates W_out <s z> are in the data's
    /// coordinates (ALGORITHM.md §3.14).
    const double* W_out = nullptr;
    const double* fields_out() const { return W_out != nullptr ? W_out : W; }
};

/// Sufficient statistics of an E-step (ALGORITHM.md §3.6), summed over patches.
struct SSSCStats {
    index_t H = 0, D = 0;
    std::vector<double> a_s, a_sz;                   ///< H
    std::vector<double> B_ss, B_szsz, B_mm, B_s_sz;  ///< H x H
    std::vector<double> Y_sz;                        ///< D x H
    double T_yy = 0.0;
    double log_joint_sum = 0.0;     ///< sum_n log sum_{s in K_n} p(s, y_n) (the free energy)
    std::int64_t n_invalid = 0;     ///< states whose Psi_s or M_s was not positive definite
    std::int64_t n_new_states = 0;  ///< distinct new states evaluated by the evolution
    std::int64_t n_replaced = 0;    ///< states of K replaced by better new ones
    std::int64_t n_lpj = 0;         ///< log-pseudo-joint evaluations
    void reset(index_t H_, index_t D_);
    void add(const SSSCStats& other);
};

struct EStepOptions {
    std::uint64_t seed = 0;
    std::uint64_t epoch = 0;
    bool evolve = true;    ///< run the evolutionary search before the posterior
    index_t n_sweeps = 1;  ///< repetitions of the search (each with n_generations)
    EvoConfig evo;
    bool want_stats = true;
    double* estimates = nullptr;  ///< N x D posterior-mean estimates, or nullptr
    double* variance = nullptr;   ///< N x D posterior variance of W (s z), or nullptr
    double* lpj_out = nullptr;    ///< N x S log-pseudo-joints of the final K, or nullptr
    bool want_variance = false;   ///< prepare the per-state terms of the variance
};

/// One truncated E-step over all patches: (optionally) evolve every K_n (N x S states of
/// state_words(H) words, updated in place), compute truncated posteriors with the current
/// parameters, the free energy, sufficient statistics and/or estimates. Patches are independent
/// and their random streams depend on (seed, epoch, patch) only; statistics are reduced over
/// chunks fixed by N, so results do not depend on n_threads.
SSSCStats sssc_estep(const double* Y, index_t N, const SSSCParams& params, std::uint64_t* K,
                     index_t S, const EStepOptions& options, int n_threads);

/// The fixed chunks the E-step of N patches is reduced over (ALGORITHM.md §7.2).
FixedChunks sssc_chunks(index_t N);

/// The E-step of the patches in the chunks of `share` only (other patches and their state sets
/// are not touched), one SSSCStats per chunk in chunk order. Summed with sum_in_chunk_order,
/// the partials of all chunks, from however many processes, give sssc_estep's statistics bit
/// for bit.
std::vector<SSSCStats> sssc_estep_partials(const double* Y, index_t N, const SSSCParams& params,
                                           std::uint64_t* K, index_t S, const EStepOptions& options,
                                           ChunkShare share, int n_threads);

/// log p(s, y_n) (including every constant) for M given states (packed) and N patches: N x M.
void sssc_log_joint(const double* Y, index_t N, const SSSCParams& params,
                    const std::uint64_t* states, index_t M, double* out, int n_threads);

/// log p(s) + sum_i log p(y_i | s) (every constant included) of a group of K patches (K x D)
/// that shares its binary state s, each member with its own slab z_i, for M given states
/// (packed): M values (ALGORITHM.md §3.16). A group of one gives sssc_log_joint.
void sssc_group_log_joint(const double* Y, index_t K, const SSSCParams& params,
                          const std::uint64_t* states, index_t M, double* out);

/// Outputs of the M-step.
struct SSSCUpdate {
    std::vector<double> W, pi, mu, Psi;
    double sigma2 = 1.0;
    index_t n_dead_units = 0;  ///< units with (almost) no posterior mass: W column kept
};

/// M-step from summed statistics of N patches. `exact`: diagonal-Psi exact EM with the exact
/// sigma2; otherwise the published updates (full Psi, sigma2 from posterior-mean outer products).
/// Bounds as in ALGORITHM.md §3.6: pi in [5e-5, 1 - 5e-5], diag Psi >= 1e-5, sigma2 >= 1e-5.
SSSCUpdate sssc_mstep(const SSSCStats& stats, index_t N, const SSSCParams& old, bool exact);

/// How the states of every patch are found when a whole image is estimated (ALGORITHM.md §2.6).
struct SSSCImageOptions {
    index_t S = 1;
    double p_init = 0.5;
    std::uint64_t seed = 0;        ///< the model's seed: random streams (seed, epoch, patch)
    std::uint64_t fresh_seed = 1;  ///< seed of fresh initial states
    EvoConfig evo;
    /// Training patches (sorted global indices) and their learned state sets (M x train_S x
    /// words): they start from the S best of those under the given parameters (all of them
    /// when train_S == S) and get `train_sweeps` sweeps.
    const std::int64_t* train_positions = nullptr;
    const std::uint64_t* train_states = nullptr;
    index_t n_train = 0;
    index_t train_S = 0;  ///< states per learned set, >= S (0: S)
    index_t train_sweeps = 1;
    /// Other patches start from their left (or upper) neighbour's final states, with
    /// `warm_sweeps` sweeps; a band's first patch starts from fresh states with `fresh_sweeps`
    /// sweeps.
    index_t warm_sweeps = 1;
    index_t fresh_sweeps = 10;
    /// A warm or fresh search ends early after `patience` sweeps in a row that left the patch's
    /// state set unchanged (0: every sweep is run).
    index_t patience = 0;
    /// Nonlocal estimation (ALGORITHM.md §3.16): with group_size K > 1 every patch is the
    /// reference of a group, itself and the K - 1 patches most similar to it in `guide` (an
    /// image of the grid's extents, in the data's units: a first estimate) within `window`;
    /// after its own search, the group's states are searched on the whole group's evidence
    /// (`group_sweeps` rounds of single-unit flips) and the patch's estimate is its posterior
    /// mean under the two hypotheses, the group sharing its spike (the group's posterior over
    /// states) or its members being unrelated (the patch's own posterior), weighted by their
    /// evidences. K = 1: every patch alone.
    index_t group_size = 1;
    MatchWindow window;
    index_t group_sweeps = 6;
    const double* guide = nullptr;
    /// Every patch's truncated log-evidence log sum_{s in K_n} p(s, y_n): written by a first
    /// pass (n_patches values, or nullptr), read by the nonlocal pass (required with
    /// group_size > 1), which weighs the group's sharing of its spike against its members
    /// being unrelated by these evidences.
    double* evidence_out = nullptr;
    const double* evidence = nullptr;
};

/// Estimates every patch of `volume` (read through `to_model`: the standardised, bias-free
/// units) and merges the estimates, mapped back by `to_data`, into `out` (estimate_and_merge).
void sssc_estimate_volume(const double* volume, const VolumeGrid& grid, const SSSCParams& params,
                          const PatchTransform& to_model, const EstimateTransform& to_data,
                          const SSSCImageOptions& options, const StreamOutputs& out, int n_threads);

}  // namespace zse
