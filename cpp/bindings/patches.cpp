// Bindings of Patches, merging, volumes and the streamed estimate: the pipeline's geometry.
#include <cmath>

#include "bindings.hpp"
#include "zse/block_match.hpp"

namespace zse_py {

std::string compiler() {
#if defined(__clang__)
    return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    return std::string("gcc ") + __VERSION__;
#else
    return std::string("unknown");
#endif
}

ArrayF64 extract_patches(const ArrayF64& image, zse::index_t patch_rows, zse::index_t patch_cols,
                         int n_threads) {
    zse::require(image.ndim() == 2,
                 "image must be 2-D, got " + std::to_string(image.ndim()) + "-D");
    const zse::PatchGrid grid = make_grid(image.shape(0), image.shape(1), patch_rows, patch_cols);
    ArrayF64 patches({grid.n_patches(), grid.patch_size()});
    const double* in = image.data();
    double* out = patches.mutable_data();
    {
        py::gil_scoped_release release;
        zse::extract_patches(in, grid, out, n_threads);
    }
    return patches;
}

py::dict merge_patches(const ArrayF64& estimates, zse::index_t image_rows, zse::index_t image_cols,
                       zse::index_t patch_rows, zse::index_t patch_cols,
                       const std::vector<std::string>& stats, const py::object& weights,
                       const std::string& median_kind, int n_threads) {
    const zse::PatchGrid grid = make_grid(image_rows, image_cols, patch_rows, patch_cols);
    zse::require(estimates.ndim() == 2 && estimates.shape(0) == grid.n_patches() &&
                     estimates.shape(1) == grid.patch_size(),
                 "estimates must have shape (" + std::to_string(grid.n_patches()) + ", " +
                     std::to_string(grid.patch_size()) + ") for this image and patch size");
    zse::require(median_kind == "average" || median_kind == "lower",
                 "median_kind must be 'average' or 'lower', got '" + median_kind + "'");

    const double* weights_ptr = nullptr;
    ArrayF64 weights_array;
    if (!weights.is_none()) {
        weights_array = weights.cast<ArrayF64>();  // exact dtype/layout checked by the caller
        zse::require(weights_array.ndim() == 1 && weights_array.shape(0) == grid.n_patches(),
                     "weights must have shape (" + std::to_string(grid.n_patches()) + ",)");
        weights_ptr = weights_array.data();
    }

    py::dict result;
    zse::MergeOutputs out;
    for (const std::string& name : stats) {
        ArrayF64 image({image_rows, image_cols});
        double* ptr = image.mutable_data();
        if (name == "mean") {
            out.mean = ptr;
        } else if (name == "var") {
            out.var = ptr;
        } else if (name == "median") {
            out.median = ptr;
        } else if (name == "count") {
            out.count = ptr;
        } else {
            throw std::invalid_argument("unknown stat '" + name +
                                        "'; expected mean, var, median or count");
        }
        result[py::str(name)] = image;
    }
    const zse::MedianKind kind =
        median_kind == "lower" ? zse::MedianKind::lower : zse::MedianKind::average;
    const double* in = estimates.data();
    {
        py::gil_scoped_release release;
        zse::merge_patches(in, grid, weights_ptr, out, kind, n_threads);
    }
    return result;
}

ArrayF64 checked_guide(const py::object& guide, const ArrayF64& volume) {
    zse::require(py::isinstance<ArrayF64>(guide),
                 "a nonlocal estimate needs a C-contiguous float64 guide image");
    auto array = guide.cast<ArrayF64>();
    require_shape(array, {volume.shape(0), volume.shape(1), volume.shape(2)}, "guide");
    const double* gd = array.data();
    for (zse::index_t i = 0; i < array.size(); ++i)
        zse::require(std::isfinite(gd[i]), "the guide image must be finite");
    return array;
}

py::array_t<std::int64_t> block_match(const ArrayF64& guide, const Patch3& patch,
                                      const ArrayI64& positions, const Patch3& window,
                                      zse::index_t k, int n_threads, bool disjoint) {
    const zse::VolumeGrid g = volume_grid(guide, patch);
    zse::require(positions.ndim() == 1, "positions must be 1-D");
    const double* gd = guide.data();
    for (zse::index_t i = 0; i < guide.size(); ++i)
        zse::require(std::isfinite(gd[i]), "the guide image must be finite");
    const zse::index_t M = positions.shape(0);
    py::array_t<std::int64_t> out({M, k});
    const zse::MatchWindow w{std::get<0>(window), std::get<1>(window), std::get<2>(window),
                             disjoint};
    const std::int64_t* pos = positions.data();
    std::int64_t* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        zse::match_patches(gd, g, pos, M, w, k, o, n_threads);
    }
    return out;
}

