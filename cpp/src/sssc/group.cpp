// Groups of similar patches sharing their spike: the group's state search and the shared
// posterior's estimate of one member (ALGORITHM.md §3.16).
#include "group.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace zse {
namespace sssc_detail {
namespace {

// States further than this many nats below the group's best carry less than e^-30 of its
// posterior weight: left out of the moments (their terms would cost O(D k^2) each).
constexpr double kMomentWindow = 30.0;

double log_prior_part(const Derived& dv, const StateTerms& t, const double* data) {
    double sum = 0.0;
    for (index_t i = 0; i < t.k; ++i) sum += dv.logit[static_cast<index_t>(data[i])];
    return sum;
}

std::uint64_t hash_state(const std::uint64_t* bits, index_t words) {
    std::uint64_t h = 0x9E3779B97F4A7C15ull;
    for (index_t w = 0; w < words; ++w) {
        h ^= bits[w] + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
        h *= 0xBF58476D1CE4E5B9ull;
    }
    return h ^ (h >> 31);
}

// The slot of `bits` in the workspace's hash table: where it is, or the empty slot it would go to.
std::size_t find_slot(const GroupWorkspace& gw, const std::uint64_t* bits, index_t words) {
    const std::size_t mask = gw.slots.size() - 1;
    std::size_t slot = hash_state(bits, words) & mask;
    while (true) {
        const std::int32_t c = gw.slots[slot];
        if (c < 0 || std::equal(bits, bits + words, gw.cand.data() + c * words)) return slot;
        slot = (slot + 1) & mask;
    }
}

}  // namespace

void load_group(const Derived& dv, const double* Y, index_t K, GroupWorkspace& gw) {
    const SSSCParams& p = *dv.p;
    gw.members.resize(static_cast<std::size_t>(K));
    for (index_t i = 0; i < K; ++i) {
        PatchData& pd = gw.members[static_cast<std::size_t>(i)];
        pd.y = Y + i * p.D;
        pd.Wy.resize(static_cast<std::size_t>(p.H));
        project_patch(p.W, pd.y, p.D, p.H, pd.Wy.data());
        pd.yy = 0.0;
        for (index_t d = 0; d < p.D; ++d) pd.yy += pd.y[d] * pd.y[d];
    }
}

double group_log_pseudo_joint(const Derived& dv, StateCache& cache, std::int32_t e,
                              GroupWorkspace& gw) {
    const StateTerms& t = cache.terms(e);
    if (!t.valid) return kMinusInf;
    const double* data = cache.data(e);
    double sum = 0.0;
    for (const PatchData& pd : gw.members) sum += log_pseudo_joint(dv, t, data, pd, gw.v);
    const double K = static_cast<double>(gw.members.size());
    sum -= (K - 1.0) * log_prior_part(dv, t, data);
    return std::isfinite(sum) ? sum : kMinusInf;
}

double group_estimate(const Derived& dv, StateCache& cache, GroupWorkspace& gw,
                      const std::uint64_t* start, index_t S, index_t sweeps, double* estimate,
                      double* variance) {
    const SSSCParams& p = *dv.p;
    const index_t H = p.H, D = p.D, words = state_words(H);
    const double K = static_cast<double>(gw.members.size());
    cache.start_patch();  // ids from get() stay valid until the next group starts
    gw.cand.clear();
    gw.lpj.clear();
    gw.entries.clear();
    gw.expanded.clear();
    gw.slots.assign(std::size_t{1} << 10, -1);
    // Adds `bits` unless met already; lpj NaN: evaluated from the state's terms.
    auto add = [&](const std::uint64_t* bits, double lpj) {
        std::size_t slot = find_slot(gw, bits, words);
        if (gw.slots[slot] >= 0) return;
        const auto c = static_cast<std::int32_t>(gw.lpj.size());
        gw.cand.insert(gw.cand.end(), bits, bits + words);
        gw.slots[slot] = c;
        std::int32_t e = -1;
        if (std::isnan(lpj)) {
            e = cache.get(bits);
            lpj = group_log_pseudo_joint(dv, cache, e, gw);
        }
        gw.entries.push_back(e);
        gw.lpj.push_back(lpj);
        gw.expanded.push_back(0);
        if (4 * gw.lpj.size() > gw.slots.size()) {  // keep the table at most a quarter full
            gw.slots.assign(2 * gw.slots.size(), -1);
            for (std::int32_t i = 0; i <= c; ++i)
                gw.slots[find_slot(gw, gw.cand.data() + i * words, words)] = i;
        }
    };
    auto entry = [&](index_t c) {
        std::int32_t& e = gw.entries[static_cast<std::size_t>(c)];
        if (e < 0) e = cache.get(gw.cand.data() + c * words);
        return e;
    };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (index_t s = 0; s < S; ++s) add(start + s * words, nan);
    auto best_of = [&]() {
        return static_cast<index_t>(std::max_element(gw.lpj.begin(), gw.lpj.end()) -
                                    gw.lpj.begin());
    };
    gw.added.resize(static_cast<std::size_t>(H));
    gw.member_added.resize(static_cast<std::size_t>(H));
    gw.child.resize(static_cast<std::size_t>(words));
    for (index_t sweep = 0; sweep < sweeps; ++sweep) {
        const index_t best = best_of();
        if (gw.expanded[static_cast<std::size_t>(best)] || gw.lpj[best] == kMinusInf) break;
        gw.expanded[static_cast<std::size_t>(best)] = 1;
        const std::int32_t e = entry(best);
        const StateTerms& t = cache.terms(e);
        if (!t.valid) break;
        const index_t k = t.k;
        // Every flip's score, summed over the members (the parent's arrays stay in place:
        // nothing is added to the cache until all members are scored).
        const NeighbourTable table = cache.neighbour_table(e, gw.neighbour_scratch);
        const double* pdata = cache.data(e);
        gw.removed.assign(static_cast<std::size_t>(k), 0.0);
        gw.member_removed.resize(static_cast<std::size_t>(k));
        std::fill(gw.added.begin(), gw.added.end(), 0.0);
        for (const PatchData& pd : gw.members) {
            score_added_units(dv, t, pdata, table, pd, gw.neighbour_scratch,
                              gw.member_added.data());
            for (index_t h = 0; h < H; ++h) gw.added[h] += gw.member_added[h];
            if (k > 0) {
                score_removed_units(dv, t, pdata, pd, gw.neighbour_scratch,
                                    gw.member_removed.data());
                for (index_t j = 0; j < k; ++j) gw.removed[j] += gw.member_removed[j];
            }
        }
        // Each member's score carries the child's log-prior part once; the group's once.
        const double prior = log_prior_part(dv, t, pdata);
        std::vector<index_t>& units = gw.units;  // the parent's units (`add` may move its data)
        units.resize(static_cast<std::size_t>(k));
        for (index_t j = 0; j < k; ++j) units[j] = static_cast<index_t>(pdata[j]);
        for (index_t h = 0; h < H; ++h) {
            if (gw.added[h] == kMinusInf) continue;  // the parent's own unit
            std::copy(gw.cand.data() + best * words, gw.cand.data() + (best + 1) * words,
                      gw.child.begin());
            gw.child[static_cast<std::size_t>(h / 64)] ^= std::uint64_t{1} << (h % 64);
            add(gw.child.data(), gw.added[h] - (K - 1.0) * (prior + dv.logit[h]));
        }
        for (index_t j = 0; j < k; ++j) {
            const index_t h = units[j];
            std::copy(gw.cand.data() + best * words, gw.cand.data() + (best + 1) * words,
                      gw.child.begin());
            gw.child[static_cast<std::size_t>(h / 64)] ^= std::uint64_t{1} << (h % 64);
            add(gw.child.data(), gw.removed[j] - (K - 1.0) * (prior - dv.logit[h]));
        }
    }

    // The shared posterior (max-shifted softmax) and the first member's moments under it.
    const double max_lpj = gw.lpj[static_cast<std::size_t>(best_of())];
    require(max_lpj > kMinusInf, "no valid state for a group");
    double norm = 0.0;
    for (double l : gw.lpj) norm += l - max_lpj > -kMomentWindow ? std::exp(l - max_lpj) : 0.0;
    if (static_cast<index_t>(gw.esz.size()) != H) {
        gw.esz.assign(static_cast<std::size_t>(H), 0.0);
        gw.in_support.assign(static_cast<std::size_t>(H), 0);
    }
    gw.support.clear();
    const bool want_var = variance != nullptr;
    if (want_var) gw.second.assign(static_cast<std::size_t>(D), 0.0);
    const PatchData& own = gw.members.front();
    const index_t n_cand = static_cast<index_t>(gw.lpj.size());
    for (index_t s = 0; s < n_cand; ++s) {
        const double l = gw.lpj[static_cast<std::size_t>(s)];
        if (!(l - max_lpj > -kMomentWindow)) continue;
        const double q = std::exp(l - max_lpj) / norm;
        const std::int32_t e = entry(s);
        const StateTerms& t = cache.terms(e);
        const index_t k = t.k;
        if (k == 0) continue;  // the zero state adds nothing to the moments
        const double* data = cache.data(e);
        const double* active = data;
        const double* mu = data + k;
        const double* Lambda = lambda_of(t, data);
        log_pseudo_joint(dv, t, data, own, gw.v);  // leaves the member's Lambda b in v[0, k)
        gw.kappa.resize(static_cast<std::size_t>(k));
        for (index_t i = 0; i < k; ++i) gw.kappa[i] = mu[i] + gw.v[i] * dv.inv_s2;
        for (index_t i = 0; i < k; ++i) {
            const index_t hi = static_cast<index_t>(active[i]);
            if (!gw.in_support[hi]) {
                gw.in_support[hi] = 1;
                gw.support.push_back(hi);
            }
            gw.esz[hi] += q * gw.kappa[i];
        }
        if (want_var)
            add_second_moments(p, active, Lambda, gw.kappa.data(), k, nullptr, q, gw.second.data());
    }
    std::sort(gw.support.begin(), gw.support.end());  // fixed summation order
    for (index_t d = 0; d < D; ++d) {
        const double* w = p.fields_out() + d * H;
        double sum = 0.0;
        for (index_t hi : gw.support) sum += w[hi] * gw.esz[hi];
        estimate[d] = sum;
    }
    if (want_var)
        for (index_t d = 0; d < D; ++d)
            variance[d] = std::max(0.0, gw.second[d] - estimate[d] * estimate[d]);
    for (index_t hi : gw.support) {
        gw.in_support[hi] = 0;
        gw.esz[hi] = 0.0;
    }
    return max_lpj + std::log(norm);
}

}  // namespace sssc_detail

void sssc_group_log_joint(const double* Y, index_t K, const SSSCParams& params,
                          const std::uint64_t* states, index_t M, double* out) {
    using namespace sssc_detail;
    require(K >= 1, "a group needs at least one patch");
    const Derived dv = derive(params, false);
    const index_t words = state_words(params.H);
    StateCache cache(dv, words, std::size_t{1} << 30);
    GroupWorkspace gw;
    load_group(dv, Y, K, gw);
    // The constants every member's log-joint carries (log_c), the prior's (sum log(1 - pi))
    // once for the group.
    double log_one_minus_pi = 0.0;
    for (index_t h = 0; h < params.H; ++h) log_one_minus_pi += std::log1p(-params.pi[h]);
    const double constant =
        static_cast<double>(K) * dv.log_c - static_cast<double>(K - 1) * log_one_minus_pi;
    for (index_t m = 0; m < M; ++m)
        out[m] = group_log_pseudo_joint(dv, cache, cache.get(states + m * words), gw) + constant;
}

}  // namespace zse
