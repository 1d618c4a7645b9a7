// The per-state cache of the SSSC E-step: parameter-derived terms, the k x k terms of each state
// and the log-pseudo-joint evaluated from them (ALGORITHM.md §3.2, §3.9).
#include <algorithm>
#include <cmath>

#include "sssc_detail.hpp"
#include "zse/linalg.hpp"

namespace zse {
namespace sssc_detail {

Derived derive(const SSSCParams& p, bool want_diag) {
    require(p.H >= 1 && p.H <= 64 * kMaxWords, "H must be in [1, 256]");
    require(p.sigma2 > 0.0 && std::isfinite(p.sigma2), "sigma2 must be finite and > 0");
    Derived d;
    d.p = &p;
    d.want_diag = want_diag;
    const index_t H = p.H, D = p.D;
    d.WtW.assign(static_cast<std::size_t>(H * H), 0.0);
    for (index_t r = 0; r < D; ++r) {
        const double* w = p.W + r * H;
        for (index_t i = 0; i < H; ++i) {
            const double wi = w[i];
            for (index_t j = 0; j < H; ++j) d.WtW[i * H + j] += wi * w[j];
        }
    }
    d.logit.resize(H);
    double log_one_minus = 0.0;
    for (index_t h = 0; h < H; ++h) {
        require(p.pi[h] > 0.0 && p.pi[h] < 1.0, "pi must lie in (0, 1)");
        d.logit[h] = std::log(p.pi[h]) - std::log1p(-p.pi[h]);
        log_one_minus += std::log1p(-p.pi[h]);
    }
    d.diagonal_psi = true;
    for (index_t i = 0; i < H && d.diagonal_psi; ++i)
        for (index_t j = 0; j < H; ++j)
            if (i != j && p.Psi[i * H + j] != 0.0) {
                d.diagonal_psi = false;
                break;
            }
    d.inv_s2 = 1.0 / p.sigma2;
    d.log_c = log_one_minus - 0.5 * static_cast<double>(D) * (kLog2Pi + std::log(p.sigma2));
    return d;
}

void StateCache::compute(const std::uint64_t* bits, StateTerms& t) {
    const SSSCParams& p = *dv_.p;
    const index_t H = p.H;
    active_.clear();
    for (index_t w = 0; w < words_; ++w) {
        std::uint64_t word = bits[w];
        while (word) {
            active_.push_back(w * 64 + __builtin_ctzll(word));
            word &= word - 1;
        }
    }
    const index_t k = t.k = static_cast<index_t>(active_.size());
    t.offset = arena_.size();
    arena_.resize(
        arena_.size() + static_cast<std::size_t>(3 * k + 2 * k * k + (dv_.want_diag ? p.D : 0)),
        0.0);
    double* base = arena_.data() + t.offset;
    double* mu = base + k;
    double* c = base + 2 * k;
    double* L = base + 3 * k;
    if (k == 0) {
        t.has_lambda = true;
        return;
    }
    const index_t* A = active_.data();
    for (index_t i = 0; i < k; ++i) base[i] = static_cast<double>(A[i]);  // exact for i < 2^53
    double log_det_psi = 0.0;
    if (dv_.diagonal_psi) {
        for (index_t i = 0; i < k; ++i) {
            const double psi = p.Psi[A[i] * H + A[i]];
            if (!(psi > 0.0)) {
                t.valid = false;
                return;
            }
            log_det_psi += std::log(psi);
            for (index_t j = 0; j < k; ++j)
                L[i * k + j] = (i == j ? 1.0 / psi : 0.0) + dv_.WtW[A[i] * H + A[j]] * dv_.inv_s2;
        }
    } else {
        psi_.resize(static_cast<std::size_t>(k * k));
        psi_inv_.resize(psi_.size());
        column_.resize(k);
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j) psi_[i * k + j] = p.Psi[A[i] * H + A[j]];
        // A Psi_s that is not positive definite (possible with the reference Psi update) makes
        // the state invalid on purpose: its log-determinant would otherwise be taken of |det|.
        if (!linalg::cholesky(psi_.data(), k)) {
            t.valid = false;
            return;
        }
        log_det_psi = linalg::log_det_from_cholesky(psi_.data(), k);
        linalg::inverse_from_cholesky(psi_.data(), k, psi_inv_.data(), column_.data());
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j)
                L[i * k + j] = psi_inv_[i * k + j] + dv_.WtW[A[i] * H + A[j]] * dv_.inv_s2;
    }
    if (!linalg::cholesky(L, k)) {
        t.valid = false;
        return;
    }
    const double log_det_m = linalg::log_det_from_cholesky(L, k);
    double prior = 0.0;
    for (index_t i = 0; i < k; ++i) {
        mu[i] = p.mu[A[i]];
        prior += dv_.logit[A[i]];
    }
    for (index_t i = 0; i < k; ++i) {
        double sum = 0.0;
        for (index_t j = 0; j < k; ++j) sum += dv_.WtW[A[i] * H + A[j]] * mu[j];
        c[i] = sum;
        t.mu_c += mu[i] * sum;
    }
    t.constant = 0.5 * (log_det_psi + log_det_m) - prior;
    if (!std::isfinite(t.constant)) t.valid = false;
}

// Posterior quantities of one (patch, state): b = W_A^T (y - W_A mu_A), v = L^-1 b, and the
// log-pseudo-joint (ALGORITHM.md §3.2) evaluated from W^T y in O(k^2).
double log_pseudo_joint(const Derived& dv, const StateTerms& t, const double* data,
                        const PatchData& pd, std::vector<double>& v) {
    if (!t.valid) return kMinusInf;
    const index_t k = t.k;
    if (k == 0) return -0.5 * pd.yy * dv.inv_s2;
    const double* active = data;
    const double* mu = data + k;
    const double* c = data + 2 * k;
    const double* L = data + 3 * k;
    v.resize(k);
    double mu_wy = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double wy = pd.Wy[static_cast<index_t>(active[i])];
        v[i] = wy - c[i];
        mu_wy += mu[i] * wy;
    }
    const double residual = pd.yy - 2.0 * mu_wy + t.mu_c;  // |y - W_A mu_A|^2
    linalg::solve_lower(L, k, v.data());
    double b_lambda_b = 0.0;
    for (index_t i = 0; i < k; ++i) b_lambda_b += v[i] * v[i];
    const double lpj =
        -t.constant - 0.5 * (residual * dv.inv_s2 - b_lambda_b * dv.inv_s2 * dv.inv_s2);
    return std::isfinite(lpj) ? lpj : kMinusInf;
}

}  // namespace sssc_detail
}  // namespace zse
