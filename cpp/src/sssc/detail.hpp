// Internals of the SSSC kernels shared by their source files (never installed, never included
// outside cpp/src): the per-state cache, the per-patch E-step runner and their workspaces
// (ALGORITHM.md §3.2, §3.9, §4.2).
#pragma once

#include <algorithm>
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
// The neighbours search expands states within this many nats of a patch's best state: one
// further below holds less than e^-10 of the best one's posterior weight (ALGORITHM.md §4.10).
constexpr double kExpandWindow = 10.0;

// Everything about a state s that does not depend on the patch (ALGORITHM.md §3.2, §3.9), in the
// k x k form: never a D x D matrix. Arrays live in an arena; see StateCache. The units of A are
// stored in the order the terms were built in (ascending for states computed from scratch, a
// parent's order plus the new unit for a child built from its parent, §3.12): every quantity is
// invariant to that order.
struct StateTerms {
    index_t k = 0;
    bool valid = true;
    bool has_diag = false;    // room for diag(W_A Lambda W_A^T) after the other arrays
    bool diag_ready = false;  // ... filled (lazily, only for states that reach the moments)
    double constant = 0.0;    // (log|Psi_s| + log|M_s|) / 2 - sum_A log(pi / (1 - pi))
    double mu_c = 0.0;        // mu_A^T (W^T W)[A, A] mu_A
    std::size_t offset = 0;   // arena offset of: active (k, as doubles), mu_A (k), c (k),
                              // Lambda = M_s^-1 (k x k, symmetric), Psi_s^-1 (k x k, only when
                              // Psi is not diagonal), diag(W_A Lambda W_A^T) (D, if has_diag)
    // A child of the patch part whose terms are not built yet (§3.12): its parent's record,
    // the added unit and its own record.
    bool pending = false;
    index_t parent_rec = -1, unit = -1, rec = -1;
};

struct PatchData {
    const double* y;
    std::vector<double> Wy;  // W^T y (H)
    double yy;               // |y|^2
};

// Scratch space of compute_state_terms (one per thread).
struct TermsScratch {
    std::vector<index_t> active;
    std::vector<double> psi, psi_inv, column, factor;
};

// Parameter-derived arrays shared (read-only) by all threads during one E-step, with the terms
// of every state of at most two units (ALGORITHM.md §3.9): trained models are sparse (house
// sigma 25, H=64: 81 % of the state-set slots hold one or two units), and such states recur
// across patches, so computing them once per E-step replaces most cache misses.
struct Derived {
    const SSSCParams* p = nullptr;
    std::vector<double> WtW;               // H x H
    std::vector<double> logit;             // log(pi / (1 - pi))
    std::vector<double> log_psi, inv_psi;  // of Psi's diagonal (where it is > 0)
    double inv_s2 = 1.0;
    double log_c = 0.0;  // c(theta) = sum log(1 - pi) - D/2 log(2 pi sigma2)
    bool want_diag = false;
    bool diagonal_psi = false;  // exact updates keep Psi diagonal: no Cholesky of Psi_s needed
    // Terms of the states with k <= 2, Lambda included, diag(W_A Lambda W_A^T) never (it is
    // formed on the fly for them); entry 0 is the zero state, 1 + h the state {h}, then the
    // pairs {h1 < h2} in lexicographic order (small_index).
    std::vector<StateTerms> small;
    std::vector<double> small_arena;

    index_t n_small() const { return static_cast<index_t>(small.size()); }
    // The small-table entry of a state with `k` <= 2 units, the lowest `h1`.
    index_t small_index(index_t k, index_t h1, index_t h2) const {
        const index_t H = p->H;
        if (k == 0) return 0;
        if (k == 1) return 1 + h1;
        return 1 + H + h1 * (2 * H - h1 - 1) / 2 + (h2 - h1 - 1);
    }
};

Derived derive(const SSSCParams& p, bool want_diag);