ArrayF64 gather_patches(const ArrayF64& volume, const Patch3& patch, const ArrayI64& positions,
                        int n_threads) {
    const zse::VolumeGrid g = volume_grid(volume, patch);
    zse::require(positions.ndim() == 1, "positions must be 1-D");
    const zse::index_t M = positions.shape(0);
    ArrayF64 out({M, g.D()});
    const double* v = volume.data();
    const std::int64_t* pos = positions.data();
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        zse::gather_patches(v, g, pos, M, zse::PatchTransform{}, o, n_threads);
    }
    return out;
}

py::dict merge_volume(const ArrayF64& estimates,
                      const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape,
                      const Patch3& patch, const std::vector<std::string>& stats,
                      const py::object& variances, const std::string& median_kind, int n_threads) {
    const zse::VolumeGrid g = shape_grid(shape, patch);
    zse::require(
        estimates.ndim() == 2 && estimates.shape(0) == g.n_patches() && estimates.shape(1) == g.D(),
        "estimates must have shape (" + std::to_string(g.n_patches()) + ", " +
            std::to_string(g.D()) + ")");
    ArrayF64 var_storage;
    const double* var = nullptr;
    if (!variances.is_none()) {
        var_storage = variances.cast<ArrayF64>();
        require_shape(var_storage, {g.n_patches(), g.D()}, "variances");
        var = var_storage.data();
    }
    zse::StreamOutputs out;
    StreamRequest request;
    request.stats = stats;
    request.median_kind = median_kind;
    py::dict result = stream_outputs(g, request, out);
    zse::require(out.pvar == nullptr || var != nullptr, "pvar needs the variances");
    const double* e = estimates.data();
    const zse::index_t D = g.D();
    const zse::RowEstimator copy_rows = [&](const zse::RowJob& job) {
        std::copy(e + job.first * D, e + (job.first + job.count) * D, job.estimates);
        if (job.variances != nullptr)
            std::copy(var + job.first * D, var + (job.first + job.count) * D, job.variances);
    };
    // The estimator reads its rows from `estimates`; the volume is never read.
    std::vector<double> zeros(static_cast<std::size_t>(g.n_voxels()), 0.0);
    {
        py::gil_scoped_release release;
        zse::estimate_and_merge(zeros.data(), g, zse::PatchTransform{}, copy_rows,
                                zse::EstimateTransform{}, out, n_threads);
    }
    return result;
}

py::dict identity_estimate_volume(const ArrayF64& volume, const Patch3& patch,
                                  const StreamRequest& stream, int n_threads) {
    zse::VolumeGrid g;
    zse::StreamOutputs out;
    py::dict result = stream_setup(volume, patch, stream, g, out);
    zse::require(out.pvar == nullptr, "the identity model has no predictive variance");
    const zse::index_t D = g.D();
    const zse::RowEstimator identity = [D](const zse::RowJob& job) {
        std::copy(job.patches, job.patches + job.count * D, job.estimates);
    };
    const double* v = volume.data();
    {
        py::gil_scoped_release release;
        zse::estimate_and_merge(v, g, zse::PatchTransform{}, identity, zse::EstimateTransform{},
                                out, n_threads);
    }
    return result;
}

py::dict stream_plan(const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape,
                     const Patch3& patch, bool want_variances, bool want_median,
                     const std::string& merge, int n_threads) {
    const zse::StreamPlan plan = zse::plan_stream(shape_grid(shape, patch), want_variances,
                                                  want_median, parse_merge(merge), n_threads);
    py::dict d;
    d["band_length"] = plan.band_length;
    d["n_bands"] = plan.n_bands;
    d["wave"] = plan.wave;
    d["ring_bytes"] = plan.ring_bytes;
    d["compact"] = plan.compact;
    d["scratch_bytes"] = plan.scratch_bytes;
    return d;
}

py::tuple chunk_share_patches(const std::string& kernel, zse::index_t N, int part, int n_parts) {
    zse::require(kernel == "sssc" || kernel == "mixture", "kernel must be 'sssc' or 'mixture'");
    const zse::FixedChunks chunks = kernel == "sssc" ? zse::sssc_chunks(N) : zse::mixture_chunks(N);
    const zse::ChunkShare own = zse::share_of(chunks, part, n_parts);
    return py::make_tuple(chunks.begin(own.first), chunks.begin(own.last));
}

}  // namespace zse_py
