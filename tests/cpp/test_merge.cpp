#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "check.hpp"
#include "zse/merge.hpp"

using zse::index_t;

// Straightforward reference: gather each pixel's estimates and reduce them.
static void reference(const std::vector<double>& est, const zse::PatchGrid& g,
                      std::vector<double>& mean, std::vector<double>& var,
                      std::vector<double>& median) {
    const index_t D = g.patch_size();
    for (index_t r = 0; r < g.rows; ++r)
        for (index_t c = 0; c < g.cols; ++c) {
            std::vector<double> v;
            for (index_t r0 = 0; r0 < g.corner_rows(); ++r0)
                for (index_t c0 = 0; c0 < g.corner_cols(); ++c0) {
                    const index_t i = r - r0, j = c - c0;
                    if (i < 0 || j < 0 || i >= g.patch_rows || j >= g.patch_cols_) continue;
                    v.push_back(est[(r0 * g.corner_cols() + c0) * D + i * g.patch_cols_ + j]);
                }
            double m = 0;
            for (double x : v) m += x;
            m /= v.size();
            double s2 = 0;
            for (double x : v) s2 += (x - m) * (x - m);
            std::sort(v.begin(), v.end());
            const size_t k = v.size();
            mean[r * g.cols + c] = m;
            var[r * g.cols + c] = s2 / k;
            median[r * g.cols + c] = k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
        }
}

int main() {
    const zse::PatchGrid grid(9, 11, 3, 4);
    const index_t N = grid.n_patches(), D = grid.patch_size(), P = grid.n_pixels();
    std::mt19937_64 rng(42);
    std::normal_distribution<double> normal(100.0, 10.0);
    std::vector<double> est(N * D);
    for (double& x : est) x = normal(rng);

    std::vector<double> ref_mean(P), ref_var(P), ref_median(P);
    reference(est, grid, ref_mean, ref_var, ref_median);

    std::vector<double> first_mean;
    for (int threads : {1, 2}) {
        std::vector<double> mean(P), var(P), median(P), count(P);
        zse::MergeOutputs out{mean.data(), var.data(), median.data(), count.data()};
        zse::merge_patches(est.data(), grid, nullptr, out, zse::MedianKind::average, threads);
        for (index_t p = 0; p < P; ++p) {
            CHECK_CLOSE(mean[p], ref_mean[p], 1e-13);
            CHECK_CLOSE(var[p], ref_var[p], 1e-9);
            CHECK(median[p] == ref_median[p]);
            CHECK(count[p] == static_cast<double>(grid.coverage(p / grid.cols, p % grid.cols)));
        }
        if (first_mean.empty())
            first_mean = mean;
        else
            CHECK(first_mean == mean);  // bit-identical across thread counts
    }

    // A NaN estimate is an error, not a silently propagated NaN pixel.
    std::vector<double> bad = est;
    bad[5 * D + 2] = std::numeric_limits<double>::quiet_NaN();
    std::vector<double> mean(P);
    zse::MergeOutputs only_mean;
    only_mean.mean = mean.data();
    CHECK_THROWS(
        zse::merge_patches(bad.data(), grid, nullptr, only_mean, zse::MedianKind::average, 2));
    zse::MergeOutputs only_median;
    only_median.median = mean.data();
    CHECK_THROWS(
        zse::merge_patches(bad.data(), grid, nullptr, only_median, zse::MedianKind::average, 1));
    // Weights must be positive.
    std::vector<double> weights(N, 1.0);
    weights[3] = 0.0;
    CHECK_THROWS(zse::merge_patches(est.data(), grid, weights.data(), only_mean,
                                    zse::MedianKind::average, 1));
    TEST_MAIN_END();
}
