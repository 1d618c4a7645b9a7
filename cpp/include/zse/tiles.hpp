// Streamed estimation and merging: every patch is read from the image, estimated, and its
// estimate merged into the per-pixel statistics while it is in cache; no N x D array exists
// (ALGORITHM.md §2.6).
#pragma once

#include <functional>

#include "zse/common.hpp"
#include "zse/merge.hpp"
#include "zse/volume.hpp"

namespace zse {

/// One corner row of patches handed to a model: `count` patches with global indices
/// first, first + 1, ... (consecutive c0), already transformed into the model's units.
struct RowJob {
    index_t first = 0;
    index_t count = 0;
    bool band_start = false;  ///< first row of a band: per-band warm-start chains restart here
    int slot = 0;             ///< the calling thread's workspace slot, in [0, n_slots)
    const double* patches = nullptr;  ///< count x D
    double* estimates = nullptr;      ///< count x D, in the model's units
    double* variances = nullptr;      ///< count x D, or nullptr when not wanted
};

/// A model's estimator for one row; called concurrently for different bands (one slot each).
using RowEstimator = std::function<void(const RowJob&)>;

enum class MergeMode { automatic, full, compact };

/// Output images (the volume's shape), each nullptr when not wanted. pvar needs variances.
struct StreamOutputs {
    double* mean = nullptr;
    double* var = nullptr;   ///< population variance of the per-patch estimates (V1)
    double* pvar = nullptr;  ///< mean per-patch posterior variance + var (V2)
    double* median = nullptr;
    double* count = nullptr;
    MedianKind median_kind = MedianKind::average;
    /// The outputs hold the slices [slice_begin, slice_end) of the image (rows for 2-D images,
    /// slices for volumes) only: one MPI rank's share. slice_end < 0: every slice.
    index_t slice_begin = 0;
    index_t slice_end = -1;
    /// How estimates are merged (ALGORITHM.md §2.6): `full` keeps every estimate of a voxel until
    /// the voxel is complete (every statistic, the median included); `compact` keeps per voxel a
    /// shifted sum and sum of squares in a fixed order (mean, var, pvar, count; a few doubles
    /// instead of D); `automatic` takes compact when no median is asked and the full ring could
    /// not hold 8 bands at once (a choice made by the geometry alone, so results never depend
    /// on threads or ranks).
    MergeMode merge = MergeMode::automatic;
    /// The volume pointer holds the (banded view's) slices [input_first_slice,
    /// input_first_slice + input_slices) only: a slab read for the bands of the outputs' slices
    /// (input_slices < 0: the whole image).
    index_t input_first_slice = 0;
    index_t input_slices = -1;
    /// Called on the calling thread after each wave of bands is merged, outside any parallel
    /// region, with (bands done, bands in all) of this call: progress for people. It may throw
    /// to stop the work (a cancel); the outputs are then incomplete.
    std::function<void(index_t, index_t)> on_wave;
};

/// Maps an estimate in the model's units back to the data's: e * multiply / divide + offset[d]
/// (variances: v * multiply^2 / divide^2). The same operations as the Python side.
struct EstimateTransform {
    const double* offset = nullptr;  ///< D values, or nullptr
    double multiply = 1.0;
    double divide = 1.0;
    /// With gat_alpha > 0 (PatchTransform's), the mapped estimate D is then inverted with
    /// anscombe_inverse and a variance v multiplied by anscombe_inverse_slope(D)^2.
    double gat_alpha = 0.0, gat_offset = 0.0, gat_s2 = 0.0;
};

/// Geometry of the streaming: bands of `band_length` corner slices (rows for 2-D), fixed by the
/// image alone; `wave` bands are processed at once (bounded by n_threads and memory), which
/// changes nothing in the results.
struct StreamPlan {
    index_t band_length = 1;
    index_t n_bands = 1;
    index_t wave = 1;
    index_t ring_slices = 1;
    bool compact = false;        ///< the compact merge (see StreamOutputs::merge)
    index_t accumulators = 0;    ///< doubles per voxel and slice of the compact merge
    double ring_bytes = 0.0;     ///< the ring of estimates (full) or of accumulators (compact)
    double scratch_bytes = 0.0;  ///< per-thread row buffers
};

/// The plan estimate_and_merge will use, for memory estimates before any work.
StreamPlan plan_stream(const VolumeGrid& grid, bool want_variances, bool want_median,
                       MergeMode merge, int n_threads);

/// The output slices [first, last) one of `n_parts` workers (MPI ranks) finishes: whole bands,
/// contiguous and in part order; empty when there are fewer bands than parts.
struct SliceRange {
    index_t first = 0;
    index_t last = 0;
};
SliceRange slices_of_part(const VolumeGrid& grid, int part, int n_parts);

/// Reads every patch of `volume`, estimates it with `estimator` (bands of rows in parallel, rows
/// in raster order within a band), and merges the estimates into `out`. Per pixel the statistics
/// are taken over its estimates in a fixed order, so results do not depend on n_threads.
/// Border pixels use the estimates that exist. With out.slice_begin/slice_end only the bands
/// whose patches cover those slices are estimated (estimates depend on the band only, so every
/// slice comes out as in a run over the whole image). Throws std::invalid_argument for non-finite
/// estimates.
void estimate_and_merge(const double* volume, const VolumeGrid& grid,
                        const PatchTransform& to_model, const RowEstimator& estimator,
                        const EstimateTransform& to_data, const StreamOutputs& out, int n_threads);

}  // namespace zse
