#include "zse/merge.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "zse/parallel.hpp"

namespace zse {
namespace {

[[noreturn]] void throw_non_finite(index_t r, index_t c) {
    throw std::invalid_argument(
        "estimates contain NaN or inf (or values so large that their sum overflows) for pixel (" +
        std::to_string(r) + ", " + std::to_string(c) + ")");
}

// Streams every estimate that lands in image row r and accumulates, per column, the shifted sums
// s = sum w (x - K) and ss = sum w (x - K)^2 (and the weight sum when weighted).
template <bool Weighted>
void accumulate_row(const double* estimates, const PatchGrid& grid, const double* weights,
                    index_t r, const double* shift, double* s, double* ss, double* wsum) {
    const index_t Qc = grid.corner_cols(), Pw = grid.patch_cols_, D = grid.patch_size();
    index_t r_first, r_last;
    grid.corner_row_range(r, r_first, r_last);
    for (index_t r0 = r_first; r0 <= r_last; ++r0) {
        const index_t i = r - r0;
        const double* patch_row = estimates + (r0 * Qc) * D + i * Pw;
        for (index_t c0 = 0; c0 < Qc; ++c0, patch_row += D) {
            const double* k = shift + c0;
            double* s_c = s + c0;
            double* ss_c = ss + c0;
            if constexpr (Weighted) {
                const double w = weights[r0 * Qc + c0];
                for (index_t j = 0; j < Pw; ++j) {
                    const double x = patch_row[j] - k[j];
                    s_c[j] += w * x;
                    ss_c[j] += w * x * x;
                    wsum[c0 + j] += w;
                }
            } else {
                for (index_t j = 0; j < Pw; ++j) {
                    const double x = patch_row[j] - k[j];
                    s_c[j] += x;
                    ss_c[j] += x * x;
                }
            }
        }
    }
}

// One estimate of every pixel of row r: the one from the first covering patch. Used as the shift.
void first_estimates_of_row(const double* estimates, const PatchGrid& grid, index_t r,
                            double* shift) {
    const index_t Qc = grid.corner_cols(), Pw = grid.patch_cols_, D = grid.patch_size();
    index_t r_first, r_last;
    grid.corner_row_range(r, r_first, r_last);
    const index_t i = r - r_first;
    for (index_t c = 0; c < grid.cols; ++c) {
        index_t c_first, c_last;
        grid.corner_col_range(c, c_first, c_last);
        shift[c] = estimates[(r_first * Qc + c_first) * D + i * Pw + (c - c_first)];
    }
}

void median_row(const double* estimates, const PatchGrid& grid, index_t r, MedianKind kind,
                std::vector<double>& values, std::vector<index_t>& n_values, double* median) {
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
        double* v = values.data() + c * stride;
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
    require(weights == nullptr || out.median == nullptr,
            "per-patch weights are supported for mean and var, not for median");
    const index_t R = grid.rows, Q = grid.cols;
    const bool want_moments = out.mean != nullptr || out.var != nullptr;

    if (weights != nullptr) {
        for (index_t n = 0; n < grid.n_patches(); ++n) {
            require(std::isfinite(weights[n]) && weights[n] > 0.0,
                    "weights must be finite and > 0; weight of patch " + std::to_string(n) +
                        " is " + std::to_string(weights[n]));
        }
    }

    parallel_for(R, n_threads, [&](index_t r) {
        if (out.count != nullptr) {
            for (index_t c = 0; c < Q; ++c) {
                out.count[r * Q + c] = static_cast<double>(grid.coverage(r, c));
            }
        }
        if (want_moments) {
            std::vector<double> shift(Q), s(Q, 0.0), ss(Q, 0.0), wsum;
            first_estimates_of_row(estimates, grid, r, shift.data());
            if (weights != nullptr) {
                wsum.assign(Q, 0.0);
                accumulate_row<true>(estimates, grid, weights, r, shift.data(), s.data(),
                                     ss.data(), wsum.data());
            } else {
                accumulate_row<false>(estimates, grid, nullptr, r, shift.data(), s.data(),
                                      ss.data(), nullptr);
            }
            for (index_t c = 0; c < Q; ++c) {
                if (!std::isfinite(shift[c]) || !std::isfinite(s[c]) || !std::isfinite(ss[c])) {
                    throw_non_finite(r, c);
                }
                const double total =
                    weights != nullptr ? wsum[c] : static_cast<double>(grid.coverage(r, c));
                const double mean_shifted = s[c] / total;
                if (out.mean != nullptr) out.mean[r * Q + c] = shift[c] + mean_shifted;
                if (out.var != nullptr) {
                    // Rounding can push the difference a few ulps below zero; a variance is >= 0.
                    out.var[r * Q + c] =
                        std::max(0.0, ss[c] / total - mean_shifted * mean_shifted);
                }
            }
        }
        if (out.median != nullptr) {
            std::vector<double> values(static_cast<std::size_t>(Q * grid.patch_size()));
            std::vector<index_t> n_values(static_cast<std::size_t>(Q));
            median_row(estimates, grid, r, median_kind, values, n_values, out.median);
        }
    });
}

}  // namespace zse
