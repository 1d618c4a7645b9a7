// Small dense linear algebra on row-major k x k matrices (k = active units of a state, or H in
// the M-step): Cholesky factorisation and triangular solves, no explicit inverses in hot paths.
#pragma once

#include <cmath>

#include "zse/common.hpp"

namespace zse::linalg {

/// In-place Cholesky A = L L^T of a symmetric k x k matrix (lower triangle read and written,
/// upper triangle zeroed). Returns false when A is not numerically positive definite.
inline bool cholesky(double* A, index_t k) {
    for (index_t j = 0; j < k; ++j) {
        double diag = A[j * k + j];
        for (index_t p = 0; p < j; ++p) diag -= A[j * k + p] * A[j * k + p];
        if (!(diag > 0.0) || !std::isfinite(diag)) return false;
        const double l = std::sqrt(diag);
        const double inv_l = 1.0 / l;  // one division per column, not one per entry
        A[j * k + j] = l;
        for (index_t i = j + 1; i < k; ++i) {
            double v = A[i * k + j];
            for (index_t p = 0; p < j; ++p) v -= A[i * k + p] * A[j * k + p];
            A[i * k + j] = v * inv_l;
        }
        for (index_t i = 0; i < j; ++i) A[i * k + j] = 0.0;
    }
    return true;
}

/// Solves L x = b in place (L lower triangular, k x k).
inline void solve_lower(const double* L, index_t k, double* b) {
    for (index_t i = 0; i < k; ++i) {
        double v = b[i];
        for (index_t p = 0; p < i; ++p) v -= L[i * k + p] * b[p];
        b[i] = v / L[i * k + i];
    }
}

/// Solves L^T x = b in place.
inline void solve_upper_transposed(const double* L, index_t k, double* b) {
    for (index_t i = k - 1; i >= 0; --i) {
        double v = b[i];
        for (index_t p = i + 1; p < k; ++p) v -= L[p * k + i] * b[p];
        b[i] = v / L[i * k + i];
    }
}

/// log det A = 2 sum log diag(L), as the logarithm of products of the diagonal: one logarithm
/// for most small factors instead of k. A product is taken only while it and the next entry lie
/// within [1e-150, 1e150], so it cannot over- or underflow; entries outside go to the sum alone.
inline double log_det_from_cholesky(const double* L, index_t k) {
    constexpr double kLow = 1e-150, kHigh = 1e150;
    double s = 0.0, product = 1.0;
    for (index_t i = 0; i < k; ++i) {
        const double d = L[i * k + i];
        if (d >= kLow && d <= kHigh) {
            if (!(product >= kLow && product <= kHigh)) {
                s += std::log(product);
                product = 1.0;
            }
            product *= d;
        } else {
            s += std::log(d);
        }
    }
    return 2.0 * (s + std::log(product));
}

/// R = L^-1 of a lower triangular L (R lower triangular; its upper triangle is not written).
/// One division per row: the rows are scaled by the reciprocal of L's diagonal.
inline void invert_lower(const double* L, index_t k, double* R) {
    for (index_t i = 0; i < k; ++i) {
        const double r = 1.0 / L[i * k + i];
        R[i * k + i] = r;
        for (index_t j = 0; j < i; ++j) {
            double v = 0.0;
            for (index_t p = j; p < i; ++p) v += L[i * k + p] * R[p * k + j];
            R[i * k + j] = -v * r;
        }
    }
}

/// G = R^T R for a lower triangular R (G symmetric, both triangles written).
inline void lower_gram(const double* R, index_t k, double* G) {
    for (index_t i = 0; i < k; ++i) {
        for (index_t j = 0; j <= i; ++j) {
            double v = 0.0;
            for (index_t p = i; p < k; ++p) v += R[p * k + i] * R[p * k + j];
            G[i * k + j] = G[j * k + i] = v;
        }
    }
}

/// x = R b for a lower triangular R: k independent dot products (no division, no chain).
inline void lower_times(const double* R, index_t k, const double* b, double* x) {
    for (index_t i = 0; i < k; ++i) {
        double v = 0.0;
        for (index_t p = 0; p <= i; ++p) v += R[i * k + p] * b[p];
        x[i] = v;
    }
}

/// x = R^T v for a lower triangular R.
inline void lower_transposed_times(const double* R, index_t k, const double* v, double* x) {
    for (index_t i = 0; i < k; ++i) {
        double s = 0.0;
        for (index_t p = i; p < k; ++p) s += R[p * k + i] * v[p];
        x[i] = s;
    }
}

/// inverse = A^{-1} = L^-T L^-1 from the Cholesky factor L of A, via the triangular inverse
/// (about k^3 / 3 multiply-adds, a third of solving for k columns). `scratch` holds k * k.
inline void inverse_from_cholesky_triangular(const double* L, index_t k, double* inverse,
                                             double* scratch) {
    invert_lower(L, k, scratch);
    lower_gram(scratch, k, inverse);
}

/// inverse = A^{-1} from the Cholesky factor L of A (symmetric result). `column` is k scratch.
inline void inverse_from_cholesky(const double* L, index_t k, double* inverse, double* column) {
    for (index_t j = 0; j < k; ++j) {
        for (index_t i = 0; i < k; ++i) column[i] = i == j ? 1.0 : 0.0;
        solve_lower(L, k, column);
        solve_upper_transposed(L, k, column);
        for (index_t i = 0; i < k; ++i) inverse[i * k + j] = column[i];
    }
    for (index_t i = 0; i < k; ++i)  // symmetrise away rounding asymmetry
        for (index_t j = 0; j < i; ++j) {
            const double v = 0.5 * (inverse[i * k + j] + inverse[j * k + i]);
            inverse[i * k + j] = inverse[j * k + i] = v;
        }
}

}  // namespace zse::linalg