// Arena doubles of a state with k units: active (k, as doubles), mu_A (k), c (k), Lambda (k x k),
// Psi_s^-1 (k x k) unless Psi is diagonal and, when `with_diag`, diag(W_A Lambda W_A^T) (D).
inline std::size_t terms_size(index_t k, index_t D, bool full_psi, bool with_diag) {
    return static_cast<std::size_t>(3 * k + (full_psi ? 2 : 1) * k * k + (with_diag ? D : 0));
}
inline const double* lambda_of(const StateTerms& t, const double* base) {
    return base + 3 * t.k;
}
// The arrays of a state with k units at `base`, in the order of terms_size.
template <class T>
struct TermsArrays {
    T *active, *mu, *c, *Lambda, *psi_inv;
    TermsArrays(T* base, index_t k)
        : active(base),
          mu(base + k),
          c(base + 2 * k),
          Lambda(base + 3 * k),
          psi_inv(base + 3 * k + k * k) {}
};
inline const double* psi_inv_of(const StateTerms& t, const double* base) {
    return base + 3 * t.k + t.k * t.k;
}

// The state's terms (ALGORITHM.md §3.2, §3.9) into `base` (terms_size doubles) for the k active
// units A (ascending), computed from scratch.
void compute_state_terms(const Derived& dv, const index_t* A, index_t k, StateTerms& t,
                         double* base, TermsScratch& scratch);

// The terms of a child that adds unit h to a parent state (`parent`, its arrays at `pbase`) in
// O(k^2): a bordered update of Psi_s^-1 and Lambda with the determinant lemma (ALGORITHM.md
// §3.12). Returns false, leaving `base` unused, when the update is not numerically safe (a
// Schur complement that is not clearly positive); the child is then computed from scratch.
bool extend_state_terms(const Derived& dv, const StateTerms& parent, const double* pbase, index_t h,
                        StateTerms& t, double* base);

// The terms of a child that removes the unit at position j of the parent's units, in O(k^2)
// (§3.12); false when the downdate is not numerically safe (then: from scratch).
bool shrink_state_terms(const Derived& dv, const StateTerms& parent, const double* pbase, index_t j,
                        StateTerms& t, double* base);

// The log-pseudo-joint of the child that adds unit h to a parent (terms at `pbase`, its
// Lambda b for this patch in `v_parent`) without building the child's terms, in 3k^2 + O(k)
// (§3.12); the child's Lambda b goes to `v_child` (k + 1 doubles). NaN when the update is not
// numerically safe.
double child_log_pseudo_joint(const Derived& dv, const StateTerms& parent, const double* pbase,
                              const double* v_parent, index_t h, const PatchData& pd,
                              std::vector<double>& scratch, double* v_child);

// Scratch space of the neighbour scores (one per thread).
struct NeighbourScratch {
    std::vector<double> buffer, patch, removal, table;
};

// What the scores of all children that add one unit to a parent need apart from the patch
// (ALGORITHM.md §3.13), in neighbour_table_size doubles: k x H blocks Lambda G, Lambda U (zero
// for a diagonal Psi) and w = Lambda_1 q, then per unit h: t, s + u^T Lambda u, the child's
// constant (NaN where the update of §3.12 is not numerically safe), mu^T W^T W mu, c_h and the
// column sums G.LU, G.LG, w.G and mu_A.G.
struct NeighbourTable {
    index_t k = 0;
    const double *LG, *LU, *w;
    const double *t, *den, *constant, *mu_c, *c, *GLU, *GLG, *wG, *mu_g;
};
std::size_t neighbour_table_size(index_t k, index_t H);
NeighbourTable neighbour_table_view(const double* base, index_t k, index_t H);
void build_neighbour_table(const Derived& dv, const StateTerms& parent, const double* pbase,
                           NeighbourScratch& scratch, double* out);

