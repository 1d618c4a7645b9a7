#include "zse/sssc.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <memory>

#include "zse/linalg.hpp"
#include "zse/parallel.hpp"
#include "zse/reduction.hpp"
#include "zse/simd.hpp"

namespace zse {
namespace {

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
    double log_c = 0.0;         // c(theta) = sum log(1 - pi) - D/2 log(2 pi sigma2)
    bool want_diag = false;
    bool diagonal_psi = false;  // exact updates keep Psi diagonal: no Cholesky of Psi_s needed
};

Derived derive(const SSSCParams& p, bool want_diag) {
    require(p.H >= 1 && p.H <= 64 * kMaxWords, "H must be in [1, 256]");
    require(p.sigma2 > 0.0 && std::isfinite(p.sigma2), "sigma2 must be finite and > 0");
    Derived d;
    d.p = &p;
    d.want_diag = want_diag;
    const index_t H = p.H, D = p.D;
    d.WtW.assign(static_cast<std::size_t>(H * H), 0.0);
    for (index_t r = 0; r < D; ++r) {
        const double* w = p.W + r * H;
        for (index_t i = 0; i < H; ++i) {
            const double wi = w[i];
            for (index_t j = 0; j < H; ++j) d.WtW[i * H + j] += wi * w[j];
        }
    }
    d.logit.resize(H);
    double log_one_minus = 0.0;
    for (index_t h = 0; h < H; ++h) {
        require(p.pi[h] > 0.0 && p.pi[h] < 1.0, "pi must lie in (0, 1)");
        d.logit[h] = std::log(p.pi[h]) - std::log1p(-p.pi[h]);
        log_one_minus += std::log1p(-p.pi[h]);
    }
    d.diagonal_psi = true;
    for (index_t i = 0; i < H && d.diagonal_psi; ++i)
        for (index_t j = 0; j < H; ++j)
            if (i != j && p.Psi[i * H + j] != 0.0) {
                d.diagonal_psi = false;
                break;
            }
    d.inv_s2 = 1.0 / p.sigma2;
    d.log_c = log_one_minus - 0.5 * static_cast<double>(D) * (kLog2Pi + std::log(p.sigma2));
    return d;
}

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
            if (same_state(keys_.data() + static_cast<std::size_t>(e) * words_, bits, words_)) return e;
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

void StateCache::compute(const std::uint64_t* bits, StateTerms& t) {
    const SSSCParams& p = *dv_.p;
    const index_t H = p.H;
    active_.clear();
    for (index_t w = 0; w < words_; ++w) {
        std::uint64_t word = bits[w];
        while (word) {
            active_.push_back(w * 64 + __builtin_ctzll(word));
            word &= word - 1;
        }
    }
    const index_t k = t.k = static_cast<index_t>(active_.size());
    t.offset = arena_.size();
    arena_.resize(arena_.size() + static_cast<std::size_t>(3 * k + 2 * k * k + (dv_.want_diag ? p.D : 0)), 0.0);
    double* base = arena_.data() + t.offset;
    double* mu = base + k;
    double* c = base + 2 * k;
    double* L = base + 3 * k;
    if (k == 0) {
        t.has_lambda = true;
        return;
    }
    const index_t* A = active_.data();
    for (index_t i = 0; i < k; ++i) base[i] = static_cast<double>(A[i]);  // exact for i < 2^53
    double log_det_psi = 0.0;
    if (dv_.diagonal_psi) {
        for (index_t i = 0; i < k; ++i) {
            const double psi = p.Psi[A[i] * H + A[i]];
            if (!(psi > 0.0)) {
                t.valid = false;
                return;
            }
            log_det_psi += std::log(psi);
            for (index_t j = 0; j < k; ++j)
                L[i * k + j] = (i == j ? 1.0 / psi : 0.0) + dv_.WtW[A[i] * H + A[j]] * dv_.inv_s2;
        }
    } else {
        psi_.resize(static_cast<std::size_t>(k * k));
        psi_inv_.resize(psi_.size());
        column_.resize(k);
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j) psi_[i * k + j] = p.Psi[A[i] * H + A[j]];
        // A Psi_s that is not positive definite (possible with the reference Psi update) makes
        // the state invalid on purpose: its log-determinant would otherwise be taken of |det|.
        if (!linalg::cholesky(psi_.data(), k)) {
            t.valid = false;
            return;
        }
        log_det_psi = linalg::log_det_from_cholesky(psi_.data(), k);
        linalg::inverse_from_cholesky(psi_.data(), k, psi_inv_.data(), column_.data());
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j)
                L[i * k + j] = psi_inv_[i * k + j] + dv_.WtW[A[i] * H + A[j]] * dv_.inv_s2;
    }
    if (!linalg::cholesky(L, k)) {
        t.valid = false;
        return;
    }
    const double log_det_m = linalg::log_det_from_cholesky(L, k);
    double prior = 0.0;
    for (index_t i = 0; i < k; ++i) {
        mu[i] = p.mu[A[i]];
        prior += dv_.logit[A[i]];
    }
    for (index_t i = 0; i < k; ++i) {
        double sum = 0.0;
        for (index_t j = 0; j < k; ++j) sum += dv_.WtW[A[i] * H + A[j]] * mu[j];
        c[i] = sum;
        t.mu_c += mu[i] * sum;
    }
    t.constant = 0.5 * (log_det_psi + log_det_m) - prior;
    if (!std::isfinite(t.constant)) t.valid = false;
}

