#include "zse/evo.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "zse/parallel.hpp"

namespace zse {
namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void sparseflip_one(std::uint64_t* child, index_t H, index_t words, const EvoConfig& config,
                    Rng& rng) {
    const double m = static_cast<double>(count_active(child, words));
    const double Hd = static_cast<double>(H), p = config.bitflip_prob, target = config.crowdedness;
    constexpr double eps = 1e-100;
    const double alpha = (Hd - m) * (Hd * p - (target - m)) / ((target - m + Hd * p) * m + eps);
    double p0 = Hd * p / (Hd + (alpha - 1.0) * m + eps);
    double p1 = alpha * p0;
    // Far from the target crowdedness the formulas leave [0, 1] (ALGORITHM.md §8.9): clamp.
    p0 = std::clamp(std::isfinite(p0) ? p0 : 0.0, 0.0, 1.0);
    p1 = std::clamp(std::isfinite(p1) ? p1 : 1.0, 0.0, 1.0);
    std::uint64_t flips[4] = {0, 0, 0, 0};
    for (index_t h = 0; h < H; ++h) {
        const double prob = get_bit(child, h) ? p1 : p0;
        if (rng.uniform() < prob) flips[h >> 6] |= std::uint64_t{1} << (h & 63);
    }
    for (index_t w = 0; w < words; ++w) child[w] ^= flips[w];
}

}  // namespace

Rng::Rng(std::uint64_t seed, std::uint64_t epoch, std::uint64_t item) {
    std::uint64_t x = seed;
    std::uint64_t mixed = splitmix64(x) ^ (epoch * 0xD1B54A32D192ED03ULL);
    mixed = splitmix64(mixed) ^ (item * 0x8CB92BA72F3D8DD7ULL);
    for (auto& word : s_) word = splitmix64(mixed);
}

std::uint64_t Rng::next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

index_t count_active(const std::uint64_t* s, index_t words) {
    index_t k = 0;
    for (index_t w = 0; w < words; ++w) k += __builtin_popcountll(s[w]);
    return k;
}

void select_parents(const double* lpj, index_t n, index_t n_parents, Selection selection, Rng& rng,
                    std::vector<index_t>& parents) {
    parents.clear();
    thread_local std::vector<index_t> pool;  // reused buffers: this runs once per patch
    thread_local std::vector<double> weight;
    thread_local std::vector<char> taken;
    pool.clear();
    double min_lpj = std::numeric_limits<double>::infinity();
    for (index_t i = 0; i < n; ++i) {
        if (std::isfinite(lpj[i])) {
            pool.push_back(i);
            min_lpj = std::min(min_lpj, lpj[i]);
        }
    }
    const index_t n_draw = std::min<index_t>(n_parents, static_cast<index_t>(pool.size()));
    if (selection == Selection::rand) {
        for (index_t k = 0; k < n_draw; ++k) {  // partial Fisher-Yates
            const index_t j = k + rng.below(static_cast<index_t>(pool.size()) - k);
            std::swap(pool[k], pool[j]);
            parents.push_back(pool[k]);
        }
        return;
    }
    // Fitness f_i = lpj_i - 2 min(min lpj, 0): the worst candidate keeps weight |min lpj|.
    const double shift = -2.0 * std::min(min_lpj, 0.0);
    weight.resize(pool.size());
    double total = 0.0;
    for (std::size_t i = 0; i < pool.size(); ++i) total += weight[i] = lpj[pool[i]] + shift;
    taken.assign(pool.size(), 0);
    for (index_t k = 0; k < n_draw; ++k) {
        index_t pick = -1;
        if (total > 0.0) {
            double u = rng.uniform() * total;
            for (std::size_t i = 0; i < pool.size(); ++i) {
                if (taken[i] || weight[i] <= 0.0) continue;
                pick = static_cast<index_t>(i);
                if (u < weight[i]) break;
                u -= weight[i];
            }
        }
        if (pick < 0) {  // only zero-weight candidates left: draw uniformly among them
            std::vector<index_t> rest;
            for (std::size_t i = 0; i < pool.size(); ++i)
                if (!taken[i]) rest.push_back(static_cast<index_t>(i));
            pick = rest[rng.below(static_cast<index_t>(rest.size()))];
        }
        taken[pick] = 1;
        total -= std::max(weight[pick], 0.0);
        parents.push_back(pool[pick]);
    }
}