// The log-pseudo-joint of every child that adds one unit h to a parent state (terms at `pbase`,
// its table `tb`) for the patch `pd`, into lpj[h] (H values), in one pass vectorised across h:
// -inf for the parent's own units, NaN where the update is not numerically safe (such a child
// is evaluated the exact way). Leaves in `scratch` what added_unit_lambda_b needs.
void score_added_units(const Derived& dv, const StateTerms& parent, const double* pbase,
                       const NeighbourTable& tb, const PatchData& pd, NeighbourScratch& scratch,
                       double* lpj);
// The child's Lambda b (k + 1 doubles, in the order of extend_state_terms) for unit h of the
// parent last scored with `scratch`.
void added_unit_lambda_b(const Derived& dv, const NeighbourTable& tb,
                         const NeighbourScratch& scratch, index_t h, double* v_child);
// The log-pseudo-joint of every child that removes one unit of a parent state, into lpj[j] for
// the unit at position j of the parent's (k values), O(k^2) each (ALGORITHM.md §3.13); NaN where
// the downdate is not numerically safe.
void score_removed_units(const Derived& dv, const StateTerms& parent, const double* pbase,
                         const PatchData& pd, NeighbourScratch& scratch, double* lpj);

// w_A^T Lambda w_A for one row w of W (the state's units `active`, stored as doubles): one entry
// of diag(W_A Lambda W_A^T), cached by fill_diag or formed on the fly for the shared table.
inline double row_spread(const double* w, const double* active, const double* Lambda, index_t k) {
    double s = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double wi = w[static_cast<index_t>(active[i])];
        for (index_t j = 0; j < k; ++j)
            s += wi * Lambda[i * k + j] * w[static_cast<index_t>(active[j])];
    }
    return s;
}

// diag(W_A Lambda W_A^T) into the state's room for it (t.has_diag).
void fill_diag(const Derived& dv, StateTerms& t, double* base);

// Doubles handed out in blocks without being zeroed (every array of a state's terms is written
// before it is read); clear() keeps the memory.
class Arena {
 public:
    std::size_t grow(std::size_t n) {
        const std::size_t offset = used_;
        used_ += n;
        if (used_ > buffer_.size()) buffer_.resize(std::max(used_, 2 * buffer_.size()));
        return offset;
    }
    void shrink(std::size_t size) { used_ = size; }
    void clear() { used_ = 0; }
    std::size_t size() const { return used_; }
    double* data() { return buffer_.data(); }
    const double* data() const { return buffer_.data(); }

 private:
    std::vector<double> buffer_;
    std::size_t used_ = 0;
};

// Per-thread memo of StateTerms in two parts.
//
// The shared part holds terms computed from scratch, keyed by the bit pattern (open addressing
// with linear probing over a flat key array, entry arrays in one arena, so a miss allocates
// nothing once the buffers have grown); states of at most two units come from the shared table
// in Derived (ids below n_small). These values depend only on the state and the parameters, so
// which thread computed them, and when, changes nothing; they are kept across patches and the
// part is emptied only in start_patch() when full.
//
// The patch part lists every state the current patch has met (its id and, once evaluated, its
// lpj and Lambda b) and holds the terms of children built from their parent (extend_state_terms,
// shrink_state_terms). A child that adds a unit to a parent of this part is first only scored
// (child_log_pseudo_joint); its terms are built when it is needed (as a parent, for the moments:
// ensure()). Those values depend on the parent's terms, i.e. on the patch's own search, never on
// what other patches left in the cache: they are dropped in start_patch(), which keeps results
// independent of threads and ranks (ALGORITHM.md §3.12).
class StateCache {
 public:
    static constexpr std::int32_t kLocal = std::int32_t{1} << 30;  // ids of patch-part terms