struct PatchData {
    const double* y;
    std::vector<double> Wy;  // W^T y (H)
    double yy;               // |y|^2
};

// Posterior quantities of one (patch, state): b = W_A^T (y - W_A mu_A), v = L^-1 b, and the
// log-pseudo-joint (ALGORITHM.md §3.2) evaluated from W^T y in O(k^2).
double log_pseudo_joint(const Derived& dv, const StateTerms& t, const double* data,
                        const PatchData& pd, std::vector<double>& v) {
    if (!t.valid) return kMinusInf;
    const index_t k = t.k;
    if (k == 0) return -0.5 * pd.yy * dv.inv_s2;
    const double* active = data;
    const double* mu = data + k;
    const double* c = data + 2 * k;
    const double* L = data + 3 * k;
    v.resize(k);
    double mu_wy = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double wy = pd.Wy[static_cast<index_t>(active[i])];
        v[i] = wy - c[i];
        mu_wy += mu[i] * wy;
    }
    const double residual = pd.yy - 2.0 * mu_wy + t.mu_c;  // |y - W_A mu_A|^2
    linalg::solve_lower(L, k, v.data());
    double b_lambda_b = 0.0;
    for (index_t i = 0; i < k; ++i) b_lambda_b += v[i] * v[i];
    const double lpj = -t.constant - 0.5 * (residual * dv.inv_s2 - b_lambda_b * dv.inv_s2 * dv.inv_s2);
    return std::isfinite(lpj) ? lpj : kMinusInf;
}

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
void flush_block(Workspace& ws, SSSCStats& acc, index_t H, index_t D) {
    const index_t rows = ws.block_rows;
    if (rows == 0) return;
    add_transposed_product(acc.B_mm.data(), ws.block_esz.data(), ws.block_esz.data(), rows, H, H);
    add_transposed_product(acc.B_s_sz.data(), ws.block_es.data(), ws.block_esz.data(), rows, H, H);
    add_transposed_product(acc.Y_sz.data(), ws.block_y.data(), ws.block_esz.data(), rows, D, H);
    ws.block_rows = 0;
}

// One patch's work: where its data, states and outputs live, and its random stream.
struct PatchJob {
    std::uint64_t stream = 0;         // the global patch index: random numbers never depend on
                                      // where (thread, band, rank) the patch is processed
    const double* y = nullptr;        // D values
    std::uint64_t* Kn = nullptr;      // S states, updated in place
    index_t n_sweeps = 1;
    double* estimates = nullptr;      // D, or nullptr
    double* variance = nullptr;       // D, or nullptr
    double* lpj = nullptr;            // S, or nullptr
};

