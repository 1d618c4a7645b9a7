#include "zse/merge.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "zse/parallel.hpp"
#include "zse/simd.hpp"

namespace zse {
namespace {

[[noreturn]] void throw_non_finite(index_t r, index_t c) {
    throw std::invalid_argument(
        "estimates contain NaN or inf (or values so large that their sum overflows) for pixel (" +
        std::to_string(r) + ", " + std::to_string(c) + ")");
}

// The moment pass works on tiles of output pixels: a band of rows x a block of columns. A tile
// streams the patches that cover it patch-row by patch-row, reading each patch contiguously, and
// keeps a rolling window of Ph output rows of accumulators (small enough for L2). Per output row
// and patch-corner column c0 it accumulates U[c0][j] = sum over covering patch rows of (x - K), a
// contiguous update with no overlap between consecutive c0; the anti-diagonal sums
// s[c] = sum_j U[c - j][j] are taken once the row is complete. (Accumulating straight into
// s[c0 + j] chains every store to the next load, and gathering one patch line per output row makes
// strided reads: together they ran at ~15% of the streaming bandwidth.) Tiles own their output
// pixels and their geometry does not depend on the thread count, so neither do the results.
constexpr index_t kTileRows = 32;
constexpr index_t kTileCols = 128;

struct RowAccumulator {
    std::vector<double> shift;  // K: one of the pixel's own estimates, per touched column
    std::vector<double> u1;     // sum w (x - K) per (c0 - c0_lo, j)
    std::vector<double> u2;     // sum w (x - K)^2 per (c0 - c0_lo, j)
    std::vector<double> w;      // sum w per c0 - c0_lo (weighted merges only)
};

struct Tile {
    index_t r_begin, r_end, c_begin, c_end;  // the output pixels this tile owns
};

// u1 += w (a - k), u2 += w (a - k)^2 over one patch line. The restrict-qualified parameters tell
// the compiler that the four arrays do not overlap (GCC ignores restrict on block-scope pointers),
// without which it reloads after every store and cannot vectorise.
template <bool Weighted, index_t FixedPw>
inline void add_shifted_moments(const double* __restrict a, const double* __restrict k,
                                double* __restrict u1, double* __restrict u2, double w,
                                index_t runtime_pw) {
    const index_t Pw = FixedPw > 0 ? FixedPw : runtime_pw;
#ifdef _OPENMP
#pragma omp simd
#endif
    for (index_t j = 0; j < Pw; ++j) {
        const double x = a[j] - k[j];
        if constexpr (Weighted) {
            u1[j] += w * x;
            u2[j] += w * x * x;
        } else {
            u1[j] += x;
            u2[j] += x * x;
        }
    }
}

// FixedPw > 0 fixes the patch width at compile time, which lets the compiler unroll and vectorise
// the innermost loop (a runtime trip count of 6 or 8 stays scalar); 0 means "read it at run time".
// Returns the linear index of the first pixel whose sums are not finite, or -1. It reports rather
// than throws because exceptions must not unwind through the target_clones dispatcher below.
template <bool Weighted, index_t FixedPw>
index_t moments_tile(const double* estimates, const PatchGrid& grid, const double* weights,
                     const Tile& tile, const MergeOutputs& out) {
    const index_t Qc = grid.corner_cols(), Rc = grid.corner_rows();
    const index_t Ph = grid.patch_rows, D = grid.patch_size();
    const index_t Pw = FixedPw > 0 ? FixedPw : grid.patch_cols_;
    const index_t Q = grid.cols;
    // Corner columns whose patches reach the tile's columns (a halo of Pw - 1 on the left).
    const index_t c0_lo = std::max<index_t>(0, tile.c_begin - Pw + 1);
    const index_t c0_hi = std::min<index_t>(Qc - 1, tile.c_end - 1);
    const index_t n_c0 = c0_hi - c0_lo + 1;
    const index_t n_cols = n_c0 + Pw - 1;  // image columns c0_lo .. c0_hi + Pw - 1
    const index_t r0_lo = std::max<index_t>(0, tile.r_begin - Ph + 1);
    const index_t r0_hi = std::min<index_t>(Rc - 1, tile.r_end - 1);

    std::vector<RowAccumulator> ring(static_cast<std::size_t>(Ph));
    for (RowAccumulator& acc : ring) {
        acc.shift.resize(static_cast<std::size_t>(n_cols));
        acc.u1.resize(static_cast<std::size_t>(n_c0 * Pw));
        acc.u2.resize(static_cast<std::size_t>(n_c0 * Pw));
        if (Weighted) acc.w.resize(static_cast<std::size_t>(n_c0));
    }
    auto slot = [&](index_t r) -> RowAccumulator& {
        return ring[static_cast<std::size_t>(r % Ph)];
    };

    auto start_row = [&](index_t r) {
        RowAccumulator& acc = slot(r);
        std::fill(acc.u1.begin(), acc.u1.end(), 0.0);
        std::fill(acc.u2.begin(), acc.u2.end(), 0.0);
        std::fill(acc.w.begin(), acc.w.end(), 0.0);
        index_t r_first, r_last;
        grid.corner_row_range(r, r_first, r_last);
        for (index_t k = 0; k < n_cols; ++k) {
            const index_t c = c0_lo + k;
            index_t c_first, c_last;
            grid.corner_col_range(c, c_first, c_last);
            acc.shift[k] =
                estimates[(r_first * Qc + c_first) * D + (r - r_first) * Pw + (c - c_first)];
        }
    };

    index_t bad_pixel = -1;
    auto finish_row = [&](index_t r) {
        const RowAccumulator& acc = slot(r);
        for (index_t c = tile.c_begin; c < tile.c_end; ++c) {
            index_t c_first, c_last;
            grid.corner_col_range(c, c_first, c_last);
            double s = 0.0, ss = 0.0, total = 0.0;
            for (index_t c0 = c_first; c0 <= c_last; ++c0) {
                s += acc.u1[(c0 - c0_lo) * Pw + (c - c0)];
                ss += acc.u2[(c0 - c0_lo) * Pw + (c - c0)];
                if constexpr (Weighted) total += acc.w[c0 - c0_lo];
            }
            if constexpr (!Weighted) total = static_cast<double>(grid.coverage(r, c));
            const double k = acc.shift[c - c0_lo];
            // Squares of values beyond 1e154 overflow; they matter only for the variance.
            if (!std::isfinite(k) || !std::isfinite(s) ||
                (out.var != nullptr && !std::isfinite(ss))) {
                if (bad_pixel < 0) bad_pixel = r * Q + c;
                continue;
            }
            const double mean_shifted = s / total;
            if (out.mean != nullptr) out.mean[r * Q + c] = k + mean_shifted;
            // Rounding can push the difference a few ulps below zero; a variance is >= 0.
            if (out.var != nullptr) {
                out.var[r * Q + c] = std::max(0.0, ss / total - mean_shifted * mean_shifted);
            }
        }
    };

    std::vector<RowAccumulator*> row_of_i(static_cast<std::size_t>(Ph));  // slot of row r0 + i
    index_t next_row = tile.r_begin;  // rows open as the first patch row covering them arrives
    for (index_t r0 = r0_lo; r0 <= r0_hi; ++r0) {
        const index_t last_row = std::min(tile.r_end - 1, r0 + Ph - 1);
        for (; next_row <= last_row; ++next_row) start_row(next_row);
        const index_t i_lo = std::max<index_t>(0, tile.r_begin - r0);
        const index_t i_hi = last_row - r0;
        for (index_t i = i_lo; i <= i_hi; ++i)
            row_of_i[static_cast<std::size_t>(i)] = &slot(r0 + i);
        for (index_t c0 = c0_lo; c0 <= c0_hi; ++c0) {
            const double* patch = estimates + (r0 * Qc + c0) * D;
            const index_t local = c0 - c0_lo;
            double w = 1.0;
            if constexpr (Weighted) w = weights[r0 * Qc + c0];
            for (index_t i = i_lo; i <= i_hi; ++i) {
                RowAccumulator& acc = *row_of_i[static_cast<std::size_t>(i)];
                if constexpr (Weighted) acc.w[local] += w;
                add_shifted_moments<Weighted, FixedPw>(patch + i * Pw, acc.shift.data() + local,
                                                       acc.u1.data() + local * Pw,
                                                       acc.u2.data() + local * Pw, w, Pw);
            }
        }
        // Output row r is complete once min(r, Rc - 1), its last covering patch row, is done.
        if (r0 < Rc - 1) {
            if (r0 >= tile.r_begin) finish_row(r0);
        } else {
            for (index_t r = std::max(r0, tile.r_begin); r < tile.r_end; ++r) finish_row(r);
        }
    }
    return bad_pixel;
}

// Compiled for x86-64-v3 and the baseline ISA (see simd.hpp). FP contraction is off under
// -std=c++17, so both clones round identically.
template <index_t FixedPw>
ZSE_HOT_CLONES index_t moments_tile_fixed(const double* estimates, const PatchGrid& grid,
                                          const double* weights, const Tile& tile,
                                          const MergeOutputs& out) {
    if (weights != nullptr) return moments_tile<true, FixedPw>(estimates, grid, weights, tile, out);
    return moments_tile<false, FixedPw>(estimates, grid, nullptr, tile, out);
}

index_t moments_tile_dispatch(const double* estimates, const PatchGrid& grid, const double* weights,
                              const Tile& tile, const MergeOutputs& out) {
    switch (grid.patch_cols_) {  // the patch widths people use
        case 3:
            return moments_tile_fixed<3>(estimates, grid, weights, tile, out);
        case 4:
            return moments_tile_fixed<4>(estimates, grid, weights, tile, out);
        case 5:
            return moments_tile_fixed<5>(estimates, grid, weights, tile, out);
        case 6:
            return moments_tile_fixed<6>(estimates, grid, weights, tile, out);
        case 7:
            return moments_tile_fixed<7>(estimates, grid, weights, tile, out);
        case 8:
            return moments_tile_fixed<8>(estimates, grid, weights, tile, out);
        case 10:
            return moments_tile_fixed<10>(estimates, grid, weights, tile, out);
        case 12:
            return moments_tile_fixed<12>(estimates, grid, weights, tile, out);
        default:
            return moments_tile_fixed<0>(estimates, grid, weights, tile, out);
    }
}

void median_row(const double* estimates, const PatchGrid& grid, index_t r, MedianKind kind,
                double* values, std::vector<index_t>& n_values, double* median) {
    const index_t Qc = grid.corner_cols(), Pw = grid.patch_cols_, D = grid.patch_size();
    const index_t stride = D;  // no pixel has more than D estimates
    std::fill(n_values.begin(), n_values.end(), 0);
    index_t r_first, r_last;
    grid.corner_row_range(r, r_first, r_last);
    for (index_t r0 = r_first; r0 <= r_last; ++r0) {
        const index_t i = r - r0;
        const double* patch_row = estimates + (r0 * Qc) * D + i * Pw;
        for (index_t c0 = 0; c0 < Qc; ++c0, patch_row += D) {
            for (index_t j = 0; j < Pw; ++j) {
                const index_t c = c0 + j;
                values[c * stride + n_values[c]++] = patch_row[j];
            }
        }
    }
    for (index_t c = 0; c < grid.cols; ++c) {
        double* v = values + c * stride;
        const index_t m = n_values[c];
        for (index_t k = 0; k < m; ++k) {
            if (!std::isfinite(v[k])) throw_non_finite(r, c);
        }
        const index_t upper = m / 2;
        std::nth_element(v, v + upper, v + m);
        if (m % 2 == 1) {
            median[r * grid.cols + c] = v[upper];
        } else {
            // nth_element leaves the lower half in front of v[upper]; its maximum is the lower
            // middle value.
            const double lower_middle = *std::max_element(v, v + upper);
            median[r * grid.cols + c] =
                kind == MedianKind::lower ? lower_middle : 0.5 * (lower_middle + v[upper]);
        }
    }
}

}  // namespace

void merge_patches(const double* estimates, const PatchGrid& grid, const double* weights,
                   const MergeOutputs& out, MedianKind median_kind, int n_threads) {
    require(n_threads >= 1, "n_threads must be >= 1");
    require(weights == nullptr || out.median == nullptr,
            "per-patch weights are supported for mean and var, not for median");
    const index_t R = grid.rows, Q = grid.cols;

    if (weights != nullptr) {
        for (index_t n = 0; n < grid.n_patches(); ++n) {
            require(std::isfinite(weights[n]) && weights[n] > 0.0,
                    "weights must be finite and > 0; weight of patch " + std::to_string(n) +
                        " is " + std::to_string(weights[n]));
        }
    }

    if (out.mean != nullptr || out.var != nullptr) {
        std::vector<Tile> tiles;
        for (index_t rb = 0; rb < R; rb += kTileRows) {
            for (index_t cb = 0; cb < Q; cb += kTileCols) {
                tiles.push_back({rb, std::min(R, rb + kTileRows), cb, std::min(Q, cb + kTileCols)});
            }
        }
        parallel_for(static_cast<index_t>(tiles.size()), n_threads, [&](index_t t) {
            const index_t bad_pixel =
                moments_tile_dispatch(estimates, grid, weights, tiles[t], out);
            if (bad_pixel >= 0) throw_non_finite(bad_pixel / Q, bad_pixel % Q);
        });
    }

    if (out.count != nullptr || out.median != nullptr) {
        parallel_for(R, n_threads, [&](index_t r) {
            if (out.count != nullptr) {
                for (index_t c = 0; c < Q; ++c) {
                    out.count[r * Q + c] = static_cast<double>(grid.coverage(r, c));
                }
            }
            if (out.median != nullptr) {
                // Scratch only: every slot read was written first, so skip the zero-fill.
                std::unique_ptr<double[]> values(
                    new double[static_cast<std::size_t>(Q * grid.patch_size())]);
                std::vector<index_t> n_values(static_cast<std::size_t>(Q));
                median_row(estimates, grid, r, median_kind, values.get(), n_values, out.median);
            }
        });
    }
}

}  // namespace zse
