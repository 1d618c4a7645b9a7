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

// Each of n_parts workers finishes its share of slices; put together they must equal one run over
// the whole image bit for bit, with an estimator that (like the warm-start chains) depends on the
// rows since its band started.
static void check_parts(index_t Z, index_t R, index_t Q, index_t Pz, index_t Ph, index_t Pw,
                        int n_parts, int threads) {
    const zse::VolumeGrid g(Z, R, Q, Pz, Ph, Pw);
    std::mt19937_64 gen(11);
    std::normal_distribution<double> normal;
    std::vector<double> volume(static_cast<std::size_t>(g.n_voxels()));
    for (double& v : volume) v = normal(gen);
    const index_t D = g.D();
    std::vector<index_t> rows_since_start(16, 0);
    const zse::RowEstimator chained = [&](const zse::RowJob& job) {
        index_t& k = rows_since_start[static_cast<std::size_t>(job.slot)];
        k = job.band_start ? 0 : k + 1;
        for (index_t i = 0; i < job.count * D; ++i) job.estimates[i] = job.patches[i] + 1e-3 * k;
    };
    std::vector<double> whole_mean(volume.size()), whole_median(volume.size());
    zse::StreamOutputs whole;
    whole.mean = whole_mean.data();
    whole.median = whole_median.data();
    zse::estimate_and_merge(volume.data(), g, zse::PatchTransform{}, chained,
                            zse::EstimateTransform{}, whole, threads);
    const bool image = Z == 1 && Pz == 1;
    const index_t slice_size = image ? Q : R * Q;  // slices are rows of an image
    index_t next = 0;
    for (int part = 0; part < n_parts; ++part) {
        const zse::SliceRange range = zse::slices_of_part(g, part, n_parts);
        if (range.first == range.last) continue;
        CHECK(range.first == next);  // contiguous, in part order
        next = range.last;
        const std::size_t n = static_cast<std::size_t>((range.last - range.first) * slice_size);
        std::vector<double> mean(n), median(n);
        zse::StreamOutputs out;
        out.mean = mean.data();
        out.median = median.data();
        out.slice_begin = range.first;
        out.slice_end = range.last;
        zse::estimate_and_merge(volume.data(), g, zse::PatchTransform{}, chained,
                                zse::EstimateTransform{}, out, threads);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(mean[i] == whole_mean[range.first * slice_size + i]);
            CHECK(median[i] == whole_median[range.first * slice_size + i]);
        }
    }
    CHECK(next == (image ? R : Z));  // every slice belongs to one part
}

int main() {
    for (int parts : {1, 2, 3, 5}) {
        for (int threads : {1, 2}) {
            check_parts(1, 70, 9, 1, 5, 3, parts, threads);  // 66 corner rows: 5 bands of 16
            check_parts(9, 5, 6, 3, 2, 2, parts, threads);   // 7 corner slices: one per band
        }
    }
    for (int threads : {1, 2, 3}) {
        check_volume(1, 37, 23, 1, 4, 3, threads);  // an image: bands of corner rows
        check_volume(1, 5, 5, 1, 5, 5, threads);    // one patch
        check_volume(6, 7, 8, 2, 3, 2, threads);    // a volume: bands of corner slices
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