class EStepRunner {
   public:
    EStepRunner(const SSSCParams& p, index_t S, const EStepOptions& opt)
        : p_(p), S_(S), opt_(opt), words_(state_words(p.H)),
          dv_(derive(p, opt.variance != nullptr || opt.want_variance)) {}

    void run_patch(const PatchJob& job, StateCache& cache, Workspace& ws, SSSCStats& acc) const;
    const Derived& derived() const { return dv_; }

   private:
    // The lpj of `bits`; its cache entry goes to `entry`.
    double evaluate(StateCache& cache, Workspace& ws, std::int32_t entry, SSSCStats& counters) const {
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

// tvlearn/evo semantics (ALGORITHM.md §4.2-§4.6): generation 0 selects parents from K_n, later
// generations from the previous generation's children; only children not seen before are
// evaluated and become candidates; K_n keeps the S best of old and new. (state, lpj) pairs always
// travel together (pitfall §9.4).
void EStepRunner::evolve(const PatchJob& job, StateCache& cache, Workspace& ws,
                         SSSCStats& counters) const {
    Rng rng(opt_.seed, opt_.epoch, job.stream);
    const EvoConfig& evo = opt_.evo;
    for (index_t sweep = 0; sweep < job.n_sweeps; ++sweep) {
        const index_t n_old = static_cast<index_t>(ws.cand_lpj.size());
        ws.pool.assign(ws.cand.begin(), ws.cand.end());
        ws.pool_lpj.assign(ws.cand_lpj.begin(), ws.cand_lpj.end());
        for (index_t g = 0; g < evo.n_generations; ++g) {
            const index_t pool_n = static_cast<index_t>(ws.pool_lpj.size());
            select_parents(ws.pool_lpj.data(), pool_n, evo.n_parents, evo.selection, rng, ws.parents);
            if (ws.parents.empty()) break;
            ws.parent_bits.clear();
            for (index_t i : ws.parents)
                ws.parent_bits.insert(ws.parent_bits.end(), ws.pool.begin() + i * words_,
                                      ws.pool.begin() + (i + 1) * words_);
            ws.children.clear();
            mutate(ws.parent_bits.data(), static_cast<index_t>(ws.parents.size()), p_.H, evo, rng,
                   ws.children);
            ws.next_pool.clear();
            ws.next_pool_lpj.clear();
            const index_t n_children = static_cast<index_t>(ws.children.size()) / words_;
            for (index_t c = 0; c < n_children; ++c) {
                const std::uint64_t* child = ws.children.data() + c * words_;
                const std::int32_t entry = cache.get(child);
                double lpj;
                if (cache.seen_in_patch(entry)) {
                    lpj = cache.patch_lpj(entry);
                } else {
                    lpj = evaluate(cache, ws, entry, counters);
                    ws.cand.insert(ws.cand.end(), child, child + words_);
                    ws.cand_lpj.push_back(lpj);
                    ws.cand_terms.push_back(entry);
                    ++counters.n_new_states;
                }
                ws.next_pool.insert(ws.next_pool.end(), child, child + words_);
                ws.next_pool_lpj.push_back(lpj);
            }
            ws.pool.swap(ws.next_pool);
            ws.pool_lpj.swap(ws.next_pool_lpj);
            if (ws.pool_lpj.empty()) break;
        }
        // Keep the S best; ties go to the older state, so the best state is never lost.
        const index_t total = static_cast<index_t>(ws.cand_lpj.size());
        ws.order.resize(total);
        std::iota(ws.order.begin(), ws.order.end(), 0);
        std::stable_sort(ws.order.begin(), ws.order.end(), [&](index_t a, index_t b) {
            return ws.cand_lpj[a] > ws.cand_lpj[b];
        });
        ws.kept.resize(static_cast<std::size_t>(S_ * words_));
        ws.kept_lpj.resize(S_);
        ws.kept_terms.resize(S_);
        for (index_t i = 0; i < S_; ++i) {
            const index_t j = ws.order[i];
            std::copy(ws.cand.begin() + j * words_, ws.cand.begin() + (j + 1) * words_,
                      ws.kept.begin() + i * words_);
            ws.kept_lpj[i] = ws.cand_lpj[j];
            ws.kept_terms[i] = ws.cand_terms[j];
            if (j >= n_old) ++counters.n_replaced;
        }
        ws.cand.swap(ws.kept);
        ws.cand_lpj.swap(ws.kept_lpj);
        ws.cand_terms.swap(ws.kept_terms);
    }
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
    ws.cand.assign(Kn, Kn + S_ * words_);
    ws.cand_lpj.resize(S_);
    ws.cand_terms.resize(S_);
    for (index_t s = 0; s < S_; ++s) {
        ws.cand_terms[s] = cache.get(Kn + s * words_);
        ws.cand_lpj[s] = evaluate(cache, ws, ws.cand_terms[s], acc);
    }
    if (opt_.evolve) {
        evolve(job, cache, ws, acc);
        std::copy(ws.cand.begin(), ws.cand.end(), Kn);
    }
    if (job.lpj != nullptr) std::copy(ws.cand_lpj.begin(), ws.cand_lpj.end(), job.lpj);

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
        const std::int32_t entry = ws.cand_terms[s];
        const index_t k = cache.terms(entry).k;
        if (k == 0) continue;  // the zero state adds nothing to the moments
        const double* Lambda = cache.lambda(entry);
        const StateTerms& t = cache.terms(entry);
        const double* data = cache.data(t);
        const double* active = data;
        const double* mu = data + k;
        const double* L = data + 3 * k;
        // kappa = mu_A + Lambda b / sigma2, with Lambda b = L^-T L^-1 b.
        log_pseudo_joint(dv_, t, data, pd, ws.v);
        linalg::solve_upper_transposed(L, k, ws.v.data());
        ws.kappa.resize(k);
        for (index_t i = 0; i < k; ++i) ws.kappa[i] = mu[i] + ws.v[i] * dv_.inv_s2;
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
            const double* diag = Lambda + k * k;
            for (index_t d = 0; d < D; ++d) {
                const double* w = p_.W + d * H;
                double wk = 0.0;
                for (index_t i = 0; i < k; ++i) wk += w[static_cast<index_t>(active[i])] * ws.kappa[i];
                ws.second[d] += q * (wk * wk + diag[d]);
            }
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
            const double* w = p_.W + d * H;
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

}  // namespace

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

FixedChunks sssc_chunks(index_t N) { return fixed_chunks(N, 2048); }

std::vector<SSSCStats> sssc_estep_partials(const double* Y, index_t N, const SSSCParams& params,
                                           std::uint64_t* K, index_t S,
                                           const EStepOptions& options, ChunkShare share,
                                           int n_threads) {
    require(S >= 1, "S must be >= 1");
    const EStepRunner runner(params, S, options);
    const FixedChunks chunks = sssc_chunks(N);
    require(share.first >= 0 && share.first <= share.last && share.last <= chunks.count,
            "the chunk share lies outside the patches' chunks");
    const index_t words = state_words(params.H);
    // One cache and workspace per thread (never shared, so no locks), created in the region.
    // Few states recur across patches, so a small cache that stays in L2 is faster than a large
    // one (measured with bench_estep: 2^12 entries beat 2^15 and 2^18).
    std::vector<std::unique_ptr<StateCache>> caches(static_cast<std::size_t>(std::max(1, n_threads)));
    std::vector<std::unique_ptr<Workspace>> workspaces(caches.size());
    return chunk_partials<SSSCStats>(chunks, share, n_threads, [&](index_t c, SSSCStats& st) {
#ifdef _OPENMP
        const std::size_t tid = static_cast<std::size_t>(omp_get_thread_num());
#else
        const std::size_t tid = 0;
#endif
        if (!caches[tid]) {
            caches[tid] = std::make_unique<StateCache>(runner.derived(), words, std::size_t{1} << 12);
            workspaces[tid] = std::make_unique<Workspace>();
        }
        Workspace& ws = *workspaces[tid];
        if (options.want_stats) {
            st.reset(params.H, params.D);
            ws.block_es.resize(static_cast<std::size_t>(kStatsBlock * params.H));
            ws.block_esz.resize(ws.block_es.size());
            ws.block_y.resize(static_cast<std::size_t>(kStatsBlock * params.D));
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
        if (options.want_stats) flush_block(ws, st, params.H, params.D);
    });
}

SSSCStats sssc_estep(const double* Y, index_t N, const SSSCParams& params, std::uint64_t* K,
                     index_t S, const EStepOptions& options, int n_threads) {
    const FixedChunks chunks = sssc_chunks(N);
    std::vector<SSSCStats> partials =
        sssc_estep_partials(Y, N, params, K, S, options, ChunkShare{0, chunks.count}, n_threads);
    SSSCStats total = sum_in_chunk_order(partials, [](SSSCStats& a, const SSSCStats& b) { a.add(b); });
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
            const StateTerms& t = cache.terms(entries[m]);
            out[n * M + m] = log_pseudo_joint(dv, t, cache.data(t), pd, v) + dv.log_c;
        }
    });
}

