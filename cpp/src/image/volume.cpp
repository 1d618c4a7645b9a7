#include "zse/volume.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "zse/parallel.hpp"

namespace zse {

VolumeGrid::VolumeGrid(index_t Z_, index_t R_, index_t Q_, index_t Pz_, index_t Ph_, index_t Pw_)
    : Z(Z_), R(R_), Q(Q_), Pz(Pz_), Ph(Ph_), Pw(Pw_) {
    require(Pz >= 1 && Ph >= 1 && Pw >= 1, "patch size must be >= 1 along every axis");
    require(Z >= Pz && R >= Ph && Q >= Pw,
            "volume of shape (" + std::to_string(Z) + ", " + std::to_string(R) + ", " +
                std::to_string(Q) + ") is smaller than the patch size " + std::to_string(Pz) + "x" +
                std::to_string(Ph) + "x" + std::to_string(Pw));
}

index_t VolumeGrid::coverage(index_t z, index_t r, index_t c) const {
    index_t z0, z1, r0, r1, c0, c1;
    corner_range(z, Z, Pz, z0, z1);
    corner_range(r, R, Ph, r0, r1);
    corner_range(c, Q, Pw, c0, c1);
    return (z1 - z0 + 1) * (r1 - r0 + 1) * (c1 - c0 + 1);
}

double anscombe_forward(double x, double alpha, double offset, double s2) {
    return 2.0 * std::sqrt(std::max((x - offset) / alpha + 0.375 + s2, 0.0));
}

double anscombe_inverse(double D, double alpha, double offset, double s2) {
    double z;
    if (D >= 1.0) {
        const double r = std::sqrt(1.5), D2 = D * D;
        z = 0.25 * D2 + 0.25 * r / D - 1.375 / D2 + 0.625 * r / (D2 * D) - 0.125 - s2;
    } else {
        z = 0.25 * D * D - 0.375 - s2;
    }
    return alpha * std::max(z, 0.0) + offset;
}

double anscombe_inverse_slope(double D, double alpha) {
    return alpha * 0.5 * D;
}

void read_patch(const double* volume, const VolumeGrid& g, index_t n,
                const PatchTransform& transform, double* out, index_t first_slice) {
    const index_t Qc = g.Qc(), Rc = g.Rc();
    const index_t c0 = n % Qc, r0 = (n / Qc) % Rc, z0 = n / (Qc * Rc);
    index_t d = 0;
    const bool gat = transform.gat_alpha > 0.0;
    for (index_t k = 0; k < g.Pz; ++k) {
        for (index_t i = 0; i < g.Ph; ++i) {
            const double* src = volume + ((z0 + k - first_slice) * g.R + r0 + i) * g.Q + c0;
            if (gat) {
                for (index_t j = 0; j < g.Pw; ++j) {
                    const double off = transform.offset != nullptr ? transform.offset[d + j] : 0.0;
                    const double u = anscombe_forward(src[j], transform.gat_alpha,
                                                      transform.gat_offset, transform.gat_s2);
                    out[d + j] = (u - off) * transform.multiply / transform.divide;
                }
            } else if (transform.offset == nullptr && transform.multiply == 1.0 &&
                       transform.divide == 1.0) {
                for (index_t j = 0; j < g.Pw; ++j) out[d + j] = src[j];
            } else {
                // x - 0, x * 1 and x / 1 are exact, so one expression serves every transform.
                for (index_t j = 0; j < g.Pw; ++j) {
                    const double off = transform.offset != nullptr ? transform.offset[d + j] : 0.0;
                    out[d + j] = (src[j] - off) * transform.multiply / transform.divide;
                }
            }
            d += g.Pw;
        }
    }
    if (transform.whiten != nullptr) {
        const double* L = transform.whiten;
        for (index_t i = 0; i < d; ++i) {
            double s = out[i];
            for (index_t j = 0; j < i; ++j) s -= L[i * d + j] * out[j];
            out[i] = s / L[i * d + i];
        }
    }
}

void gather_patches(const double* volume, const VolumeGrid& grid, const std::int64_t* positions,
                    index_t M, const PatchTransform& transform, double* out, int n_threads) {
    const index_t N = grid.n_patches(), D = grid.D();
    for (index_t m = 0; m < M; ++m)
        require(positions[m] >= 0 && positions[m] < N,
                "patch position " + std::to_string(positions[m]) + " is outside [0, " +
                    std::to_string(N) + ")");
    parallel_for(
        M, n_threads,
        [&](index_t m) { read_patch(volume, grid, positions[m], transform, out + m * D); }, 256);
}

}  // namespace zse
