// Internals of the SSSC kernels, part 3: a group of similar patches that shares its binary
// state (the spike), each member with its own slab (ALGORITHM.md §3.16).
#pragma once

#include <cstdint>
#include <vector>

#include "detail.hpp"

namespace zse {
namespace sssc_detail {

// Scratch space of the group kernels (one per thread).
struct GroupWorkspace {
    std::vector<PatchData> members;
    // The group's candidate states: bits, group lpj, cache id (-1: terms not built yet) and
    // whether its single-unit flips were scored; `slots` is a hash table of candidate indices.
    std::vector<std::uint64_t> cand, child;
    std::vector<double> lpj;
    std::vector<std::int32_t> entries;
    std::vector<char> expanded;
    std::vector<std::int32_t> slots;
    // The flips' scores summed over the members (added units by unit, removed by position).
    std::vector<double> added, removed, member_added, member_removed;
    std::vector<index_t> units;
    NeighbourScratch neighbour_scratch;
    std::vector<double> v, esz, second, kappa;
    std::vector<index_t> support;
    std::vector<char> in_support;
};

// The group's members (K x D, in the model's units) as PatchData: W^T y and |y|^2 each.
void load_group(const Derived& dv, const double* Y, index_t K, GroupWorkspace& gw);

// log p(s) + sum_i log p(y_i | s) - log_c_group for the state with cache id e: the sum of the
// members' log-pseudo-joints less K - 1 times the state's log-prior part (each member's
// lpj carries it once). -inf for an invalid state.
double group_log_pseudo_joint(const Derived& dv, StateCache& cache, std::int32_t e,
                              GroupWorkspace& gw);

// The nonlocal estimate of the group's first member: the group's candidate states start as
// the S states `start` (the first member's own search's), then up to `sweeps` rounds add every
// single-unit flip of the group's best state not met yet, each scored on the whole group from
// the best state's terms (score_added_units, score_removed_units summed over the members;
// ALGORITHM.md §3.13), until the best state is one whose flips were scored already. The shared
// posterior q(s) is the candidates' softmax; the first member's posterior mean of W_out s z (and,
// when `variance` is not null, its variance) under q and its own slab goes to `estimate` (D
// values). Returns log sum_s exp(group lpj) over the candidates (the group's truncated log-evidence
// without the constants of group_log_pseudo_joint).
double group_estimate(const Derived& dv, StateCache& cache, GroupWorkspace& gw,
                      const std::uint64_t* start, index_t S, index_t sweeps, double* estimate,
                      double* variance);

}  // namespace sssc_detail
}  // namespace zse
