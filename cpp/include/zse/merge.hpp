// Overlap merging: per-patch estimates -> per-pixel statistics (ALGORITHM.md §2.2-§2.3).
#pragma once

#include "zse/common.hpp"
#include "zse/patches.hpp"

namespace zse {

enum class MedianKind {
    average,  ///< mean of the two middle values when the count is even (numpy's median)
    lower,    ///< the lower middle value (torch's median; reproduces the PMM reference outputs)
};

/// Output images (R x Q, row-major), each nullptr when that statistic is not wanted.
struct MergeOutputs {
    double* mean = nullptr;    ///< (weighted) mean of the estimates covering each pixel
    double* var = nullptr;     ///< (weighted) population variance; 0 where one estimate exists
    double* median = nullptr;  ///< median of the estimates (unweighted only)
    double* count = nullptr;   ///< number of estimates covering each pixel
};

/// Merges the per-patch estimates of every pixel into the requested statistics.
///
/// `estimates` is N x D row-major in the patch order of PatchGrid; `weights` is nullptr or N
/// positive per-patch weights (mean and var only). Border pixels use the estimates that exist.
/// Only O(Q * D) scratch per thread is used, never an N x D temporary: the kernel runs over output
/// rows, and for each row streams the matching patch rows once. Mean and variance use the
/// shifted-data algorithm with the shift taken from one of the pixel's own estimates, which is
/// accurate and gives exactly the input (and variance 0) when all estimates agree.
///
/// Throws std::invalid_argument for non-finite (or overflowing) estimates or bad weights.
/// Safe to call without the GIL; parallel over output rows, so results do not depend on
/// n_threads.
void merge_patches(const double* estimates, const PatchGrid& grid, const double* weights,
                   const MergeOutputs& out, MedianKind median_kind, int n_threads);

}  // namespace zse
