// Internals of the SSSC kernels, part 2: the per-thread memo of state terms (ALGORITHM.md §3.9,
// §3.12) and the arena its arrays live in.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "terms.hpp"

namespace zse {
namespace sssc_detail {

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

}  // namespace sssc_detail
}  // namespace zse