    StateCache(const Derived& dv, index_t words, std::size_t max_entries)
        : dv_(dv), words_(words), n_small_(dv.n_small()), max_entries_(max_entries) {
        resize_table(std::size_t{1} << 12);
        seen_table_.assign(std::size_t{1} << 11, -1);
        small_stamp_.assign(static_cast<std::size_t>(n_small_), 0);
        small_seen_.assign(static_cast<std::size_t>(n_small_), 0);
        small_lpj_.assign(static_cast<std::size_t>(n_small_), 0.0);
    }

    // The shared-table id of a state of at most two units, else -1.
    std::int32_t small_id(const std::uint64_t* bits) const {
        index_t k = 0, h[2] = {0, 0};
        for (index_t w = 0; w < words_ && k <= 2; ++w) {
            std::uint64_t word = bits[w];
            while (word && k <= 2) {
                if (k < 2) h[k] = w * 64 + __builtin_ctzll(word);
                ++k;
                word &= word - 1;
            }
        }
        return k <= 2 ? static_cast<std::int32_t>(dv_.small_index(k, h[0], h[1])) : -1;
    }

    // The id of `bits`' terms from the shared part (computed from scratch when missing).
    std::int32_t get(const std::uint64_t* bits) {
        const std::int32_t small = small_id(bits);
        if (small >= 0) return small;
        std::size_t slot;
        const std::int32_t found = find_shared(bits, slot);
        if (found >= 0) return static_cast<std::int32_t>(n_small_ + found);
        StateTerms t;
        compute(bits, t);
        return static_cast<std::int32_t>(n_small_ + add_shared(bits, t, slot));
    }

    // The current patch's record of `bits`: found, or created with its terms (from the parent's
    // record `parent` when `bits` adds or removes one unit and has more than two units, else
    // from the shared part; parent < kNoParent: none). Returns the record for
    // seen()/id()/lpj()/evaluate(): states of at most two units are recorded by their
    // shared-table id (r < 0, no hashing), others in a per-patch hash table (r >= 0).
    static constexpr index_t kNoParent = std::numeric_limits<index_t>::min();
    index_t meet(const std::uint64_t* bits, index_t parent, const std::uint64_t* parent_bits) {
        const std::int32_t small = small_id(bits);
        if (small >= 0) {
            if (small_stamp_[static_cast<std::size_t>(small)] != stamp_) {
                small_stamp_[static_cast<std::size_t>(small)] = stamp_;
                small_seen_[static_cast<std::size_t>(small)] = 0;
            }
            return -1 - static_cast<index_t>(small);
        }
        std::size_t slot = hash(bits) & seen_mask();
        while (true) {
            const std::int32_t r = seen_table_[slot];
            if (r < 0) break;
            if (same_state(met_keys_.data() + static_cast<std::size_t>(r) * words_, bits, words_))
                return r;
            slot = (slot + 1) & seen_mask();
        }
        const auto r = static_cast<std::int32_t>(met_.size());
        const std::int32_t id = terms_for(bits, parent, parent_bits, r);
        met_keys_.insert(met_keys_.end(), bits, bits + words_);
        met_.push_back(Met{id, 0.0, false, kNoV});
        seen_table_[slot] = r;
        used_slots_.push_back(slot);
        if (4 * met_.size() > seen_table_.size()) grow_seen_table();
        return r;
    }
    // Lambda b of record r for the current patch as its evaluation left it (in the order of
    // its terms' units), or nullptr when not kept (states of at most two units, invalid ones).
    const double* lambda_b(index_t r) const {
        if (r < 0) return nullptr;
        const Met& m = met_[static_cast<std::size_t>(r)];
        return m.evaluated && m.v != kNoV ? v_arena_.data() + m.v : nullptr;
    }
    bool seen(index_t r) const {
        return r < 0 ? small_seen_[static_cast<std::size_t>(-1 - r)] != 0
                     : met_[static_cast<std::size_t>(r)].evaluated;
    }
    std::int32_t id(index_t r) const {
        return r < 0 ? static_cast<std::int32_t>(-1 - r) : met_[static_cast<std::size_t>(r)].id;
    }
    double lpj(index_t r) const {
        return r < 0 ? small_lpj_[static_cast<std::size_t>(-1 - r)]
                     : met_[static_cast<std::size_t>(r)].lpj;
    }
    // Stores a score from score_added_units as record r's lpj, with the child's Lambda b from
    // `scratch`, when r is a child that was only scored (pending) of the scored parent (table
    // `tb`); returns false (nothing stored) otherwise.
    bool set_score(index_t r, double lpj, const NeighbourTable& tb, const NeighbourScratch& scratch,
                   index_t h);
    // The neighbour table (ALGORITHM.md §3.13) of the terms with id e: kept with the shared
    // part for its states (their terms depend on the state alone, or, with keep_terms, on the
    // chain), built into scratch.table for the patch part's.
    NeighbourTable neighbour_table(std::int32_t e, NeighbourScratch& scratch);
    // The lpj of record r (for the patch `pd`), stored with the record; `v` is scratch.
    double evaluate(index_t r, const PatchData& pd, std::vector<double>& v);