SSSCUpdate sssc_mstep(const SSSCStats& st, index_t N, const SSSCParams& old, bool exact) {
    const index_t H = old.H, D = old.D;
    require(st.H == H && st.D == D && static_cast<index_t>(st.a_s.size()) == H,
            "statistics do not match the model size");
    require(N >= 1, "N must be >= 1");
    SSSCUpdate u;
    u.W.assign(old.W, old.W + D * H);
    u.pi.resize(H);
    u.mu.assign(old.mu, old.mu + H);
    u.Psi.assign(old.Psi, old.Psi + H * H);

    // Units with no posterior mass keep their parameters (pitfall §9.11) and are reported.
    std::vector<index_t> alive;
    for (index_t h = 0; h < H; ++h) {
        if (st.a_s[h] > 1e-8 && st.B_szsz[h * H + h] > 0.0) alive.push_back(h);
    }
    u.n_dead_units = H - static_cast<index_t>(alive.size());
    const index_t A = static_cast<index_t>(alive.size());

    // W = Y_sz B_szsz^-1 on the live units: Cholesky of B + ridge I, the ridge grown until the
    // factorisation succeeds (B is PSD and singular only in degenerate cases).
    if (A > 0) {
        std::vector<double> B(static_cast<std::size_t>(A * A)), L;
        double max_diag = 0.0;
        for (index_t i = 0; i < A; ++i) {
            for (index_t j = 0; j < A; ++j) B[i * A + j] = st.B_szsz[alive[i] * H + alive[j]];
            max_diag = std::max(max_diag, B[i * A + i]);
        }
        double ridge = 1e-12 * max_diag;
        for (int attempt = 0;; ++attempt) {
            L = B;
            for (index_t i = 0; i < A; ++i) L[i * A + i] += ridge;
            if (linalg::cholesky(L.data(), A)) break;
            require(attempt < 30, "the W update failed: B_szsz is not positive semi-definite");
            ridge = std::max(ridge * 100.0, 1e-300);
        }
        std::vector<double> rhs(A);
        for (index_t d = 0; d < D; ++d) {
            for (index_t i = 0; i < A; ++i) rhs[i] = st.Y_sz[d * H + alive[i]];
            linalg::solve_lower(L.data(), A, rhs.data());
            linalg::solve_upper_transposed(L.data(), A, rhs.data());
            for (index_t i = 0; i < A; ++i) u.W[d * H + alive[i]] = rhs[i];
        }
    }
    const double Nd = static_cast<double>(N);
    for (index_t h = 0; h < H; ++h) u.pi[h] = std::clamp(st.a_s[h] / Nd, 5e-5, 1.0 - 5e-5);
    for (index_t h : alive) u.mu[h] = st.a_sz[h] / (st.a_s[h] + std::numeric_limits<double>::epsilon());

    if (exact) {
        // Diagonal Psi, exact EM: psi_h = E[(z_h - mu_h)^2 | s_h = 1].
        std::fill(u.Psi.begin(), u.Psi.end(), 0.0);
        for (index_t h = 0; h < H; ++h) u.Psi[h * H + h] = old.Psi[h * H + h];
        for (index_t h : alive) {
            const double m = u.mu[h];
            const double psi = (st.B_szsz[h * H + h] - 2.0 * m * st.a_sz[h] + m * m * st.a_s[h]) / st.a_s[h];
            u.Psi[h * H + h] = std::max(psi, 1e-5);
        }
    } else {
        // Published update (tvlearn/evo, PROSPER): ((mu mu^T) .* B_ss + B_szsz - 2 (mu 1^T) .*
        // B_s,sz) .* inv(B_ss + 1e-5 I), + 1e-5 I; then symmetrised (the reference is not, and
        // a non-symmetric Psi has no Cholesky factor) with diagonal >= 1e-5.
        std::vector<double> Bss(st.B_ss), inv(static_cast<std::size_t>(H * H)), column(H);
        for (index_t h = 0; h < H; ++h) Bss[h * H + h] += 1e-5;
        require(linalg::cholesky(Bss.data(), H), "B_ss + 1e-5 I is not positive definite");
        linalg::inverse_from_cholesky(Bss.data(), H, inv.data(), column.data());
        for (index_t i = 0; i < H; ++i)
            for (index_t j = 0; j < H; ++j) {
                const double m = u.mu[i] * u.mu[j] * st.B_ss[i * H + j] + st.B_szsz[i * H + j] -
                                 2.0 * u.mu[i] * st.B_s_sz[i * H + j];
                u.Psi[i * H + j] = m * inv[i * H + j] + (i == j ? 1e-5 : 0.0);
            }
        for (index_t i = 0; i < H; ++i) {
            for (index_t j = 0; j < i; ++j) {
                const double v = 0.5 * (u.Psi[i * H + j] + u.Psi[j * H + i]);
                u.Psi[i * H + j] = u.Psi[j * H + i] = v;
            }
            u.Psi[i * H + i] = std::max(u.Psi[i * H + i], 1e-5);
        }
    }

    // sigma2 with the new W: tr(B W^T W) needs W^T W.
    std::vector<double> WtW(static_cast<std::size_t>(H * H), 0.0);
    for (index_t d = 0; d < D; ++d)
        for (index_t i = 0; i < H; ++i)
            for (index_t j = 0; j < H; ++j) WtW[i * H + j] += u.W[d * H + i] * u.W[d * H + j];
    auto trace_product = [&](const std::vector<double>& B) {
        double s = 0.0;
        for (index_t i = 0; i < H; ++i)
            for (index_t j = 0; j < H; ++j) s += B[i * H + j] * WtW[j * H + i];
        return s;
    };
    const double ND = Nd * static_cast<double>(D);
    double sigma2;
    if (exact) {
        double w_ysz = 0.0;
        for (index_t i = 0; i < D * H; ++i) w_ysz += u.W[i] * st.Y_sz[i];
        sigma2 = (st.T_yy - 2.0 * w_ysz + trace_product(st.B_szsz)) / ND;
    } else {
        sigma2 = (st.T_yy - trace_product(st.B_mm)) / ND + 1e-5;
    }
    u.sigma2 = std::max(std::isfinite(sigma2) ? sigma2 : 1e-5, 1e-5);
    return u;
}

