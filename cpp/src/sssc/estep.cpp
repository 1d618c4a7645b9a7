// The SSSC E-step: per patch, the evolutionary search of its state set and the truncated
// posterior with its statistics and estimates (ALGORITHM.md §3.4-§3.8, §4.2-§4.6); over patches,
// the fixed-chunk reduction (§7.2).
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>

#include "detail.hpp"
#include "zse/parallel.hpp"
#include "zse/reduction.hpp"
#include "zse/simd.hpp"

namespace zse {
namespace sssc_detail {

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

void flush_block(Workspace& ws, SSSCStats& acc, index_t H, index_t D) {
    const index_t rows = ws.block_rows;
    if (rows == 0) return;
    add_transposed_product(acc.B_mm.data(), ws.block_esz.data(), ws.block_esz.data(), rows, H, H);
    add_transposed_product(acc.B_s_sz.data(), ws.block_es.data(), ws.block_esz.data(), rows, H, H);
    // Y_sz transposed, so that the rows of units off a patch's support are skipped.
    add_transposed_product(ws.chunk_Ysz_T.data(), ws.block_esz.data(), ws.block_y.data(), rows, H,
                           D);
    ws.block_rows = 0;
}

void finish_chunk(Workspace& ws, SSSCStats& acc, index_t H, index_t D) {
    flush_block(ws, acc, H, D);
    for (index_t d = 0; d < D; ++d)
        for (index_t h = 0; h < H; ++h) acc.Y_sz[d * H + h] += ws.chunk_Ysz_T[h * D + d];
}

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
    ws.expanded.clear();
    ws.cand.assign(Kn, Kn + S_ * words_);
    ws.cand_lpj.resize(S_);
    ws.cand_terms.resize(S_);
    for (index_t s = 0; s < S_; ++s) {
        const index_t r = cache.meet(Kn + s * words_, StateCache::kNoParent, nullptr);
        ws.cand_terms[s] = r;
        ws.cand_lpj[s] = evaluate(cache, ws, r, acc);
    }
    if (opt_.evolve) {
        evolve(job, cache, ws, acc);
        std::copy(ws.cand.begin(), ws.cand.end(), Kn);
    }
    if (job.lpj != nullptr) std::copy(ws.cand_lpj.begin(), ws.cand_lpj.end(), job.lpj);
    if (job.keep_terms) cache.keep_terms(ws.cand_terms.data(), S_);

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
        const std::int32_t entry = cache.id(ws.cand_terms[s]);
        cache.ensure(entry);
        const index_t k = cache.terms(entry).k;
        if (k == 0) continue;  // the zero state adds nothing to the moments
        const double* diag = want_var ? cache.diag(entry) : nullptr;
        const StateTerms& t = cache.terms(entry);
        const double* data = cache.data(entry);
        const double* active = data;
        const double* mu = data + k;
        const double* Lambda = lambda_of(t, data);
        // kappa = mu_A + Lambda b / sigma2, with the Lambda b the state's evaluation kept, else
        // from log_pseudo_joint (which leaves it in v).
        const double* lambda_b = cache.lambda_b(ws.cand_terms[s]);
        if (lambda_b == nullptr) {
            log_pseudo_joint(dv_, t, data, pd, ws.v);
            lambda_b = ws.v.data();
        }
        ws.kappa.resize(k);
        for (index_t i = 0; i < k; ++i) ws.kappa[i] = mu[i] + lambda_b[i] * dv_.inv_s2;
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
            // diag(W_A Lambda W_A^T) is stored for cached states; for the shared table's states
            // (k <= 2) it is formed here by the same row_spread.
            for (index_t d = 0; d < D; ++d) {
                const double* w = p_.W + d * H;
                double wk = 0.0;
                for (index_t i = 0; i < k; ++i)
                    wk += w[static_cast<index_t>(active[i])] * ws.kappa[i];
                const double spread = diag != nullptr ? diag[d] : row_spread(w, active, Lambda, k);
                ws.second[d] += q * (wk * wk + spread);
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

}  // namespace sssc_detail

using namespace sssc_detail;

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

FixedChunks sssc_chunks(index_t N) {
    return fixed_chunks(N, 2048);
}

std::vector<SSSCStats> sssc_estep_partials(const double* Y, index_t N, const SSSCParams& params,
                                           std::uint64_t* K, index_t S, const EStepOptions& options,
                                           ChunkShare share, int n_threads) {
    require(S >= 1, "S must be >= 1");
    const EStepRunner runner(params, S, options);
    const FixedChunks chunks = sssc_chunks(N);
    require(share.first >= 0 && share.first <= share.last && share.last <= chunks.count,
            "the chunk share lies outside the patches' chunks");
    const index_t words = state_words(params.H);
    // One cache and workspace per thread (never shared, so no locks), created in the region.
    // Few states recur across patches, so a small cache that stays in L2 is faster than a large
    // one (measured with bench_estep: 2^12 entries beat 2^15 and 2^18).
    std::vector<std::unique_ptr<StateCache>> caches(
        static_cast<std::size_t>(std::max(1, n_threads)));
    std::vector<std::unique_ptr<Workspace>> workspaces(caches.size());
    return chunk_partials<SSSCStats>(share, n_threads, [&](index_t c, SSSCStats& st) {
#ifdef _OPENMP
        const std::size_t tid = static_cast<std::size_t>(omp_get_thread_num());
#else
        const std::size_t tid = 0;
#endif
        if (!caches[tid]) {
            caches[tid] =
                std::make_unique<StateCache>(runner.derived(), words, std::size_t{1} << 12);
            workspaces[tid] = std::make_unique<Workspace>();
        }
        Workspace& ws = *workspaces[tid];
        if (options.want_stats) {
            st.reset(params.H, params.D);
            ws.block_es.resize(static_cast<std::size_t>(kStatsBlock * params.H));
            ws.block_esz.resize(ws.block_es.size());
            ws.block_y.resize(static_cast<std::size_t>(kStatsBlock * params.D));
            ws.chunk_Ysz_T.assign(static_cast<std::size_t>(params.H * params.D), 0.0);
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
        if (options.want_stats) finish_chunk(ws, st, params.H, params.D);
    });
}

SSSCStats sssc_estep(const double* Y, index_t N, const SSSCParams& params, std::uint64_t* K,
                     index_t S, const EStepOptions& options, int n_threads) {
    const FixedChunks chunks = sssc_chunks(N);
    std::vector<SSSCStats> partials =
        sssc_estep_partials(Y, N, params, K, S, options, ChunkShare{0, chunks.count}, n_threads);
    SSSCStats total =
        sum_in_chunk_order(partials, [](SSSCStats& a, const SSSCStats& b) { a.add(b); });
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
            out[n * M + m] =
                log_pseudo_joint(dv, cache.terms(entries[m]), cache.data(entries[m]), pd, v) +
                dv.log_c;
        }
    });
}

}  // namespace zse
