// The per-patch state search of the SSSC E-step: the evolutionary sweeps (ALGORITHM.md
// §4.2-§4.6) and the expansions of the neighbours search (§4.10), both keeping the S best states
// met; EStepRunner::run_patch (estep.cpp) drives them.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "detail.hpp"

namespace zse {
namespace sssc_detail {

// The candidates' indices by decreasing lpj, ties in index order (so the older state wins):
// the order of a stable sort. The candidates usually start with the previous sweep's kept set,
// already in that order: only the rest is sorted (std::sort with the index as tie-break), then
// merged in `merged` (no allocation once it has grown).
namespace {
void order_by_lpj(const std::vector<double>& lpj, std::vector<index_t>& order,
                  std::vector<index_t>& merged) {
    const index_t n = static_cast<index_t>(lpj.size());
    order.resize(lpj.size());
    std::iota(order.begin(), order.end(), 0);
    index_t sorted = std::min<index_t>(n, 1);
    while (sorted < n && !(lpj[sorted] > lpj[sorted - 1])) ++sorted;
    if (sorted == n) return;
    auto before = [&](index_t a, index_t b) {
        return lpj[a] > lpj[b] || (lpj[a] == lpj[b] && a < b);
    };
    std::sort(order.begin() + sorted, order.end(), before);
    merged.resize(lpj.size());
    std::merge(order.begin(), order.begin() + sorted, order.begin() + sorted, order.end(),
               merged.begin(), before);
    order.swap(merged);
}
}  // namespace

// tvlearn/evo semantics (ALGORITHM.md §4.2-§4.6): generation 0 selects parents from K_n, later
// generations from the previous generation's children; only children not seen before are
// evaluated and become candidates; K_n keeps the S best of old and new. (state, lpj) pairs always
// travel together (pitfall §8.4). The neighbours search (§4.10) replaces a sweep's generations
// by one expansion.
void EStepRunner::evolve(const PatchJob& job, StateCache& cache, Workspace& ws,
                         SSSCStats& counters) const {
    const EvoConfig& evo = opt_.evo;
    const bool neighbours = evo.method == StateSearch::neighbours;
    Rng rng(opt_.seed, opt_.epoch, job.stream);
    index_t unchanged = 0;  // sweeps in a row that kept the same state set
    for (index_t sweep = 0; sweep < job.n_sweeps; ++sweep) {
        const index_t n_old = static_cast<index_t>(ws.cand_lpj.size());
        // A set whose every state near the best was expanded is a local optimum: no single flip
        // of those states improves it (§4.10).
        if (neighbours && !expand_best(cache, ws, counters)) break;
        if (!neighbours) {
            ws.pool.assign(ws.cand.begin(), ws.cand.end());
            ws.pool_lpj.assign(ws.cand_lpj.begin(), ws.cand_lpj.end());
            ws.pool_terms.assign(ws.cand_terms.begin(), ws.cand_terms.end());
        }
        for (index_t g = 0; !neighbours && g < evo.n_generations; ++g) {
            const index_t pool_n = static_cast<index_t>(ws.pool_lpj.size());
            select_parents(ws.pool_lpj.data(), pool_n, evo.n_parents, evo.selection, rng,
                           ws.parents);
            if (ws.parents.empty()) break;
            ws.parent_bits.clear();
            ws.parent_terms.clear();
            for (index_t i : ws.parents) {
                ws.parent_bits.insert(ws.parent_bits.end(), ws.pool.begin() + i * words_,
                                      ws.pool.begin() + (i + 1) * words_);
                ws.parent_terms.push_back(ws.pool_terms[i]);
            }
            ws.children.clear();
            mutate(ws.parent_bits.data(), static_cast<index_t>(ws.parents.size()), p_.H, evo, rng,
                   ws.children);
            ws.next_pool.clear();
            ws.next_pool_lpj.clear();
            ws.next_pool_terms.clear();
            const index_t n_children = static_cast<index_t>(ws.children.size()) / words_;
            // Mutations without crossover give each parent n_children children in order; their
            // terms are built from the parent's where a child adds or removes one unit (§3.12).
            const bool from_parent =
                evo.mutation == Mutation::randflip || evo.mutation == Mutation::sparseflip;
            for (index_t c = 0; c < n_children; ++c) {
                const std::uint64_t* child = ws.children.data() + c * words_;
                const index_t parent = from_parent ? c / evo.n_children : -1;
                const index_t r =
                    cache.meet(child, parent >= 0 ? ws.parent_terms[parent] : StateCache::kNoParent,
                               parent >= 0 ? ws.parent_bits.data() + parent * words_ : nullptr);
                double lpj;
                if (cache.seen(r)) {
                    lpj = cache.lpj(r);
                } else {
                    lpj = evaluate(cache, ws, r, counters);
                    ws.cand.insert(ws.cand.end(), child, child + words_);
                    ws.cand_lpj.push_back(lpj);
                    ws.cand_terms.push_back(r);
                    ++counters.n_new_states;
                }
                ws.next_pool.insert(ws.next_pool.end(), child, child + words_);
                ws.next_pool_lpj.push_back(lpj);
                ws.next_pool_terms.push_back(r);
            }
            ws.pool.swap(ws.next_pool);
            ws.pool_lpj.swap(ws.next_pool_lpj);
            ws.pool_terms.swap(ws.next_pool_terms);
            if (ws.pool_lpj.empty()) break;
        }
        // Keep the S best; ties go to the older state, so the best state is never lost.
        order_by_lpj(ws.cand_lpj, ws.order, ws.merged);
        ws.kept.resize(static_cast<std::size_t>(S_ * words_));
        ws.kept_lpj.resize(S_);
        ws.kept_terms.resize(S_);
        bool changed = false;
        for (index_t i = 0; i < S_; ++i) {
            const index_t j = ws.order[i];
            std::copy(ws.cand.begin() + j * words_, ws.cand.begin() + (j + 1) * words_,
                      ws.kept.begin() + i * words_);
            ws.kept_lpj[i] = ws.cand_lpj[j];
            ws.kept_terms[i] = ws.cand_terms[j];
            if (j >= n_old) {
                ++counters.n_replaced;
                changed = true;
            }
        }
        ws.cand.swap(ws.kept);
        ws.cand_lpj.swap(ws.kept_lpj);
        ws.cand_terms.swap(ws.kept_terms);
        // A converged set: the search has stopped finding better states (ALGORITHM.md §4.9).
        unchanged = changed ? 0 : unchanged + 1;
        if (job.patience > 0 && unchanged >= job.patience) break;
    }
}

// One expansion of the neighbours search (ALGORITHM.md §4.10): the best state of the set not
// expanded yet in this patch, if its lpj is within kExpandWindow of the best, gets every
// single-unit flip tried. All children are scored from the parent's terms (score_added_units,
// score_removed_units) and only those that could enter the S best are met: at most S that add a
// unit (the best scores) and every such removal. False when no state was left to expand.
bool EStepRunner::expand_best(StateCache& cache, Workspace& ws, SSSCStats& counters) const {
    const index_t H = p_.H, n = static_cast<index_t>(ws.cand_lpj.size());
    order_by_lpj(ws.cand_lpj, ws.order, ws.merged);
    if (n == 0 || ws.cand_lpj[ws.order[0]] == kMinusInf) return false;
    const double best = ws.cand_lpj[ws.order[0]];
    const double threshold = n >= S_ ? ws.cand_lpj[ws.order[S_ - 1]] : kMinusInf;
    index_t pick = -1;
    for (index_t i : ws.order) {
        if (ws.cand_lpj[i] < best - kExpandWindow) break;
        if (std::find(ws.expanded.begin(), ws.expanded.end(), ws.cand_terms[i]) ==
            ws.expanded.end()) {
            pick = i;
            break;
        }
    }
    if (pick < 0) return false;
    const index_t parent = ws.cand_terms[pick];
    ws.expanded.push_back(parent);
    std::uint64_t parent_bits[kMaxWords];
    std::copy(ws.cand.begin() + pick * words_, ws.cand.begin() + (pick + 1) * words_, parent_bits);
    const std::int32_t e = cache.id(parent);
    cache.ensure(e);
    if (!cache.terms(e).valid) return true;
    // The scores of every child by unit (score_added_units leaves -inf at the parent's units,
    // which the removals' scores then fill).
    const StateTerms& pt = cache.terms(e);
    const double* pdata = cache.data(e);
    ws.scores.resize(H);
    const NeighbourTable table = cache.neighbour_table(e, ws.neighbour_scratch);
    score_added_units(dv_, pt, pdata, table, ws.pd, ws.neighbour_scratch, ws.scores.data());
    ws.removal_scores.resize(pt.k);
    score_removed_units(dv_, pt, pdata, ws.pd, ws.neighbour_scratch, ws.removal_scores.data());
    for (index_t j = 0; j < pt.k; ++j)
        ws.scores[static_cast<index_t>(pdata[j])] = ws.removal_scores[j];
    // The bar to enter: the S-th best lpj of the set together with every child not in it (a
    // child one flip from the parent that is already a candidate counts once, as the candidate).
    // A child below it cannot be among the S best after this sweep, and the S-th best only rises,
    // so it is not met at all. Children met earlier and dropped lie below the set's S-th best
    // and do not move the bar.
    ws.child_in_set.assign(H, 0);
    for (index_t i = 0; i < n; ++i) {
        const std::uint64_t* c = ws.cand.data() + i * words_;
        index_t flips = 0, unit = -1;
        for (index_t w = 0; w < words_ && flips <= 1; ++w) {
            const std::uint64_t x = c[w] ^ parent_bits[w];
            if (x == 0) continue;
            flips += __builtin_popcountll(x);
            unit = w * 64 + __builtin_ctzll(x);
        }
        if (flips == 1) ws.child_in_set[unit] = 1;
    }
    ws.bar_values.assign(ws.cand_lpj.begin(), ws.cand_lpj.end());
    for (index_t h = 0; h < H; ++h)
        if (!ws.child_in_set[h] && std::isfinite(ws.scores[h]))
            ws.bar_values.push_back(ws.scores[h]);
    double bar = threshold;
    if (static_cast<index_t>(ws.bar_values.size()) >= S_) {
        std::nth_element(ws.bar_values.begin(), ws.bar_values.begin() + (S_ - 1),
                         ws.bar_values.end(), std::greater<double>());
        bar = std::max(threshold, ws.bar_values[S_ - 1]);
    }
    // A score within rounding of the bar is met: the S best are chosen among exact values. NaN
    // (a numerically unsafe update) is met too and evaluated the exact way.
    const double margin = 1e-7 * (1.0 + std::abs(bar));
    auto may_enter = [&](index_t h) {
        return ws.scores[h] > bar - margin || std::isnan(ws.scores[h]);
    };
    ws.flips.clear();  // the removals, then the additions
    for (index_t h = 0; h < H; ++h)
        if (get_bit(parent_bits, h) && may_enter(h)) ws.flips.push_back(h);
    const std::size_t n_removals = ws.flips.size();
    for (index_t h = 0; h < H; ++h)
        if (!get_bit(parent_bits, h) && may_enter(h)) ws.flips.push_back(h);
    if (static_cast<index_t>(ws.flips.size() - n_removals) > S_) {
        // More additions than the set can take: the S best scores (ties to the lower unit; NaN
        // ranks last), compared by key so that the selection's comparisons have no NaN tests.
        ws.flip_keys.resize(H);
        for (std::size_t f = n_removals; f < ws.flips.size(); ++f) {
            const index_t h = ws.flips[f];
            ws.flip_keys[h] = std::isnan(ws.scores[h]) ? kMinusInf : ws.scores[h];
        }
        const double* key = ws.flip_keys.data();
        auto better = [key](index_t a, index_t b) {
            return key[a] > key[b] || (key[a] == key[b] && a < b);
        };
        std::nth_element(ws.flips.begin() + n_removals, ws.flips.begin() + n_removals + S_,
                         ws.flips.end(), better);
        ws.flips.resize(n_removals + S_);
        std::sort(ws.flips.begin() + n_removals, ws.flips.end());
    }
    std::uint64_t child[kMaxWords];
    for (std::size_t f = 0; f < ws.flips.size(); ++f) {
        const index_t h = ws.flips[f];
        std::copy(parent_bits, parent_bits + words_, child);
        flip_bit(child, h);
        const index_t r = cache.meet(child, parent, parent_bits);
        if (cache.seen(r)) continue;
        // An added unit's score is its lpj (the same formulas as child_log_pseudo_joint, for
        // every unit at once) when the child is kept lazily; other children are evaluated.
        const bool scored = f >= n_removals && !std::isnan(ws.scores[h]) &&
                            cache.set_score(r, ws.scores[h], table, ws.neighbour_scratch, h);
        if (scored) ++counters.n_lpj;
        const double lpj = scored ? ws.scores[h] : evaluate(cache, ws, r, counters);
        ws.cand.insert(ws.cand.end(), child, child + words_);
        ws.cand_lpj.push_back(lpj);
        ws.cand_terms.push_back(r);
        ++counters.n_new_states;
    }
    return true;
}

}  // namespace sssc_detail
}  // namespace zse
