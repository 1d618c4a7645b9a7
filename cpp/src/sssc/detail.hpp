// Internals of the SSSC kernels shared by their source files (never installed, never included
// outside cpp/src): the state terms (terms.hpp), the per-state cache (state_cache.hpp), and here
// the per-patch E-step runner and its workspaces (ALGORITHM.md §3.2, §3.9, §4.2).
#pragma once

#include <cstdint>
#include <vector>

#include "state_cache.hpp"
#include "terms.hpp"

namespace zse {
namespace sssc_detail {

// Posterior quantities of one (patch, state): b = W_A^T (y - W_A mu_A) in v[k, 2k), v[0, k) =
// Lambda b, and the log-pseudo-joint (ALGORITHM.md §3.2) evaluated from W^T y in O(k^2).
double log_pseudo_joint(const Derived& dv, const StateTerms& t, const double* data,
                        const PatchData& pd, std::vector<double>& v);

constexpr index_t kStatsBlock = 32;  // patches per dense statistics update

// out = W^T y (W: D x H row-major), through the E-step's dispatched clones: a plain function
// other source files may call (a target_clones function declared in another translation unit
// would need its clones there too).
void project_patch(const double* W, const double* y, index_t D, index_t H, double* out);

struct Workspace {
    std::vector<double> block_es, block_esz, block_y;  // kStatsBlock rows of <s>, <sz>, y
    std::vector<double> chunk_Ysz_T;                   // H x D: Y_sz of the chunk, transposed
    index_t block_rows = 0;
    // the candidates', pool's and parents' records in the patch (StateCache::meet)
    std::vector<index_t> cand_terms, kept_terms, pool_terms, next_pool_terms, parent_terms;
    std::vector<std::uint64_t> cand, kept, children, parent_bits, pool, next_pool;
    std::vector<double> cand_lpj, kept_lpj, pool_lpj, next_pool_lpj;
    std::vector<index_t> parents, order, merged;
    std::vector<double> v, es, esz, kappa, second;
    std::vector<index_t> support;
    std::vector<char> in_support;
    std::vector<index_t> flips;     // units flipped by an expansion
    std::vector<index_t> expanded;  // records whose neighbours were tried in this patch
    std::vector<double> scores;     // score_added_units' output (H)
    std::vector<double> removal_scores, flip_keys, bar_values;
    std::vector<char> child_in_set;  // units whose flip of the expanded state is a candidate
    NeighbourScratch neighbour_scratch;
    PatchData pd;
};

// B_mm += E_sz^T E_sz, B_s,sz += E_s^T E_sz over the block, and Y_sz^T += E_sz^T Y into the
// workspace's chunk_Ysz_T (Y_sz is stored D x H; its transpose skips the zero rows of E_sz).
void flush_block(Workspace& ws, SSSCStats& acc, index_t H, index_t D);
// The last block, and the chunk's Y_sz^T added (transposed) to acc.Y_sz.
void finish_chunk(Workspace& ws, SSSCStats& acc, index_t H, index_t D);

// One patch's work: where its data, states and outputs live, and its random stream.
struct PatchJob {
    std::uint64_t stream = 0;     // the global patch index: random numbers never depend on
                                  // where (thread, band, rank) the patch is processed
    const double* y = nullptr;    // D values
    std::uint64_t* Kn = nullptr;  // S states, updated in place
    index_t n_sweeps = 1;
    index_t patience = 0;         // end the search after this many sweeps in a row that left
                                  // the state set unchanged (0: always n_sweeps)
    double* estimates = nullptr;  // D, or nullptr
    double* variance = nullptr;   // D, or nullptr
    double* lpj = nullptr;        // S, or nullptr
    bool keep_terms = false;      // keep the final states' terms for the next patch (a chain)
};

class EStepRunner {
 public:
    EStepRunner(const SSSCParams& p, index_t S, const EStepOptions& opt)
        : p_(p),
          S_(S),
          opt_(opt),
          words_(state_words(p.H)),
          dv_(derive(p, opt.variance != nullptr || opt.want_variance)) {}

    void run_patch(const PatchJob& job, StateCache& cache, Workspace& ws, SSSCStats& acc) const;
    const Derived& derived() const { return dv_; }

 private:
    // The lpj of the patch's record `r` (StateCache::meet), stored with the record.
    double evaluate(StateCache& cache, Workspace& ws, index_t r, SSSCStats& counters) const {
        ++counters.n_lpj;
        return cache.evaluate(r, ws.pd, ws.v);
    }
    void evolve(const PatchJob& job, StateCache& cache, Workspace& ws, SSSCStats& counters) const;
    bool expand_best(StateCache& cache, Workspace& ws, SSSCStats& counters) const;

    const SSSCParams& p_;
    index_t S_;
    const EStepOptions& opt_;
    index_t words_;
    Derived dv_;
};

}  // namespace sssc_detail
}  // namespace zse
