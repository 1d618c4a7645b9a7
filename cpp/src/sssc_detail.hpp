// Internals of the SSSC kernels shared by their source files (never installed, never included
// outside cpp/src): the per-state cache, the per-patch E-step runner and their workspaces
// (ALGORITHM.md §3.2, §3.9, §4.2).
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "zse/linalg.hpp"
#include "zse/sssc.hpp"

namespace zse {
namespace sssc_detail {

constexpr index_t kMaxWords = 4;  // H <= 256
constexpr double kMinusInf = -std::numeric_limits<double>::infinity();
constexpr double kLog2Pi = 1.8378770664093454836;

// Everything about a state s that does not depend on the patch (ALGORITHM.md §3.2, §3.9), in the
// k x k form: never a D x D matrix. Arrays live in the cache's arena; see StateCache.
struct StateTerms {
    index_t k = 0;
    bool valid = true;
    bool has_lambda = false;  // Lambda is filled lazily, only for states that reach the moments
    double constant = 0.0;    // (log|Psi_s| + log|M_s|) / 2 - sum_A log(pi / (1 - pi))
    double mu_c = 0.0;        // mu_A^T (W^T W)[A, A] mu_A
    std::size_t offset = 0;   // arena offset of: active (k, as doubles), mu_A (k), c (k),
                              // L (k x k), Lambda (k x k), diag(W_A Lambda W_A^T) (D, if wanted)
};

// Parameter-derived arrays shared (read-only) by all threads during one E-step.
struct Derived {
    const SSSCParams* p = nullptr;
    std::vector<double> WtW;    // H x H
    std::vector<double> logit;  // log(pi / (1 - pi))
    double inv_s2 = 1.0;
    double log_c = 0.0;  // c(theta) = sum log(1 - pi) - D/2 log(2 pi sigma2)
    bool want_diag = false;
    bool diagonal_psi = false;  // exact updates keep Psi diagonal: no Cholesky of Psi_s needed
};

Derived derive(const SSSCParams& p, bool want_diag);

// Per-thread memo of StateTerms keyed by the bit pattern: open addressing with linear probing
// over a flat key array, entry arrays in one arena, so a miss allocates nothing once the buffers
// have grown. Values depend only on the state and the parameters, so which thread computes them
// changes nothing. Entries are addressed by index; the cache is emptied only in start_patch().
class StateCache {
 public:
    StateCache(const Derived& dv, index_t words, std::size_t max_entries)
        : dv_(dv), words_(words), max_entries_(max_entries) {
        resize_table(std::size_t{1} << 12);
    }

    std::int32_t get(const std::uint64_t* bits) {
        std::size_t slot = hash(bits) & mask_;
        while (true) {
            const std::int32_t e = table_[slot];
            if (e < 0) break;
            if (same_state(keys_.data() + static_cast<std::size_t>(e) * words_, bits, words_))
                return e;
            slot = (slot + 1) & mask_;
        }
        const auto e = static_cast<std::int32_t>(entries_.size());
        keys_.insert(keys_.end(), bits, bits + words_);
        entries_.emplace_back();
        compute(bits, entries_.back());
        table_[slot] = e;
        if (2 * entries_.size() > table_.size()) resize_table(2 * table_.size());
        return e;
    }
    const StateTerms& terms(std::int32_t e) const { return entries_[static_cast<std::size_t>(e)]; }
    const double* data(const StateTerms& t) const { return arena_.data() + t.offset; }
    const double* lambda(std::int32_t e) {
        StateTerms& t = entries_[static_cast<std::size_t>(e)];
        double* base = arena_.data() + t.offset;
        const index_t k = t.k;
        double* L = base + 3 * k;
        double* Lambda = L + k * k;
        if (!t.has_lambda) {
            column_.resize(static_cast<std::size_t>(k * k));
            linalg::inverse_from_cholesky_triangular(L, k, Lambda, column_.data());
            if (dv_.want_diag) {
                const SSSCParams& p = *dv_.p;
                double* diag = Lambda + k * k;
                for (index_t d = 0; d < p.D; ++d) {
                    const double* w = p.W + d * p.H;
                    double s = 0.0;
                    for (index_t i = 0; i < k; ++i) {
                        const double wi = w[static_cast<index_t>(base[i])];
                        for (index_t j = 0; j < k; ++j)
                            s += wi * Lambda[i * k + j] * w[static_cast<index_t>(base[j])];
                    }
                    diag[d] = s;
                }
            }
            t.has_lambda = true;
        }
        return Lambda;
    }
    void start_patch() {
        if (entries_.size() >= max_entries_) {
            entries_.clear();
            keys_.clear();
            arena_.clear();
            stamp_.clear();
            patch_lpj_.clear();
            std::fill(table_.begin(), table_.end(), -1);
        }
        ++current_stamp_;
    }
    // Per-patch bookkeeping: whether entry e is already a candidate of the current patch, and
    // its lpj there. Replaces a linear scan over the candidates for every child.
    bool seen_in_patch(std::int32_t e) const {
        return static_cast<std::size_t>(e) < stamp_.size() && stamp_[e] == current_stamp_;
    }
    double patch_lpj(std::int32_t e) const { return patch_lpj_[e]; }
    void mark_in_patch(std::int32_t e, double lpj) {
        if (stamp_.size() < entries_.size()) {
            stamp_.resize(entries_.size(), 0);
            patch_lpj_.resize(entries_.size(), 0.0);
        }
        stamp_[e] = current_stamp_;
        patch_lpj_[e] = lpj;
    }

