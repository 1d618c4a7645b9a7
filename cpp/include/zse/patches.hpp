// Geometry of all overlapping patches of an image at stride 1, and patch extraction.
#pragma once

#include "zse/common.hpp"

namespace zse {

/// All Ph x Pw windows of an R x Q image at stride 1 (ALGORITHM.md §2.1).
///
/// Patch n has its top-left corner at (r0, c0) with n = r0 * corner_cols() + c0 (row-major over
/// corners); pixel d = i * Pw + j of patch n is image[r0 + i, c0 + j] (row-major inside a patch).
struct PatchGrid {
    index_t rows = 0;         ///< image rows R
    index_t cols = 0;         ///< image columns Q
    index_t patch_rows = 0;   ///< Ph
    index_t patch_cols_ = 0;  ///< Pw

    PatchGrid() = default;
    /// Throws std::invalid_argument unless 1 <= Ph <= R and 1 <= Pw <= Q.
    PatchGrid(index_t rows, index_t cols, index_t patch_rows, index_t patch_cols);

    index_t corner_rows() const { return rows - patch_rows + 1; }   ///< R - Ph + 1
    index_t corner_cols() const { return cols - patch_cols_ + 1; }  ///< Q - Pw + 1
    index_t n_patches() const { return corner_rows() * corner_cols(); }
    index_t patch_size() const { return patch_rows * patch_cols_; }  ///< D
    index_t n_pixels() const { return rows * cols; }

    /// Number of patches covering pixel (r, c): (#valid r0) * (#valid c0), ALGORITHM.md §2.2.
    index_t coverage(index_t r, index_t c) const;
    /// Range [first, last] of patch-corner rows covering image row r.
    void corner_row_range(index_t r, index_t& first, index_t& last) const;
    /// Range [first, last] of patch-corner columns covering image column c.
    void corner_col_range(index_t c, index_t& first, index_t& last) const;
};

/// Copies every patch of `image` (R x Q, row-major) into `patches` (N x D, row-major).
///
/// Safe to call without the GIL; parallel over patch-corner rows, results independent of
/// n_threads. `patches` must hold grid.n_patches() * grid.patch_size() doubles.
void extract_patches(const double* image, const PatchGrid& grid, double* patches, int n_threads);

}  // namespace zse
