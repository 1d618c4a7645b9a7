// Evolutionary search over binary latent states (ALGORITHM.md §4): per-patch random streams,
// packed-bit states, parent selection and mutation operators.
#pragma once

#include <cstdint>
#include <vector>

#include "zse/common.hpp"

namespace zse {

/// xoshiro256** seeded through splitmix64 from (seed, epoch, item): one independent stream per
/// patch and epoch, so results do not depend on which thread handles a patch.
class Rng {
 public:
    Rng(std::uint64_t seed, std::uint64_t epoch, std::uint64_t item);
    std::uint64_t next();
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  ///< [0, 1)
    /// Uniform integer in [0, n), n >= 1 (multiply-shift; bias < n / 2^64).
    index_t below(index_t n) {
        __extension__ typedef unsigned __int128 u128;  // GCC/Clang extension, 64x64 -> 128 bits
        return static_cast<index_t>((static_cast<u128>(next()) * static_cast<std::uint64_t>(n)) >>
                                    64);
    }

 private:
    std::uint64_t s_[4];
};

/// Bits of a state: h-th latent in word h / 64, bit h % 64.
inline index_t state_words(index_t H) {
    return (H + 63) / 64;
}
inline bool get_bit(const std::uint64_t* s, index_t h) {
    return (s[h >> 6] >> (h & 63)) & 1u;
}
inline void flip_bit(std::uint64_t* s, index_t h) {
    s[h >> 6] ^= std::uint64_t{1} << (h & 63);
}
inline bool same_state(const std::uint64_t* a, const std::uint64_t* b, index_t words) {
    for (index_t w = 0; w < words; ++w)
        if (a[w] != b[w]) return false;
    return true;
}
index_t count_active(const std::uint64_t* s, index_t words);

enum class Selection { fit, rand };
enum class Mutation { randflip, sparseflip, cross, cross_randflip, cross_sparseflip };
enum class StateSearch { evolution, neighbours };

struct EvoConfig {
    index_t n_parents = 10;
    index_t n_children = 1;  ///< per parent, for randflip / sparseflip
    index_t n_generations = 1;
    Selection selection = Selection::fit;
    Mutation mutation = Mutation::randflip;
    double bitflip_prob = 0.0;  ///< overall flip probability p_bf of sparseflip
    double crowdedness = 1.0;   ///< target number of active units C* = sum_h pi_h (sparseflip)
    /// evolution: every sweep runs n_generations of selection and mutation; neighbours: every
    /// sweep tries every single-unit flip of the best state not tried yet (ALGORITHM.md §4.10),
    /// no random numbers.
    StateSearch method = StateSearch::evolution;
};

/// Indices of min(n_parents, #usable) distinct parents among n candidates. "fit": probabilities
/// proportional to lpj_i - 2 min(min_j lpj_j, 0) over the usable candidates, drawn without
/// replacement (tvlearn/evo semantics); "rand": uniform. Unusable candidates (invalid states,
/// lpj = -inf) are never drawn.
void select_parents(const double* lpj, index_t n, index_t n_parents, Selection selection, Rng& rng,
                    std::vector<index_t>& parents);

/// Appends the children of `n_parents` packed parent states to `children` (packed, words per
/// state). randflip: n_children per parent, each with exactly one bit flipped, distinct positions
/// per parent; sparseflip: each bit flips independently with probabilities chosen so that the
/// expected number of flips is H p_bf and the expected child size is C* (clamped to [0, 1]);
/// cross: for every pair i < j one cut point c in [1, H - 1] and the two complementary children;
/// cross_randflip / cross_sparseflip: cross, then one randflip / sparseflip (n_children = 1).
void mutate(const std::uint64_t* parents, index_t n_parents, index_t H, const EvoConfig& config,
            Rng& rng, std::vector<std::uint64_t>& children);

/// The initial state set of one patch (S states), from the (seed, epoch = 0, stream) stream.
void init_patch_states(std::uint64_t* Kn, std::uint64_t stream, index_t S, index_t H, double p_init,
                       std::uint64_t seed);
/// Throws std::invalid_argument unless S states of H units can be drawn with p_init.
void check_state_settings(index_t S, index_t H, double p_init);

/// Initial state sets: for every patch S distinct states with bits ~ Bernoulli(p_init), from the
/// (seed, epoch = 0, patch) streams; all 2^H states when S == 2^H.
void init_states(std::uint64_t* K, index_t N, index_t S, index_t H, double p_init,
                 std::uint64_t seed, int n_threads);

}  // namespace zse