    // Builds the terms of a child that was only scored (a no-op for every other id).
    void ensure(std::int32_t e) {
        if (e >= kLocal && local_[static_cast<std::size_t>(e - kLocal)].pending) materialise(e);
    }

    const StateTerms& terms(std::int32_t e) const {
        if (e >= kLocal) return local_[static_cast<std::size_t>(e - kLocal)];
        return e < n_small_ ? dv_.small[static_cast<std::size_t>(e)]
                            : entries_[static_cast<std::size_t>(e - n_small_)];
    }
    const double* data(std::int32_t e) const {
        if (e >= kLocal)
            return local_arena_.data() + local_[static_cast<std::size_t>(e - kLocal)].offset;
        return e < n_small_
                   ? dv_.small_arena.data() + dv_.small[static_cast<std::size_t>(e)].offset
                   : arena_.data() + entries_[static_cast<std::size_t>(e - n_small_)].offset;
    }
    // diag(W_A Lambda W_A^T) of a state with room for it (filled on first use), else nullptr.
    const double* diag(std::int32_t e) {
        if (e < n_small_) return nullptr;
        StateTerms& t = e >= kLocal ? local_[static_cast<std::size_t>(e - kLocal)]
                                    : entries_[static_cast<std::size_t>(e - n_small_)];
        if (!t.has_diag || !t.valid) return nullptr;
        double* base = (e >= kLocal ? local_arena_.data() : arena_.data()) + t.offset;
        if (!t.diag_ready) fill_diag(dv_, t, base);
        return base + terms_size(t.k, dv_.p->D, !dv_.diagonal_psi, false);
    }
    // Copies the terms of the given records of the current patch that live in the patch part
    // into the shared part, so that the next patch of a warm-start chain finds them there
    // instead of computing them from scratch. Their values depend on the patch's search, so a
    // caller that keeps terms must also empty the shared part (clear_shared) wherever its
    // chains start: then what a patch finds depends on its chain alone (ALGORITHM.md §3.12).
    void keep_terms(const index_t* records, index_t n);
    void clear_shared() {
        clear_tables();
        entries_.clear();
        keys_.clear();
        arena_.clear();
        std::fill(table_.begin(), table_.end(), -1);
    }
    void start_patch() {
        if (entries_.size() >= max_entries_) clear_shared();
        if (table_arena_.size() > kTableBudget) clear_tables();
        for (std::size_t slot : used_slots_) seen_table_[slot] = -1;
        used_slots_.clear();
        ++stamp_;
        met_.clear();
        met_keys_.clear();
        local_.clear();
        local_arena_.clear();
        v_arena_.clear();
    }

