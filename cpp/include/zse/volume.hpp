// Geometry of all overlapping patches of a 2-D image or a 3-D volume at stride 1, and reading
// patches straight from the image (ALGORITHM.md §2.1, §2.6).
#pragma once

#include <cstdint>

#include "zse/common.hpp"

namespace zse {

/// All Pz x Ph x Pw windows of a Z x R x Q volume (row-major, z slowest) at stride 1.
///
/// A 2-D image is the volume (1, R, Q) with Pz = 1. Patch n has its corner at (z0, r0, c0) with
/// n = (z0 * Rc + r0) * Qc + c0 (Rc = R - Ph + 1, Qc = Q - Pw + 1); its pixel
/// d = (k * Ph + i) * Pw + j is volume[z0 + k, r0 + i, c0 + j]. For Z = Pz = 1 this is exactly
/// PatchGrid's 2-D order.
struct VolumeGrid {
    index_t Z = 1, R = 0, Q = 0;     ///< volume extents
    index_t Pz = 1, Ph = 0, Pw = 0;  ///< patch extents

    VolumeGrid() = default;
    /// Throws std::invalid_argument unless 1 <= P <= extent along every axis.
    VolumeGrid(index_t Z, index_t R, index_t Q, index_t Pz, index_t Ph, index_t Pw);

    index_t Zc() const { return Z - Pz + 1; }
    index_t Rc() const { return R - Ph + 1; }
    index_t Qc() const { return Q - Pw + 1; }
    index_t n_patches() const { return Zc() * Rc() * Qc(); }
    index_t D() const { return Pz * Ph * Pw; }
    index_t n_voxels() const { return Z * R * Q; }
    /// Number of patches covering voxel (z, r, c).
    index_t coverage(index_t z, index_t r, index_t c) const;
};

/// Range [first, last] of corners along an axis of `extent` with patch size `p` covering `x`.
inline void corner_range(index_t x, index_t extent, index_t p, index_t& first, index_t& last) {
    first = x - p + 1 > 0 ? x - p + 1 : 0;
    last = x < extent - p ? x : extent - p;
}

/// Affine map applied to every value read from the volume: (v - offset[d]) * multiply / divide,
/// with one offset per pixel of the patch (nullptr: none) — how a model sees its data (SSSC's
/// standardised, bias-free units; the mixtures' counts). The operations are those of the Python
/// side ((Y - b) / a, (Y - offset) * gain), so both give the same bits.
struct PatchTransform {
    const double* offset = nullptr;  ///< D values, or nullptr
    double multiply = 1.0;
    double divide = 1.0;
    /// A D x D lower-triangular factor L (row-major), or nullptr: the transformed patch u is
    /// then replaced by L^-1 u (forward substitution), the whitening of a stationary noise
    /// covariance L L^T (ALGORITHM.md §3.14).
    const double* whiten = nullptr;
    /// Signal-dependent noise, variance alpha (x - offset) + alpha^2 s2 (ALGORITHM.md §3.15):
    /// with gat_alpha > 0 each value x is first replaced by its generalized Anscombe transform
    /// 2 sqrt(max((x - gat_offset) / gat_alpha + 3/8 + gat_s2, 0)).
    double gat_alpha = 0.0, gat_offset = 0.0, gat_s2 = 0.0;
};

/// The generalized Anscombe transform of one value (PatchTransform's gat_* fields).
double anscombe_forward(double x, double alpha, double offset, double s2);
/// Its closed-form unbiased inverse (Makitalo & Foi 2013) of a denoised value D, in the data's
/// units; below D = 1 the algebraic inverse, and never below `offset`.
double anscombe_inverse(double D, double alpha, double offset, double s2);
/// d x / d D of the inverse at D (the algebraic inverse's: alpha D / 2), for variances.
double anscombe_inverse_slope(double D, double alpha);

/// Copies patch n of `volume` into out (D values), transformed. `first_slice`: `volume` holds the
/// grid's slices from this one on (a slab of a volume too large for memory), 0: all of them.
void read_patch(const double* volume, const VolumeGrid& grid, index_t n,
                const PatchTransform& transform, double* out, index_t first_slice = 0);

/// Copies the patches at the M global indices `positions` (each in [0, N)) into out (M x D),
/// transformed. Parallel over positions; results do not depend on n_threads.
void gather_patches(const double* volume, const VolumeGrid& grid, const std::int64_t* positions,
                    index_t M, const PatchTransform& transform, double* out, int n_threads);

}  // namespace zse
