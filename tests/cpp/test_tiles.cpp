// The streamed estimate + merge driver against a brute-force merge, for images and volumes
#include <algorithm>
// (runs under AddressSanitizer in CI).
#include <cmath>
#include <random>
#include <vector>

#include "check.hpp"
#include "zse/tiles.hpp"
#include "zse/volume.hpp"

using zse::index_t;

static void check_volume(index_t Z, index_t R, index_t Q, index_t Pz, index_t Ph, index_t Pw,
                         int threads) {
    const zse::VolumeGrid g(Z, R, Q, Pz, Ph, Pw);
    std::mt19937_64 gen(7);
    std::normal_distribution<double> normal;
    std::vector<double> volume(static_cast<std::size_t>(g.n_voxels()));
    for (double& v : volume) v = normal(gen);
    const index_t D = g.D(), N = g.n_patches();
    // A patch's estimate: its values plus a patch-dependent offset, so voxels see different
    // values; its "variance": a constant per patch.
    std::vector<double> mean(volume.size()), var(volume.size()), pvar(volume.size()),
        median(volume.size()), count(volume.size());
    zse::StreamOutputs out;
    out.mean = mean.data();
    out.var = var.data();
    out.pvar = pvar.data();
    out.median = median.data();
    out.count = count.data();
    const zse::RowEstimator est = [&](const zse::RowJob& job) {
        for (index_t t = 0; t < job.count; ++t)
            for (index_t d = 0; d < D; ++d) {
                job.estimates[t * D + d] = job.patches[t * D + d] + 0.01 * ((job.first + t) % 5);
                job.variances[t * D + d] = 0.5 + 0.001 * ((job.first + t) % 3);
            }
    };
    zse::estimate_and_merge(volume.data(), g, zse::PatchTransform{}, est, zse::EstimateTransform{},
                            out, threads);
    // Brute force over every patch.
    std::vector<std::vector<double>> values(volume.size()), vars(volume.size());
    std::vector<double> patch(static_cast<std::size_t>(D));
    for (index_t n = 0; n < N; ++n) {
        zse::read_patch(volume.data(), g, n, zse::PatchTransform{}, patch.data());
        const index_t c0 = n % g.Qc(), r0 = (n / g.Qc()) % g.Rc(), z0 = n / (g.Qc() * g.Rc());
        index_t d = 0;
        for (index_t k = 0; k < Pz; ++k)
            for (index_t i = 0; i < Ph; ++i)
                for (index_t j = 0; j < Pw; ++j, ++d) {
                    const index_t v = ((z0 + k) * R + r0 + i) * Q + c0 + j;
                    CHECK(patch[d] == volume[v]);
                    values[v].push_back(patch[d] + 0.01 * (n % 5));
                    vars[v].push_back(0.5 + 0.001 * (n % 3));
                }
    }
    for (std::size_t v = 0; v < volume.size(); ++v) {
        const auto& x = values[v];
        double m = 0, s = 0, pv = 0;
        for (double a : x) m += a;
        m /= x.size();
        for (double a : x) s += (a - m) * (a - m);
        for (double a : vars[v]) pv += a;
        CHECK(count[v] == static_cast<double>(x.size()));
        CHECK(static_cast<index_t>(x.size()) == g.coverage(v / (R * Q), (v / Q) % R, v % Q));
        CHECK_CLOSE(mean[v], m, 1e-12);
        CHECK_CLOSE(var[v], s / x.size(), 1e-12);
        CHECK_CLOSE(pvar[v], pv / x.size() + s / x.size(), 1e-12);
        std::vector<double> sorted = x;
        std::sort(sorted.begin(), sorted.end());
        const std::size_t h = sorted.size() / 2;
        const double med = sorted.size() % 2 ? sorted[h] : 0.5 * (sorted[h - 1] + sorted[h]);
        CHECK_CLOSE(median[v], med, 1e-12);
    }
}

int main() {
    for (int threads : {1, 2, 3}) {
        check_volume(1, 37, 23, 1, 4, 3, threads);   // an image: bands of corner rows
        check_volume(1, 5, 5, 1, 5, 5, threads);     // one patch
        check_volume(6, 7, 8, 2, 3, 2, threads);     // a volume: bands of corner slices
        check_volume(5, 4, 6, 3, 1, 2, threads);
    }
    // Non-finite estimates are reported, not merged.
    const zse::VolumeGrid g(1, 6, 6, 1, 2, 2);
    std::vector<double> volume(36, 1.0), mean(36);
    zse::StreamOutputs out;
    out.mean = mean.data();
    const zse::RowEstimator nan_estimator = [&](const zse::RowJob& job) {
        for (index_t i = 0; i < job.count * 4; ++i) job.estimates[i] = std::nan("");
    };
    CHECK_THROWS(zse::estimate_and_merge(volume.data(), g, zse::PatchTransform{}, nan_estimator,
                                         zse::EstimateTransform{}, out, 2));
    CHECK_THROWS(zse::VolumeGrid(2, 5, 5, 3, 2, 2));
    TEST_MAIN_END();
}