 private:
    static constexpr std::size_t kNoV = ~std::size_t{0};
    // Neighbour tables of shared states, by shared id (kNoV: none), in one arena of at most
    // about kTableBudget doubles (4 MiB: the tables of a few hundred states of ~10 units).
    static constexpr std::size_t kTableBudget = std::size_t{1} << 19;
    void clear_tables() {
        for (std::int32_t e : tabled_) table_offset_[static_cast<std::size_t>(e)] = kNoV;
        tabled_.clear();
        table_arena_.clear();
    }
    std::vector<std::size_t> table_offset_;
    std::vector<std::int32_t> tabled_;
    Arena table_arena_;
    struct Met {
        std::int32_t id;
        double lpj;
        bool evaluated;
        std::size_t v;  // offset of Lambda b in v_arena_ (kNoV: none)
    };
    std::int32_t terms_for(const std::uint64_t* bits, index_t parent,
                           const std::uint64_t* parent_bits, index_t rec);
    void materialise(std::int32_t e);
    std::int32_t add_local(const StateTerms& t) {
        local_.push_back(t);
        return kLocal + static_cast<std::int32_t>(local_.size() - 1);
    }
    // The shared entry of `bits` (-1: none; `slot` is then where it would go).
    std::int32_t find_shared(const std::uint64_t* bits, std::size_t& slot) const {
        for (slot = hash(bits) & mask_;; slot = (slot + 1) & mask_) {
            const std::int32_t e = table_[slot];
            if (e < 0) return -1;
            if (same_state(keys_.data() + static_cast<std::size_t>(e) * words_, bits, words_))
                return e;
        }
    }
    // Adds terms for `bits` at the empty `slot` found by find_shared; returns the entry.
    std::int32_t add_shared(const std::uint64_t* bits, const StateTerms& t, std::size_t slot) {
        const auto e = static_cast<std::int32_t>(entries_.size());
        keys_.insert(keys_.end(), bits, bits + words_);
        entries_.push_back(t);
        table_[slot] = e;
        if (2 * entries_.size() > table_.size()) resize_table(2 * table_.size());
        return e;
    }
    std::size_t seen_mask() const { return seen_table_.size() - 1; }
    void grow_seen_table() {
        seen_table_.assign(2 * seen_table_.size(), -1);
        used_slots_.clear();
        for (std::size_t r = 0; r < met_.size(); ++r) {
            std::size_t slot = hash(met_keys_.data() + r * words_) & seen_mask();
            while (seen_table_[slot] >= 0) slot = (slot + 1) & seen_mask();
            seen_table_[slot] = static_cast<std::int32_t>(r);
            used_slots_.push_back(slot);
        }
    }
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
    index_t n_small_;
    std::size_t max_entries_;
    // the shared part
    std::vector<std::int32_t> table_;
    std::size_t mask_ = 0;
    std::vector<std::uint64_t> keys_;
    std::vector<StateTerms> entries_;
    Arena arena_;
    TermsScratch scratch_;
    // the patch part
    std::vector<std::int32_t> seen_table_;
    std::vector<std::size_t> used_slots_;
    std::vector<std::uint64_t> met_keys_;
    std::vector<Met> met_;
    std::vector<StateTerms> local_;
    Arena local_arena_;
    Arena v_arena_;
    std::vector<double> lazy_scratch_;
    std::vector<std::uint64_t> small_stamp_;  // the patch (stamp_) a small state was last met in
    std::vector<char> small_seen_;
    std::vector<double> small_lpj_;
    std::uint64_t stamp_ = 1;
};

// Posterior quantities of one (patch, state): b = W_A^T (y - W_A mu_A) in v[k, 2k), v[0, k) =
// Lambda b, and the log-pseudo-joint (ALGORITHM.md §3.2) evaluated from W^T y in O(k^2).
double log_pseudo_joint(const Derived& dv, const StateTerms& t, const double* data,
                        const PatchData& pd, std::vector<double>& v);

constexpr index_t kStatsBlock = 32;  // patches per dense statistics update

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
