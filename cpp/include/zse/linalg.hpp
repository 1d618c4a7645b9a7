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
        A[j * k + j] = l;
        for (index_t i = j + 1; i < k; ++i) {
            double v = A[i * k + j];
            for (index_t p = 0; p < j; ++p) v -= A[i * k + p] * A[j * k + p];
            A[i * k + j] = v / l;
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

/// log det A = 2 sum log diag(L).
inline double log_det_from_cholesky(const double* L, index_t k) {
    double s = 0.0;
    for (index_t i = 0; i < k; ++i) s += std::log(L[i * k + i]);
    return 2.0 * s;
}

/// inverse = A^{-1} = L^-T L^-1 from the Cholesky factor L of A, via the triangular inverse
/// (about k^3 / 3 multiply-adds, a third of solving for k columns). `scratch` holds k * k.
inline void inverse_from_cholesky_triangular(const double* L, index_t k, double* inverse,
                                             double* scratch) {
    double* Linv = scratch;  // lower triangular L^-1
    for (index_t j = 0; j < k; ++j) {
        Linv[j * k + j] = 1.0 / L[j * k + j];
        for (index_t i = j + 1; i < k; ++i) {
            double v = 0.0;
            for (index_t p = j; p < i; ++p) v += L[i * k + p] * Linv[p * k + j];
            Linv[i * k + j] = -v / L[i * k + i];
        }
    }
    for (index_t i = 0; i < k; ++i) {
        for (index_t j = 0; j <= i; ++j) {
            double v = 0.0;
            for (index_t p = i; p < k; ++p) v += Linv[p * k + i] * Linv[p * k + j];
            inverse[i * k + j] = inverse[j * k + i] = v;
        }
    }
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
