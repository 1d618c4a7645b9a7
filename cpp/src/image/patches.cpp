#include "zse/patches.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "zse/parallel.hpp"

namespace zse {

PatchGrid::PatchGrid(index_t rows_, index_t cols_, index_t patch_rows_, index_t patch_cols)
    : rows(rows_), cols(cols_), patch_rows(patch_rows_), patch_cols_(patch_cols) {
    require(patch_rows >= 1 && patch_cols_ >= 1,
            "patch size must be >= 1 in both dimensions, got " + std::to_string(patch_rows) + "x" +
                std::to_string(patch_cols_));
    require(rows >= patch_rows && cols >= patch_cols_,
            "image of shape (" + std::to_string(rows) + ", " + std::to_string(cols) +
                ") is smaller than the patch size " + std::to_string(patch_rows) + "x" +
                std::to_string(patch_cols_));
}

void PatchGrid::corner_row_range(index_t r, index_t& first, index_t& last) const {
    first = std::max<index_t>(0, r - patch_rows + 1);
    last = std::min<index_t>(r, rows - patch_rows);
}

void PatchGrid::corner_col_range(index_t c, index_t& first, index_t& last) const {
    first = std::max<index_t>(0, c - patch_cols_ + 1);
    last = std::min<index_t>(c, cols - patch_cols_);
}

index_t PatchGrid::coverage(index_t r, index_t c) const {
    index_t r_first, r_last, c_first, c_last;
    corner_row_range(r, r_first, r_last);
    corner_col_range(c, c_first, c_last);
    return (r_last - r_first + 1) * (c_last - c_first + 1);
}

void extract_patches(const double* image, const PatchGrid& grid, double* patches, int n_threads) {
    const index_t n_corner_cols = grid.corner_cols();
    const index_t Ph = grid.patch_rows, Pw = grid.patch_cols_, D = grid.patch_size();
    const index_t Q = grid.cols;
    parallel_for(grid.corner_rows(), n_threads, [&](index_t r0) {
        double* out = patches + r0 * n_corner_cols * D;
        for (index_t c0 = 0; c0 < n_corner_cols; ++c0, out += D) {
            for (index_t i = 0; i < Ph; ++i) {
                std::memcpy(out + i * Pw, image + (r0 + i) * Q + c0,
                            static_cast<std::size_t>(Pw) * sizeof(double));
            }
        }
    });
}

}  // namespace zse
