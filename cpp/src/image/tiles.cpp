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
constexpr index_t kParallelBands = 8;

[[noreturn]] void throw_non_finite(const VolumeGrid& original, index_t z, index_t r, index_t c) {
    std::string where = original.Z == 1 && original.Pz == 1
                            ? "pixel (" + std::to_string(z) + ", " + std::to_string(c) + ")"
                            : "voxel (" + std::to_string(z) + ", " + std::to_string(r) + ", " +
                                  std::to_string(c) + ")";
    throw std::invalid_argument("estimates contain NaN or inf for " + where);
}

}  // namespace

StreamPlan plan_stream(const VolumeGrid& original, bool want_variances, bool want_median,
                       MergeMode merge, int n_threads) {
    const VolumeGrid g = banded_view(original);
    StreamPlan plan;
    plan.band_length = band_length_for(original);
    plan.n_bands = (g.Zc() + plan.band_length - 1) / plan.band_length;
    const index_t L = plan.band_length;
    const double plane = static_cast<double>(g.R * g.Q);
    const double full_slice = plane * static_cast<double>(g.D()) * 8.0 * (want_variances ? 2 : 1);
    // The compact merge keeps per voxel the first estimate, the shifted sum and sum of squares
    // (and the sum of variances for pvar).
    plan.accumulators = 3 + (want_variances ? 1 : 0);
    const double compact_slice = plane * static_cast<double>(plan.accumulators) * 8.0;
    // Automatic: compact when the full ring could not hold kParallelBands bands at once (the
    // full merge would then run too few bands in parallel); a choice of the geometry alone.
    if (merge == MergeMode::automatic)
        plan.compact =
            !want_median &&
            static_cast<double>(kParallelBands * L + g.Pz - 1) * full_slice > kRingBudgetBytes;
    else
        plan.compact = merge == MergeMode::compact;
    require(!(plan.compact && want_median),
            "the compact merge keeps no estimates, so it cannot give the median");
    // Full: a ring of estimates. Compact: a ring of accumulators and, per band of the wave, the
    // accumulators of the band's own estimates (folded into the ring in band order).
    auto bytes = [&](index_t wave) {
        const double ring = static_cast<double>(std::min<index_t>(wave * L + g.Pz - 1, g.Z));
        if (!plan.compact) return ring * full_slice;
        return ring * compact_slice + static_cast<double>(wave * (L + g.Pz - 1)) * compact_slice;
    };
    index_t wave = std::max<index_t>(1, std::min<index_t>(n_threads, plan.n_bands));
    while (wave > 1 && bytes(wave) > kRingBudgetBytes) --wave;
    plan.wave = wave;
    plan.ring_slices = std::min<index_t>(wave * L + g.Pz - 1, g.Z);
    plan.ring_bytes = bytes(wave);
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
    const StreamPlan plan =
        plan_stream(original, want_var, out.median != nullptr, out.merge, n_threads);
    const index_t D = g.D(), Qc = g.Qc(), Rc = g.Rc(), Zc = g.Zc();
    const index_t plane = g.R * g.Q, ring = plan.ring_slices, L = plan.band_length;
    // The slices this call finishes, and the bands whose patches cover them.
    const index_t s_begin = out.slice_begin, s_end = out.slice_end < 0 ? g.Z : out.slice_end;
    require(0 <= s_begin && s_begin <= s_end && s_end <= g.Z, "output slice range out of bounds");
    if (s_begin == s_end) return;
    const index_t band_lo = std::max<index_t>(0, s_begin - (g.Pz - 1)) / L;
    const index_t band_hi = (std::min(s_end, Zc) + L - 1) / L;
    // The slices the volume pointer holds must cover those the bands read.
    const index_t in_first = out.input_first_slice;
    const index_t in_last = out.input_slices < 0 ? g.Z : in_first + out.input_slices;
    require(in_first >= 0 && in_first <= band_lo * L &&
                in_last >= std::min(Zc, band_hi * L) - 1 + g.Pz && in_last <= g.Z,
            "the slab of input slices does not hold every slice the bands read");
    const index_t out_first = s_begin * plane;  // index of the outputs' first pixel
    const bool compact = plan.compact;
    const index_t A = plan.accumulators;  // compact: first estimate, sum, sum of squares, [vars]
    // Full: every estimate of a voxel in its own slot. Compact: per voxel the accumulators of
    // the folded bands (ring) and of each band of the wave (band_acc, Pz + L - 1 slices each).
    std::vector<double> ring_est(compact ? 0 : static_cast<std::size_t>(ring * plane * D));
    std::vector<double> ring_var(want_var && !compact ? ring_est.size() : 0);
    std::vector<double> ring_acc(compact ? static_cast<std::size_t>(ring * plane * A) : 0);
    const index_t band_slices = L + g.Pz - 1;
    std::vector<std::vector<double>> band_acc(compact ? plan.wave : 0);
    const int slots = static_cast<int>(plan.wave);
    std::vector<std::vector<double>> patches(slots), est(slots), var(slots);
    const double scale_e = to_data.multiply, div_e = to_data.divide;
    const double scale_v = to_data.multiply * to_data.multiply,
                 div_v = to_data.divide * to_data.divide;
    // An estimate in the data's units (the inverse of the generalized Anscombe transform when
    // the model worked on it, ALGORITHM.md §3.15) and its variance.
    const bool gat = to_data.gat_alpha > 0.0;
    auto data_value = [&](double mapped) {
        return gat ? anscombe_inverse(mapped, to_data.gat_alpha, to_data.gat_offset, to_data.gat_s2)
                   : mapped;
    };
    auto data_variance = [&](double v, double mapped) {
        if (!gat) return v;
        const double slope = anscombe_inverse_slope(mapped, to_data.gat_alpha);
        return v * slope * slope;
    };

    // Full: estimates of one band go to the ring: voxel (z, r, c) of patch (z0, r0, c0) keeps its
    // estimate in slot d = ((z - z0) Ph + (r - r0)) Pw + (c - c0), so every estimate has its own
    // place and nothing depends on which band (or thread) wrote it. Compact: the band's own
    // accumulators, in the band's order (z0, r0, c0 ascending: the slot order of the full merge).
    auto run_band = [&](index_t band, int slot) {
        std::vector<double>& p = patches[slot];
        std::vector<double>& e = est[slot];
        std::vector<double>& v = var[slot];
        p.resize(static_cast<std::size_t>(Qc * D));
        e.resize(p.size());
        if (want_var) v.resize(p.size());
        const index_t z_begin = band * L, z_end = std::min(Zc, z_begin + L);
        double* acc = nullptr;
        if (compact) {
            band_acc[slot].resize(static_cast<std::size_t>(band_slices * plane * A));
            acc = band_acc[slot].data();
        }
        for (index_t z0 = z_begin; z0 < z_end; ++z0) {
            for (index_t r0 = 0; r0 < Rc; ++r0) {
                const index_t first = (z0 * Rc + r0) * Qc;
                for (index_t t = 0; t < Qc; ++t)
                    read_patch(volume, g, first + t, to_model, p.data() + t * D, in_first);
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
                            const index_t r = r0 + i;
                            if (compact) {
                                const bool first_z = z0 == std::max(z_begin, z0 + k - g.Pz + 1);
                                const bool first_r = r0 == std::max<index_t>(0, r - g.Ph + 1);
                                double* row = acc + ((z0 + k - z_begin) * plane + r * g.Q) * A;
                                for (index_t j = 0; j < g.Pw; ++j, ++d) {
                                    const index_t c = t + j;
                                    const double off =
                                        to_data.offset != nullptr ? to_data.offset[d] : 0.0;
                                    const double x = data_value(et[d] * scale_e / div_e + off);
                                    if (!std::isfinite(x)) throw_non_finite(original, z0 + k, r, c);
                                    double* a = row + c * A;
                                    const bool first_c = t == std::max<index_t>(0, c - g.Pw + 1);
                                    const double vx =
                                        want_var ? data_variance(vt[d] * scale_v / div_v,
                                                                 et[d] * scale_e / div_e + off)
                                                 : 0.0;
                                    if (first_z && first_r && first_c) {
                                        a[0] = x;  // the shift: the first estimate, as full
                                        a[1] = 0.0;
                                        a[2] = 0.0;
                                        if (want_var) a[3] = vx;
                                    } else {
                                        const double dx = x - a[0];
                                        a[1] += dx;
                                        a[2] += dx * dx;
                                        if (want_var) a[3] += vx;
                                    }
                                }
                                continue;
                            }
                            double* dst = ring_est.data() + ((slice * plane) + r * g.Q + t) * D;
                            double* dst_v =
                                want_var ? ring_var.data() + ((slice * plane) + r * g.Q + t) * D
                                         : nullptr;
                            for (index_t j = 0; j < g.Pw; ++j, ++d) {
                                const double off =
                                    to_data.offset != nullptr ? to_data.offset[d] : 0.0;
                                // The pixel (.., c0 + j) keeps this patch's value in slot d.
                                const double mapped = et[d] * scale_e / div_e + off;
                                dst[j * D + d] = data_value(mapped);
                                if (want_var)
                                    dst_v[j * D + d] =
                                        data_variance(vt[d] * scale_v / div_v, mapped);
                            }
                        }
                    }
                }
            }
        }
    };

    // Compact: the bands of a wave folded into the ring's accumulators in band order, per voxel:
    // with F the ring's shift and f, s1, s2 the band's, d = f - F, n the band's estimates of the
    // voxel: S1 += s1 + n d, S2 += s2 + 2 d s1 + n d^2 (the sums of x - F over both).
    auto fold_row = [&](index_t wave_start, index_t wave_end, index_t row) {
        for (index_t band = wave_start; band < wave_end; ++band) {
            const index_t z_begin = band * L, z_end = std::min(Zc, z_begin + L);
            const double* bacc = band_acc[static_cast<std::size_t>(band - wave_start)].data();
            for (index_t zz = z_begin; zz < z_end - 1 + g.Pz; ++zz) {
                index_t z_first, z_last;
                corner_range(zz, g.Z, g.Pz, z_first, z_last);
                const index_t nz = std::min(z_last, z_end - 1) - std::max(z_first, z_begin) + 1;
                const bool first_band = z_first >= z_begin;  // the first band of slice zz
                index_t r_first, r_last;
                corner_range(row, g.R, g.Ph, r_first, r_last);
                const double* src = bacc + ((zz - z_begin) * plane + row * g.Q) * A;
                double* dst = ring_acc.data() + ((zz % ring) * plane + row * g.Q) * A;
                for (index_t c = 0; c < g.Q; ++c) {
                    const double* b = src + c * A;
                    double* a = dst + c * A;
                    if (first_band) {
                        std::copy(b, b + A, a);
                        continue;
                    }
                    index_t c_first, c_last;
                    corner_range(c, g.Q, g.Pw, c_first, c_last);
                    const double n =
                        static_cast<double>(nz * (r_last - r_first + 1) * (c_last - c_first + 1));
                    const double delta = b[0] - a[0];
                    a[2] += b[2] + 2.0 * delta * b[1] + n * delta * delta;
                    a[1] += b[1] + n * delta;
                    if (want_var) a[3] += b[3];
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
            const index_t pixel = (z * g.R + r) * g.Q + c - out_first;
            if (compact) {
                const double* a = ring_acc.data() + (slice * plane + r * g.Q + c) * A;
                const double m = static_cast<double>(
                    (z_last - z_first + 1) * (r_last - r_first + 1) * (c_last - c_first + 1));
                const double mean = a[0] + a[1] / m;
                if (!std::isfinite(mean)) throw_non_finite(original, z, r, c);
                // E[(x - F)^2] - E[x - F]^2 can round a few ulps below 0: a variance is >= 0.
                const double offset = a[1] / m;
                const double variance = std::max(0.0, a[2] / m - offset * offset);
                if (!std::isfinite(variance)) throw_non_finite(original, z, r, c);
                if (out.mean != nullptr) out.mean[pixel] = mean;
                if (out.var != nullptr) out.var[pixel] = variance;
                if (out.count != nullptr) out.count[pixel] = m;
                if (out.pvar != nullptr) out.pvar[pixel] = a[3] / m + variance;
                continue;
            }
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
        if (compact)
            parallel_for(
                g.R, n_threads, [&](index_t row) { fold_row(wave_start, wave_end, row); }, 8);
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
