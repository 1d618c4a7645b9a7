// Block matching: the patches most similar to a reference patch within a search window, by the
// squared distance of their pixels in a guide image (ALGORITHM.md §2.7).
#pragma once

#include <cstdint>
#include <vector>

#include "zse/common.hpp"
#include "zse/volume.hpp"

namespace zse {

/// Half-widths of the search window along each axis, in patch corners: the window of a
/// reference at corner (z, r, c) holds the corners (z + dz, r + dr, c + dc) with |dz| <= z,
/// |dr| <= r, |dc| <= c that exist in the grid.
struct MatchWindow {
    index_t z = 0, r = 10, c = 10;
    /// Only patches that share no pixel with the reference join its group (their noise is
    /// independent of the reference's).
    bool disjoint = false;
};

/// Scratch space of match_patch (one per thread): the kept candidates.
struct MatchScratch {
    std::vector<double> distance;
    std::vector<index_t> index;
};

/// The `k` patches most similar to patch `n` of `grid` within `window`: patch n itself first,
/// then the k - 1 others of smallest squared distance between their pixels in `guide` (a
/// volume of the grid's extents), ascending, ties to the lower patch index; with
/// window.disjoint only patches that share no pixel with patch n. Fewer than k when the
/// window holds fewer patches; returns how many were written to `members`. Exact: a candidate
/// is abandoned only once its partial distance exceeds the worst kept one.
index_t match_patch(const double* guide, const VolumeGrid& grid, index_t n,
                    const MatchWindow& window, index_t k, MatchScratch& scratch, index_t* members);

/// match_patch for the M patches at `positions` into out (M x k, -1 where a window holds fewer
/// than k patches). Parallel over positions; results do not depend on n_threads.
void match_patches(const double* guide, const VolumeGrid& grid, const std::int64_t* positions,
                   index_t M, const MatchWindow& window, index_t k, std::int64_t* out,
                   int n_threads);

}  // namespace zse