void sssc_estimate_volume(const double* volume, const VolumeGrid& grid, const SSSCParams& params,
                          const PatchTransform& to_model, const EstimateTransform& to_data,
                          const SSSCImageOptions& opt, const StreamOutputs& out, int n_threads) {
    require(grid.D() == params.D, "the patch size does not match the model's D");
    check_state_settings(opt.S, params.H, opt.p_init);
    for (index_t m = 1; m < opt.n_train; ++m)
        require(opt.train_positions[m - 1] < opt.train_positions[m],
                "training positions must be sorted and distinct");
    EStepOptions eo;
    eo.seed = opt.seed;
    eo.epoch = 1000000000;  // the estimation stream, as in SSSC.estimate
    eo.evolve = true;
    eo.evo = opt.evo;
    eo.want_stats = false;
    eo.want_variance = out.pvar != nullptr;  // the driver asks for variances exactly then
    const EStepRunner runner(params, opt.S, eo);
    const index_t words = state_words(params.H), S = opt.S, D = params.D;
    const std::size_t set_size = static_cast<std::size_t>(S * words);

    // Per band (one slot at a time): the state cache, the workspace and the warm-start chain.
    struct Slot {
        std::unique_ptr<StateCache> cache;
        std::unique_ptr<Workspace> ws;
        std::vector<std::uint64_t> current, row_start;
        bool has_prev = false, has_row_start = false;
        index_t cursor = 0;  // next training position >= the current patch
    };
    std::vector<Slot> slots(static_cast<std::size_t>(std::max(1, n_threads)));
    const std::int64_t* pos_begin = opt.train_positions;
    const std::int64_t* pos_end = opt.train_positions + opt.n_train;

    RowEstimator estimator = [&](const RowJob& job) {
        Slot& sl = slots[static_cast<std::size_t>(job.slot)];
        if (!sl.cache) {
            sl.cache = std::make_unique<StateCache>(runner.derived(), words, std::size_t{1} << 12);
            sl.ws = std::make_unique<Workspace>();
            sl.current.resize(set_size);
            sl.row_start.resize(set_size);
        }
        if (job.band_start) {
            sl.has_prev = sl.has_row_start = false;
            sl.cursor = std::lower_bound(pos_begin, pos_end, job.first) - pos_begin;
        }
        SSSCStats counters;
        for (index_t t = 0; t < job.count; ++t) {
            const index_t n = job.first + t;
            while (sl.cursor < opt.n_train && pos_begin[sl.cursor] < n) ++sl.cursor;
            PatchJob pj;
            pj.stream = static_cast<std::uint64_t>(n);
            pj.y = job.patches + t * D;
            pj.Kn = sl.current.data();
            pj.estimates = job.estimates + t * D;
            pj.variance = job.variances != nullptr ? job.variances + t * D : nullptr;
            if (sl.cursor < opt.n_train && pos_begin[sl.cursor] == n) {
                const std::uint64_t* learned = opt.train_states + static_cast<std::size_t>(sl.cursor) * set_size;
                std::copy(learned, learned + set_size, sl.current.begin());
                pj.n_sweeps = opt.train_sweeps;
            } else if (opt.warm_start && t > 0 && sl.has_prev) {
                pj.n_sweeps = opt.warm_sweeps;  // `current` still holds the left neighbour's set
            } else if (opt.warm_start && t == 0 && sl.has_row_start) {
                std::copy(sl.row_start.begin(), sl.row_start.end(), sl.current.begin());
                pj.n_sweeps = opt.warm_sweeps;
            } else {
                init_patch_states(sl.current.data(), pj.stream, S, params.H, opt.p_init, opt.fresh_seed);
                pj.n_sweeps = opt.fresh_sweeps;
            }
            runner.run_patch(pj, *sl.cache, *sl.ws, counters);
            sl.has_prev = true;
            if (t == 0) {
                std::copy(sl.current.begin(), sl.current.end(), sl.row_start.begin());
                sl.has_row_start = true;
            }
        }
    };
    estimate_and_merge(volume, grid, to_model, estimator, to_data, out, n_threads);
}

}  // namespace zse
