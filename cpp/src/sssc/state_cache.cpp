// The per-state cache of the SSSC E-step: the shared part keyed by state, the patch part with
// children built from their parents (ALGORITHM.md §3.9, §3.12).
#include <algorithm>
#include <cmath>

#include "detail.hpp"
#include "zse/linalg.hpp"
#include "zse/simd.hpp"

namespace zse {
namespace sssc_detail {

void StateCache::compute(const std::uint64_t* bits, StateTerms& t) {
    std::vector<index_t>& active = scratch_.active;
    active.clear();
    for (index_t w = 0; w < words_; ++w) {
        std::uint64_t word = bits[w];
        while (word) {
            active.push_back(w * 64 + __builtin_ctzll(word));
            word &= word - 1;
        }
    }
    const index_t k = static_cast<index_t>(active.size());
    t.has_diag = dv_.want_diag;
    t.offset = arena_.grow(terms_size(k, dv_.p->D, !dv_.diagonal_psi, t.has_diag));
    compute_state_terms(dv_, active.data(), k, t, arena_.data() + t.offset, scratch_);
}

std::int32_t StateCache::terms_for(const std::uint64_t* bits, index_t parent,
                                   const std::uint64_t* parent_bits, index_t rec) {
    if (parent == kNoParent) return get(bits);
    // One unit added or removed: the child is built from its parent unless it is small (the
    // shared table has it).
    index_t flipped = -1, n_diff = 0;
    bool added = false;
    for (index_t w = 0; w < words_; ++w) {
        const std::uint64_t diff = bits[w] ^ parent_bits[w];
        if (diff == 0) continue;
        n_diff += __builtin_popcountll(diff);
        flipped = w * 64 + __builtin_ctzll(diff);
        added = (diff & bits[w]) != 0;
    }
    const std::int32_t parent_id = id(parent);
    ensure(parent_id);
    const index_t k = terms(parent_id).k + (added ? 1 : -1);
    if (n_diff != 1 || k <= 2 || !terms(parent_id).valid) return get(bits);
    if (added && parent >= 0 && met_[static_cast<std::size_t>(parent)].v != kNoV) {
        StateTerms child;  // scored first, built when needed
        child.k = k;
        child.pending = true;
        child.parent_rec = parent;
        child.unit = flipped;
        child.rec = rec;
        return add_local(child);
    }
    index_t position = 0;  // of the removed unit among the parent's
    if (!added) {
        const double* pbase = data(parent_id);
        const index_t pk = terms(parent_id).k;
        while (position < pk && static_cast<index_t>(pbase[position]) != flipped) ++position;
        if (position == pk) return get(bits);
    }
    const std::size_t offset = local_arena_.grow(
        terms_size(k, dv_.p->D, !dv_.diagonal_psi, dv_.want_diag));  // may move the arena
    StateTerms child;
    child.offset = offset;
    child.has_diag = dv_.want_diag;
    double* base = local_arena_.data() + offset;
    const StateTerms& pt = terms(parent_id);
    const double* pbase = data(parent_id);
    const bool built = added ? extend_state_terms(dv_, pt, pbase, flipped, child, base)
                             : shrink_state_terms(dv_, pt, pbase, position, child, base);
    if (!built) {
        local_arena_.shrink(offset);
        return get(bits);
    }
    return add_local(child);
}

void StateCache::materialise(std::int32_t e) {
    const std::size_t i = static_cast<std::size_t>(e - kLocal);
    const index_t parent_rec = local_[i].parent_rec, unit = local_[i].unit, rec = local_[i].rec;
    const std::int32_t parent_id = id(parent_rec);
    ensure(parent_id);
    const index_t k = local_[i].k;
    const std::size_t offset =
        local_arena_.grow(terms_size(k, dv_.p->D, !dv_.diagonal_psi, dv_.want_diag));
    StateTerms child;
    child.offset = offset;
    child.has_diag = dv_.want_diag;
    if (!extend_state_terms(dv_, terms(parent_id), data(parent_id), unit, child,
                            local_arena_.data() + offset)) {
        // From scratch instead (ascending units): the Lambda b kept for the record is in the
        // parent's order, so it is dropped and this state scores its children eagerly.
        const std::uint64_t* bits = met_keys_.data() + static_cast<std::size_t>(rec) * words_;
        std::vector<index_t>& active = scratch_.active;
        active.clear();
        for (index_t w = 0; w < words_; ++w)
            for (std::uint64_t word = bits[w]; word; word &= word - 1)
                active.push_back(w * 64 + __builtin_ctzll(word));
        child = StateTerms();
        child.offset = offset;
        child.has_diag = dv_.want_diag;
        compute_state_terms(dv_, active.data(), k, child, local_arena_.data() + offset, scratch_);
        met_[static_cast<std::size_t>(rec)].v = kNoV;
    } else if (parent_rec >= 0 && met_[static_cast<std::size_t>(parent_rec)].v == kNoV) {
        met_[static_cast<std::size_t>(rec)].v = kNoV;  // the parent's order changed: see above
    }
    local_[i] = child;
}

void StateCache::keep_terms(const index_t* records, index_t n) {
    const bool full = !dv_.diagonal_psi;
    for (index_t i = 0; i < n; ++i) {
        const index_t r = records[i];
        if (r < 0) continue;  // the shared table's states
        const std::int32_t e = met_[static_cast<std::size_t>(r)].id;
        if (e < kLocal) continue;  // already shared
        ensure(e);
        const StateTerms& t = local_[static_cast<std::size_t>(e - kLocal)];
        if (!t.valid) continue;
        const std::uint64_t* bits = met_keys_.data() + static_cast<std::size_t>(r) * words_;
        std::size_t slot;
        if (find_shared(bits, slot) >= 0) continue;
        StateTerms kept = t;
        const std::size_t size = terms_size(t.k, dv_.p->D, full, t.has_diag);
        kept.offset = arena_.grow(size);
        const double* from = local_arena_.data() + t.offset;
        std::copy(from, from + size, arena_.data() + kept.offset);
        add_shared(bits, kept, slot);
    }
}

NeighbourTable StateCache::neighbour_table(std::int32_t e, NeighbourScratch& scratch) {
    const StateTerms& t = terms(e);
    const index_t H = dv_.p->H;
    const std::size_t size = neighbour_table_size(t.k, H);
    if (e >= kLocal) {
        scratch.table.resize(size);
        build_neighbour_table(dv_, t, data(e), scratch, scratch.table.data());
        return neighbour_table_view(scratch.table.data(), t.k, H);
    }
    const std::size_t id = static_cast<std::size_t>(e);
    if (id >= table_offset_.size()) table_offset_.resize(id + 1 + id / 2, kNoV);
    if (table_offset_[id] == kNoV) {
        const std::size_t offset = table_arena_.grow(size);
        build_neighbour_table(dv_, t, data(e), scratch, table_arena_.data() + offset);
        table_offset_[id] = offset;
        tabled_.push_back(e);
    }
    return neighbour_table_view(table_arena_.data() + table_offset_[id], t.k, H);
}

bool StateCache::set_score(index_t r, double lpj, const NeighbourTable& tb,
                           const NeighbourScratch& scratch, index_t h) {
    if (r < 0) return false;
    Met& m = met_[static_cast<std::size_t>(r)];
    if (m.id < kLocal) return false;
    const StateTerms& t = local_[static_cast<std::size_t>(m.id - kLocal)];
    if (!t.pending || t.k != tb.k + 1) return false;
    const std::size_t at = v_arena_.grow(static_cast<std::size_t>(t.k));
    added_unit_lambda_b(dv_, tb, scratch, h, v_arena_.data() + at);
    m.v = at;
    m.lpj = lpj;
    m.evaluated = true;
    return true;
}

double StateCache::evaluate(index_t r, const PatchData& pd, std::vector<double>& v) {
    double lpj;
    if (r < 0) {
        const std::int32_t e = id(r);
        lpj = log_pseudo_joint(dv_, terms(e), data(e), pd, v);
        small_lpj_[static_cast<std::size_t>(-1 - r)] = lpj;
        small_seen_[static_cast<std::size_t>(-1 - r)] = 1;
        return lpj;
    }
    Met& m = met_[static_cast<std::size_t>(r)];
    const std::int32_t e = m.id;
    const StateTerms* t = e >= kLocal ? &local_[static_cast<std::size_t>(e - kLocal)] : nullptr;
    if (t != nullptr && t->pending && met_[static_cast<std::size_t>(t->parent_rec)].v == kNoV)
        materialise(e);  // the parent has no Lambda b to score from (defensive: not reached)
    if (t != nullptr && t->pending) {
        const Met& parent = met_[static_cast<std::size_t>(t->parent_rec)];
        const std::int32_t pe = parent.id;
        const std::size_t at = v_arena_.grow(static_cast<std::size_t>(t->k));
        lpj = child_log_pseudo_joint(dv_, terms(pe), data(pe), v_arena_.data() + parent.v, t->unit,
                                     pd, lazy_scratch_, v_arena_.data() + at);
        if (!std::isnan(lpj)) {
            m.v = at;
        } else {
            v_arena_.shrink(at);
            materialise(e);
            lpj = log_pseudo_joint(dv_, terms(e), data(e), pd, v);
        }
    } else {
        lpj = log_pseudo_joint(dv_, terms(e), data(e), pd, v);
        const index_t k = terms(e).k;
        if (terms(e).valid && k > 0) {
            m.v = v_arena_.grow(static_cast<std::size_t>(k));
            std::copy(v.begin(), v.begin() + k, v_arena_.data() + m.v);
        }
    }
    m.lpj = lpj;
    m.evaluated = true;
    return lpj;
}

}  // namespace sssc_detail
}  // namespace zse
