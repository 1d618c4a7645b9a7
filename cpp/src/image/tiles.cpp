#include "zse/tiles.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "zse/parallel.hpp"

namespace zse {
namespace {

// The driver works on a normalised view whose outermost axis carries the bands: a 3-D volume
// as it is (bands of corner slices), a 2-D image (1, R, Q) as (R, 1, Q) with patch (Ph, 1, Pw)
// (bands of corner rows). Both views give the same patch indices n and in-patch indices d.
VolumeGrid banded_view(const VolumeGrid& g) {
    if (g.Z == 1 && g.Pz == 1) return VolumeGrid(g.R, 1, g.Q, g.Ph, 1, g.Pw);
    return g;
}

// 2-D: 16 corner rows per band (a warm-start chain runs through a band, so longer bands search
// better; the ring buffer grows with the band). 3-D: one corner slice (a slice holds R x Q
// patches already).
index_t band_length_for(const VolumeGrid& original) {
    return original.Z == 1 ? 16 : 1;
}

constexpr double kRingBudgetBytes = 512.0 * 1024 * 1024;

[[noreturn]] void throw_non_finite(const VolumeGrid& original, index_t z, index_t r, index_t c) {
    std::string where = original.Z == 1 && original.Pz == 1
                            ? "pixel (" + std::to_string(z) + ", " + std::to_string(c) + ")"
                            : "voxel (" + std::to_string(z) + ", " + std::to_string(r) + ", " +
                                  std::to_string(c) + ")";
    throw std::invalid_argument("estimates contain NaN or inf for " + where);
}

}  // namespace

StreamPlan plan_stream(const VolumeGrid& original, bool want_variances, int n_threads) {
    const VolumeGrid g = banded_view(original);
    StreamPlan plan;
    plan.band_length = band_length_for(original);
    plan.n_bands = (g.Zc() + plan.band_length - 1) / plan.band_length;
    const double slice_bytes =
        static_cast<double>(g.R * g.Q * g.D()) * 8.0 * (want_variances ? 2 : 1);
    index_t wave = std::max<index_t>(1, std::min<index_t>(n_threads, plan.n_bands));
    while (wave > 1 &&
           static_cast<double>(wave * plan.band_length + g.Pz - 1) * slice_bytes > kRingBudgetBytes)
        --wave;
    plan.wave = wave;
    plan.ring_slices = std::min<index_t>(wave * plan.band_length + g.Pz - 1, g.Z);
    plan.ring_bytes = static_cast<double>(plan.ring_slices) * slice_bytes;
    plan.scratch_bytes = static_cast<double>(g.Qc() * g.D()) * 8.0 * 3.0;
    return plan;
}

SliceRange slices_of_part(const VolumeGrid& original, int part, int n_parts) {
    require(n_parts >= 1 && part >= 0 && part < n_parts, "part must be in [0, n_parts)");
    const VolumeGrid g = banded_view(original);
    const index_t L = band_length_for(original), n_bands = (g.Zc() + L - 1) / L;
    const index_t b0 = n_bands * part / n_parts, b1 = n_bands * (part + 1) / n_parts;
    SliceRange range;
    if (b0 == b1) return range;
    range.first = b0 == 0 ? 0 : b0 * L;
    range.last = b1 == n_bands ? g.Z : b1 * L;
    return range;
}

void estimate_and_merge(const double* volume, const VolumeGrid& original,
                        const PatchTransform& to_model, const RowEstimator& estimator,
                        const EstimateTransform& to_data, const StreamOutputs& out, int n_threads) {
    require(n_threads >= 1, "n_threads must be >= 1");
    const VolumeGrid g = banded_view(original);
    const bool want_var = out.pvar != nullptr;
    const StreamPlan plan = plan_stream(original, want_var, n_threads);
    const index_t D = g.D(), Qc = g.Qc(), Rc = g.Rc(), Zc = g.Zc();
    const index_t plane = g.R * g.Q, ring = plan.ring_slices, L = plan.band_length;
    // The slices this call finishes, and the bands whose patches cover them.
    const index_t s_begin = out.slice_begin, s_end = out.slice_end < 0 ? g.Z : out.slice_end;
    require(0 <= s_begin && s_begin <= s_end && s_end <= g.Z, "output slice range out of bounds");
    if (s_begin == s_end) return;
    const index_t band_lo = std::max<index_t>(0, s_begin - (g.Pz - 1)) / L;
    const index_t band_hi = (std::min(s_end, Zc) + L - 1) / L;
    const index_t out_first = s_begin * plane;  // index of the outputs' first pixel
    std::vector<double> ring_est(static_cast<std::size_t>(ring * plane * D));
    std::vector<double> ring_var(want_var ? ring_est.size() : 0);
    const int slots = static_cast<int>(plan.wave);
    std::vector<std::vector<double>> patches(slots), est(slots), var(slots);
    const double scale_e = to_data.multiply, div_e = to_data.divide;
    const double scale_v = to_data.multiply * to_data.multiply,
                 div_v = to_data.divide * to_data.divide;

    // Estimates of one band go to the ring: voxel (z, r, c) of patch (z0, r0, c0) keeps its
    // estimate in slot d = ((z - z0) Ph + (r - r0)) Pw + (c - c0), so every estimate has its own
    // place and nothing depends on which band (or thread) wrote it.
    auto run_band = [&](index_t band, int slot) {
        std::vector<double>& p = patches[slot];
        std::vector<double>& e = est[slot];
        std::vector<double>& v = var[slot];
        p.resize(static_cast<std::size_t>(Qc * D));
        e.resize(p.size());
        if (want_var) v.resize(p.size());
        const index_t z_begin = band * L, z_end = std::min(Zc, z_begin + L);
        for (index_t z0 = z_begin; z0 < z_end; ++z0) {
            for (index_t r0 = 0; r0 < Rc; ++r0) {
                const index_t first = (z0 * Rc + r0) * Qc;
                for (index_t t = 0; t < Qc; ++t)
                    read_patch(volume, g, first + t, to_model, p.data() + t * D);
                RowJob job;
                job.first = first;
                job.count = Qc;
                job.band_start = z0 == z_begin && r0 == 0;
                job.slot = slot;
                job.patches = p.data();
                job.estimates = e.data();
                job.variances = want_var ? v.data() : nullptr;
                estimator(job);
                for (index_t t = 0; t < Qc; ++t) {
                    const double* et = e.data() + t * D;
                    const double* vt = want_var ? v.data() + t * D : nullptr;
                    index_t d = 0;
                    for (index_t k = 0; k < g.Pz; ++k) {
                        const index_t slice = (z0 + k) % ring;
                        for (index_t i = 0; i < g.Ph; ++i) {
                            double* dst =
                                ring_est.data() + ((slice * plane) + (r0 + i) * g.Q + t) * D;
                            double* dst_v =
                                want_var
                                    ? ring_var.data() + ((slice * plane) + (r0 + i) * g.Q + t) * D
                                    : nullptr;
                            for (index_t j = 0; j < g.Pw; ++j, ++d) {
                                const double off =
                                    to_data.offset != nullptr ? to_data.offset[d] : 0.0;
                                // The pixel (.., c0 + j) keeps this patch's value in slot d.
                                dst[j * D + d] = et[d] * scale_e / div_e + off;
                                if (want_var) dst_v[j * D + d] = vt[d] * scale_v / div_v;
                            }
                        }
                    }
                }
            }
        }
    };

    // Statistics of the finished slices, per voxel over its valid slots in slot order.
    auto finish_row = [&](index_t z, index_t r, std::vector<double>& values,
                          std::vector<double>& vars) {
        const index_t slice = z % ring;
        index_t z_first, z_last, r_first, r_last;
        corner_range(z, g.Z, g.Pz, z_first, z_last);
        corner_range(r, g.R, g.Ph, r_first, r_last);
        for (index_t c = 0; c < g.Q; ++c) {
            index_t c_first, c_last;
            corner_range(c, g.Q, g.Pw, c_first, c_last);
            const double* slots = ring_est.data() + (slice * plane + r * g.Q + c) * D;
            const double* vslots =
                want_var ? ring_var.data() + (slice * plane + r * g.Q + c) * D : nullptr;
            values.clear();
            vars.clear();
            for (index_t z0 = z_first; z0 <= z_last; ++z0)
                for (index_t r0 = r_first; r0 <= r_last; ++r0)
                    for (index_t c0 = c_first; c0 <= c_last; ++c0) {
                        const index_t d = ((z - z0) * g.Ph + (r - r0)) * g.Pw + (c - c0);
                        values.push_back(slots[d]);
                        if (want_var) vars.push_back(vslots[d]);
                    }
            const index_t m = static_cast<index_t>(values.size());
            // Shifted by the first estimate: exact when all estimates agree, and no digits lost
            // to a large common offset.
            const double shift = values[0];
            double sum = 0.0;
            for (double x : values) sum += x - shift;
            const double mean = shift + sum / static_cast<double>(m);
            if (!std::isfinite(mean)) throw_non_finite(original, z, r, c);
            const index_t pixel = (z * g.R + r) * g.Q + c - out_first;
            double variance = 0.0;
            if (out.var != nullptr || out.pvar != nullptr) {
                double ss = 0.0;
                for (double x : values) ss += (x - mean) * (x - mean);
                variance = ss / static_cast<double>(m);
                if (!std::isfinite(variance)) throw_non_finite(original, z, r, c);
            }
            if (out.mean != nullptr) out.mean[pixel] = mean;
            if (out.var != nullptr) out.var[pixel] = variance;
            if (out.count != nullptr) out.count[pixel] = static_cast<double>(m);
            if (out.pvar != nullptr) {
                double vs = 0.0;
                for (double x : vars) vs += x;
                out.pvar[pixel] = vs / static_cast<double>(m) + variance;
            }
            if (out.median != nullptr) {
                const std::size_t half = static_cast<std::size_t>(m / 2);
                std::nth_element(values.begin(), values.begin() + half, values.end());
                double med = values[half];
                if (m % 2 == 0) {
                    const double lower = *std::max_element(values.begin(), values.begin() + half);
                    med = out.median_kind == MedianKind::lower ? lower : 0.5 * (lower + med);
                }
                out.median[pixel] = med;
            }
        }
    };

    index_t finished = band_lo * L;  // slices [band_lo L, finished) are final (or not ours)
    for (index_t wave_start = band_lo; wave_start < band_hi; wave_start += plan.wave) {
        const index_t wave_end = std::min(band_hi, wave_start + plan.wave);
        parallel_for(wave_end - wave_start, static_cast<int>(plan.wave), [&](index_t i) {
            // Each band of the wave has its own slot, so workspaces are never shared.
            run_band(wave_start + i, static_cast<int>(i));
        });
        const index_t corner_end = std::min(Zc, wave_end * L);
        const index_t done = corner_end == Zc ? g.Z : corner_end;
        const index_t first_slice = std::max(finished, s_begin), last_slice = std::min(done, s_end);
        const index_t rows = std::max<index_t>(0, last_slice - first_slice) * g.R;
        std::vector<std::vector<double>> values(static_cast<std::size_t>(std::max(1, n_threads))),
            vars(values.size());
        parallel_for(
            rows, n_threads,
            [&](index_t k) {
#ifdef _OPENMP
                const std::size_t tid = static_cast<std::size_t>(omp_get_thread_num());
#else
                const std::size_t tid = 0;
#endif
                finish_row(first_slice + k / g.R, k % g.R, values[tid], vars[tid]);
            },
            8);
        finished = done;
        if (out.on_wave) out.on_wave(wave_end - band_lo, band_hi - band_lo);
    }
}

}  // namespace zse