 private:
    std::size_t hash(const std::uint64_t* bits) const {
        std::uint64_t h = 0x9E3779B97F4A7C15ULL;
        for (index_t w = 0; w < words_; ++w) {
            h ^= bits[w];
            h *= 0xBF58476D1CE4E5B9ULL;
            h ^= h >> 31;
        }
        return static_cast<std::size_t>(h);
    }
    void resize_table(std::size_t size) {
        table_.assign(size, -1);
        mask_ = size - 1;
        for (std::size_t e = 0; e < entries_.size(); ++e) {
            std::size_t slot = hash(keys_.data() + e * words_) & mask_;
            while (table_[slot] >= 0) slot = (slot + 1) & mask_;
            table_[slot] = static_cast<std::int32_t>(e);
        }
    }
    void compute(const std::uint64_t* bits, StateTerms& t);

    const Derived& dv_;
    index_t words_;
    std::size_t max_entries_;
    std::vector<std::int32_t> table_;
    std::size_t mask_ = 0;
    std::vector<std::uint64_t> keys_;
    std::vector<StateTerms> entries_;
    std::vector<double> arena_;
    std::vector<index_t> active_;
    std::vector<double> psi_, psi_inv_, column_;
    std::vector<std::uint64_t> stamp_;
    std::vector<double> patch_lpj_;
    std::uint64_t current_stamp_ = 0;
};

struct PatchData {
    const double* y;
    std::vector<double> Wy;  // W^T y (H)
    double yy;               // |y|^2
};

// Posterior quantities of one (patch, state): b = W_A^T (y - W_A mu_A), v = L^-1 b, and the
// log-pseudo-joint (ALGORITHM.md §3.2) evaluated from W^T y in O(k^2).
double log_pseudo_joint(const Derived& dv, const StateTerms& t, const double* data,
                        const PatchData& pd, std::vector<double>& v);

constexpr index_t kStatsBlock = 32;  // patches per dense statistics update

struct Workspace {
    std::vector<double> block_es, block_esz, block_y;  // kStatsBlock rows of <s>, <sz>, y
    index_t block_rows = 0;
    std::vector<std::int32_t> cand_terms, kept_terms;  // cache entries of the candidates
    std::vector<std::uint64_t> cand, kept, children, parent_bits, pool, next_pool;
    std::vector<double> cand_lpj, kept_lpj, pool_lpj, next_pool_lpj;
    std::vector<index_t> parents, order;
    std::vector<double> v, es, esz, kappa, second;
    std::vector<index_t> support;
    std::vector<char> in_support;
    PatchData pd;
};

// B_mm += E_sz^T E_sz, B_s,sz += E_s^T E_sz, Y_sz^T += E_sz^T Y over the block; Y_sz is stored
// D x H, so it takes Y^T E_sz.
void flush_block(Workspace& ws, SSSCStats& acc, index_t H, index_t D);

// One patch's work: where its data, states and outputs live, and its random stream.
struct PatchJob {
    std::uint64_t stream = 0;     // the global patch index: random numbers never depend on
                                  // where (thread, band, rank) the patch is processed
    const double* y = nullptr;    // D values
    std::uint64_t* Kn = nullptr;  // S states, updated in place
    index_t n_sweeps = 1;
    double* estimates = nullptr;  // D, or nullptr
    double* variance = nullptr;   // D, or nullptr
    double* lpj = nullptr;        // S, or nullptr
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
    // The lpj of `bits`; its cache entry goes to `entry`.
    double evaluate(StateCache& cache, Workspace& ws, std::int32_t entry,
                    SSSCStats& counters) const {
        ++counters.n_lpj;
        const StateTerms& t = cache.terms(entry);
        const double lpj = log_pseudo_joint(dv_, t, cache.data(t), ws.pd, ws.v);
        cache.mark_in_patch(entry, lpj);
        return lpj;
    }
    void evolve(const PatchJob& job, StateCache& cache, Workspace& ws, SSSCStats& counters) const;

    const SSSCParams& p_;
    index_t S_;
    const EStepOptions& opt_;
    index_t words_;
    Derived dv_;
};

}  // namespace sssc_detail
}  // namespace zse
