// The only file that includes pybind11: shape checks, output allocation with the GIL held, then the
// pure-C++ kernels with the GIL released. The Python package validates and converts inputs once;
// every array argument here is `.noconvert()` so no hidden copy can happen at the boundary.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "zse/common.hpp"
#include "zse/merge.hpp"
#include "zse/patches.hpp"

namespace py = pybind11;

namespace {

using ArrayF64 = py::array_t<double, py::array::c_style>;

zse::PatchGrid make_grid(zse::index_t rows, zse::index_t cols, zse::index_t patch_rows,
                         zse::index_t patch_cols) {
    return zse::PatchGrid(rows, cols, patch_rows, patch_cols);
}

ArrayF64 extract_patches(const ArrayF64& image, zse::index_t patch_rows, zse::index_t patch_cols,
                         int n_threads) {
    zse::require(image.ndim() == 2, "image must be 2-D, got " + std::to_string(image.ndim()) +
                                        "-D");
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

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "zse compiled core (private; use the zse package)";
    m.attr("__version__") = ZSE_VERSION;
    m.attr("has_openmp") = zse::has_openmp();
    m.def("omp_max_threads", &zse::omp_max_threads,
          "OpenMP's default thread count (honours OMP_NUM_THREADS); 1 without OpenMP");
    m.def("compiler", []() {
#if defined(__clang__)
        return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
        return std::string("gcc ") + __VERSION__;
#else
        return std::string("unknown");
#endif
    });
    m.def("extract_patches", &extract_patches, "All overlapping patches, shape (N, D)",
          py::arg("image").noconvert(), py::arg("patch_rows"), py::arg("patch_cols"),
          py::arg("n_threads"));
    m.def("merge_patches", &merge_patches, "Per-pixel statistics of per-patch estimates",
          py::arg("estimates").noconvert(), py::arg("image_rows"), py::arg("image_cols"),
          py::arg("patch_rows"), py::arg("patch_cols"), py::arg("stats"), py::arg("weights"),
          py::arg("median_kind"), py::arg("n_threads"));
}
