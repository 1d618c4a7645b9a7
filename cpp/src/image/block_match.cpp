#include "zse/block_match.hpp"

#include <algorithm>
#include <cstdlib>

#include "zse/parallel.hpp"

namespace zse {

index_t match_patch(const double* guide, const VolumeGrid& g, index_t n, const MatchWindow& w,
                    index_t k, MatchScratch& scratch, index_t* members) {
    require(k >= 1, "the group size k must be >= 1");
    require(w.z >= 0 && w.r >= 0 && w.c >= 0, "the search window's half-widths must be >= 0");
    require(n >= 0 && n < g.n_patches(), "patch index out of range");
    const index_t Qc = g.Qc(), Rc = g.Rc();
    const index_t z0 = n / (Rc * Qc), r0 = (n / Qc) % Rc, c0 = n % Qc;
    members[0] = n;
    const index_t others = k - 1;
    if (others == 0) return 1;
    // The kept candidates, ascending by (distance, index); `worst` is the largest kept distance
    // once `others` are kept (a candidate above it cannot enter).
    std::vector<double>& dist = scratch.distance;
    std::vector<index_t>& index = scratch.index;
    dist.clear();
    index.clear();
    const double* ref = guide + (z0 * g.R + r0) * g.Q + c0;
    const index_t za = std::max<index_t>(0, z0 - w.z), zb = std::min(g.Zc() - 1, z0 + w.z);
    const index_t ra = std::max<index_t>(0, r0 - w.r), rb = std::min(Rc - 1, r0 + w.r);
    const index_t ca = std::max<index_t>(0, c0 - w.c), cb = std::min(Qc - 1, c0 + w.c);
    for (index_t z = za; z <= zb; ++z) {
        for (index_t r = ra; r <= rb; ++r) {
            for (index_t c = ca; c <= cb; ++c) {
                const index_t m = (z * Rc + r) * Qc + c;
                if (m == n) continue;
                if (w.disjoint && std::abs(z - z0) < g.Pz && std::abs(r - r0) < g.Ph &&
                    std::abs(c - c0) < g.Pw)
                    continue;
                const bool full = static_cast<index_t>(dist.size()) == others;
                const double bound = full ? dist.back() : 0.0;
                const double* cand = guide + (z * g.R + r) * g.Q + c;
                double d = 0.0;
                bool abandoned = false;
                for (index_t pz = 0; pz < g.Pz && !abandoned; ++pz) {
                    for (index_t i = 0; i < g.Ph; ++i) {
                        const index_t row = (pz * g.R + i) * g.Q;
                        for (index_t j = 0; j < g.Pw; ++j) {
                            const double e = cand[row + j] - ref[row + j];
                            d += e * e;
                        }
                        // Partial sums never decrease: above the worst kept, it cannot enter.
                        if (full && d > bound) {
                            abandoned = true;
                            break;
                        }
                    }
                }
                // A tie with the worst kept loses: it has the higher index.
                if (abandoned || (full && !(d < bound))) continue;
                // Insert at its place: after every kept candidate with a distance <= d (those
                // have lower indices).
                const auto at = std::upper_bound(dist.begin(), dist.end(), d) - dist.begin();
                if (full) {
                    dist.pop_back();
                    index.pop_back();
                }
                dist.insert(dist.begin() + at, d);
                index.insert(index.begin() + at, m);
            }
        }
    }
    std::copy(index.begin(), index.end(), members + 1);
    return 1 + static_cast<index_t>(index.size());
}

void match_patches(const double* guide, const VolumeGrid& grid, const std::int64_t* positions,
                   index_t M, const MatchWindow& window, index_t k, std::int64_t* out,
                   int n_threads) {
    require(k >= 1, "the group size k must be >= 1");
    for (index_t m = 0; m < M; ++m)
        require(positions[m] >= 0 && positions[m] < grid.n_patches(),
                "patch positions must lie in [0, n_patches)");
    parallel_for(
        M, n_threads,
        [&](index_t m) {
            thread_local MatchScratch scratch;
            std::vector<index_t> members(static_cast<std::size_t>(k));
            const index_t found =
                match_patch(guide, grid, positions[m], window, k, scratch, members.data());
            for (index_t j = 0; j < k; ++j) out[m * k + j] = j < found ? members[j] : -1;
        },
        64);
}

}  // namespace zse