void mutate(const std::uint64_t* parents, index_t n_parents, index_t H, const EvoConfig& config,
            Rng& rng, std::vector<std::uint64_t>& children) {
    const index_t words = state_words(H);
    auto push = [&](const std::uint64_t* s) { children.insert(children.end(), s, s + words); };
    std::uint64_t child[4];
    const bool crossing = config.mutation == Mutation::cross ||
                          config.mutation == Mutation::cross_randflip ||
                          config.mutation == Mutation::cross_sparseflip;
    if (!crossing) {
        std::uint64_t used[4];
        for (index_t p = 0; p < n_parents; ++p) {
            const std::uint64_t* parent = parents + p * words;
            if (config.mutation == Mutation::randflip) {
                std::fill(used, used + 4, 0);
                for (index_t c = 0; c < config.n_children; ++c) {
                    index_t position;  // distinct per parent: redraw taken ones (n_children <= H)
                    do position = rng.below(H);
                    while (get_bit(used, position));
                    flip_bit(used, position);
                    std::copy(parent, parent + words, child);
                    flip_bit(child, position);
                    push(child);
                }
            } else {
                for (index_t c = 0; c < config.n_children; ++c) {
                    std::copy(parent, parent + words, child);
                    sparseflip_one(child, H, words, config, rng);
                    push(child);
                }
            }
        }
        return;
    }
    for (index_t i = 0; i < n_parents; ++i) {
        for (index_t j = i + 1; j < n_parents; ++j) {
            const std::uint64_t* a = parents + i * words;
            const std::uint64_t* b = parents + j * words;
            const index_t cut = 1 + rng.below(H - 1);  // bits [0, cut) from one parent
            std::uint64_t c1[4], c2[4];
            for (index_t w = 0; w < words; ++w) {
                const index_t lo = w * 64;
                std::uint64_t low_mask;
                if (cut >= lo + 64)
                    low_mask = ~std::uint64_t{0};
                else if (cut <= lo)
                    low_mask = 0;
                else
                    low_mask = (std::uint64_t{1} << (cut - lo)) - 1;
                c1[w] = (a[w] & low_mask) | (b[w] & ~low_mask);
                c2[w] = (b[w] & low_mask) | (a[w] & ~low_mask);
            }
            for (std::uint64_t* c : {c1, c2}) {
                if (config.mutation == Mutation::cross_randflip) flip_bit(c, rng.below(H));
                if (config.mutation == Mutation::cross_sparseflip)
                    sparseflip_one(c, H, words, config, rng);
                push(c);
            }
        }
    }
}

void init_patch_states(std::uint64_t* Kn, std::uint64_t stream, index_t S, index_t H, double p_init,
                       std::uint64_t seed) {
    const index_t words = state_words(H);
    if (H < 63 && S == (index_t{1} << H)) {
        for (index_t s = 0; s < S; ++s) {
            std::fill(Kn + s * words, Kn + (s + 1) * words, 0);
            Kn[s * words] = static_cast<std::uint64_t>(s);
        }
        return;
    }
    Rng rng(seed, 0, stream);
    index_t filled = 0, tries = 0;
    std::uint64_t candidate[4];
    while (filled < S) {
        // With few free states left, Bernoulli draws rarely hit them; the limit keeps this
        // from spinning and names the fix.
        require(++tries < 1000 * S + 100000,
                "could not draw S distinct initial states; lower S or raise p_init");
        std::fill(candidate, candidate + 4, 0);
        for (index_t h = 0; h < H; ++h)
            if (rng.uniform() < p_init) flip_bit(candidate, h);
        bool duplicate = false;
        for (index_t s = 0; s < filled && !duplicate; ++s)
            duplicate = same_state(Kn + s * words, candidate, words);
        if (!duplicate) std::copy(candidate, candidate + words, Kn + filled++ * words);
    }
}

void check_state_settings(index_t S, index_t H, double p_init) {
    require(H >= 1 && H <= 256, "H must be in [1, 256]");
    require(S >= 1, "the number of states S must be >= 1");
    const bool enumerate = H < 63 && S == (index_t{1} << H);
    require(H >= 63 || S <= (index_t{1} << H),
            "S=" + std::to_string(S) + " exceeds the 2^H=" + std::to_string(index_t{1} << H) +
                " possible states");
    require(enumerate || (p_init > 0.0 && p_init < 1.0), "p_init must be in (0, 1)");
}

void init_states(std::uint64_t* K, index_t N, index_t S, index_t H, double p_init,
                 std::uint64_t seed, int n_threads) {
    check_state_settings(S, H, p_init);
    const index_t words = state_words(H);
    parallel_for(
        N, n_threads,
        [&](index_t n) {
            init_patch_states(K + n * S * words, static_cast<std::uint64_t>(n), S, H, p_init, seed);
        },
        64);
}

}  // namespace zse
