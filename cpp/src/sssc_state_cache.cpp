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
    d.log_psi.resize(H);
    d.inv_psi.resize(H);
    for (index_t h = 0; h < H; ++h) {
        const double psi = p.Psi[h * H + h];
        d.log_psi[h] = psi > 0.0 ? std::log(psi) : 0.0;  // used only where psi > 0
        d.inv_psi[h] = psi > 0.0 ? 1.0 / psi : 0.0;
    }
    d.inv_s2 = 1.0 / p.sigma2;
    d.log_c = log_one_minus - 0.5 * static_cast<double>(D) * (kLog2Pi + std::log(p.sigma2));

    const index_t n_small = 1 + H + H * (H - 1) / 2;
    d.small.resize(static_cast<std::size_t>(n_small));
    d.small_arena.assign(static_cast<std::size_t>(H) * terms_size(1, D, false) +
                             static_cast<std::size_t>(H * (H - 1) / 2) * terms_size(2, D, false),
                         0.0);
    TermsScratch scratch;
    std::size_t offset = 0;
    auto add = [&](index_t entry, const index_t* A, index_t k) {
        StateTerms& t = d.small[static_cast<std::size_t>(entry)];
        t.offset = offset;
        compute_state_terms(d, A, k, t, d.small_arena.data() + offset, scratch);
        fill_lambda(d, t, d.small_arena.data() + offset);
        offset += terms_size(k, D, false);
    };
    add(0, nullptr, 0);
    for (index_t h1 = 0; h1 < H; ++h1) add(d.small_index(1, h1, 0), &h1, 1);
    for (index_t h1 = 0; h1 < H; ++h1)
        for (index_t h2 = h1 + 1; h2 < H; ++h2) {
            const index_t A[2] = {h1, h2};
            add(d.small_index(2, h1, h2), A, 2);
        }
    return d;
}

void compute_state_terms(const Derived& dv, const index_t* A, index_t k, StateTerms& t,
                         double* base, TermsScratch& scratch) {
    const SSSCParams& p = *dv.p;
    const index_t H = p.H;
    t.k = k;
    double* mu = base + k;
    double* c = base + 2 * k;
    double* R = base + 3 * k;
    if (k == 0) {
        t.has_lambda = true;
        return;
    }
    // M_s is factorised in scratch; the arena keeps R = L^-1 (ALGORITHM.md §3.9).
    std::vector<double>& factor = scratch.factor;
    factor.resize(static_cast<std::size_t>(k * k));
    double* L = factor.data();
    for (index_t i = 0; i < k; ++i) base[i] = static_cast<double>(A[i]);  // exact for i < 2^53
    double log_det_psi = 0.0;
    if (dv.diagonal_psi) {
        for (index_t i = 0; i < k; ++i) {
            if (!(p.Psi[A[i] * H + A[i]] > 0.0)) {
                t.valid = false;
                return;
            }
            log_det_psi += dv.log_psi[A[i]];
            for (index_t j = 0; j < k; ++j)
                L[i * k + j] =
                    (i == j ? dv.inv_psi[A[i]] : 0.0) + dv.WtW[A[i] * H + A[j]] * dv.inv_s2;
        }
    } else {
        std::vector<double>& psi = scratch.psi;
        std::vector<double>& psi_inv = scratch.psi_inv;
        psi.resize(static_cast<std::size_t>(k * k));
        psi_inv.resize(psi.size());
        scratch.column.resize(static_cast<std::size_t>(k * k));
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j) psi[i * k + j] = p.Psi[A[i] * H + A[j]];
        // A Psi_s that is not positive definite (possible with the reference Psi update) makes
        // the state invalid on purpose: its log-determinant would otherwise be taken of |det|.
        if (!linalg::cholesky(psi.data(), k)) {
            t.valid = false;
            return;
        }
        log_det_psi = linalg::log_det_from_cholesky(psi.data(), k);
        linalg::inverse_from_cholesky_triangular(psi.data(), k, psi_inv.data(),
                                                 scratch.column.data());
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j)
                L[i * k + j] = psi_inv[i * k + j] + dv.WtW[A[i] * H + A[j]] * dv.inv_s2;
    }
    if (!linalg::cholesky(L, k)) {
        t.valid = false;
        return;
    }
    const double log_det_m = linalg::log_det_from_cholesky(L, k);
    linalg::invert_lower(L, k, R);
    double prior = 0.0;
    for (index_t i = 0; i < k; ++i) {
        mu[i] = p.mu[A[i]];
        prior += dv.logit[A[i]];
    }
    for (index_t i = 0; i < k; ++i) {
        double sum = 0.0;
        for (index_t j = 0; j < k; ++j) sum += dv.WtW[A[i] * H + A[j]] * mu[j];
        c[i] = sum;
        t.mu_c += mu[i] * sum;
    }
    t.constant = 0.5 * (log_det_psi + log_det_m) - prior;
    if (!std::isfinite(t.constant)) t.valid = false;
}

void fill_lambda(const Derived& dv, StateTerms& t, double* base) {
    const index_t k = t.k;
    const double* R = base + 3 * k;
    double* Lambda = base + 3 * k + k * k;
    if (t.valid && k > 0) {
        linalg::lower_gram(R, k, Lambda);
        if (t.has_diag) {
            const SSSCParams& p = *dv.p;
            double* diag = Lambda + k * k;
            for (index_t d = 0; d < p.D; ++d) diag[d] = row_spread(p.W + d * p.H, base, Lambda, k);
        }
    }
    t.has_lambda = true;
}

void StateCache::compute(const std::uint64_t* bits, StateTerms& t) {
    std::vector<index_t>& active = scratch_.active;
    active.clear();
    for (index_t w = 0; w < words_; ++w) {
        std::uint64_t word = bits[w];
        while (word) {
            active.push_back(w * 64 + __builtin_ctzll(word));
            word &= word - 1;
        }
    }
    const index_t k = static_cast<index_t>(active.size());
    t.offset = arena_.size();
    t.has_diag = dv_.want_diag;
    arena_.resize(arena_.size() + terms_size(k, dv_.p->D, t.has_diag), 0.0);
    compute_state_terms(dv_, active.data(), k, t, arena_.data() + t.offset, scratch_);
}

// Posterior quantities of one (patch, state): b = W_A^T (y - W_A mu_A), v = R b (R = L^-1), and
// the log-pseudo-joint (ALGORITHM.md §3.2) evaluated from W^T y in O(k^2), without divisions.
double log_pseudo_joint(const Derived& dv, const StateTerms& t, const double* data,
                        const PatchData& pd, std::vector<double>& v) {
    if (!t.valid) return kMinusInf;
    const index_t k = t.k;
    if (k == 0) return -0.5 * pd.yy * dv.inv_s2;
    const double* active = data;
    const double* mu = data + k;
    const double* c = data + 2 * k;
    const double* R = data + 3 * k;
    v.resize(2 * static_cast<std::size_t>(k));
    double* b = v.data() + k;
    double mu_wy = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double wy = pd.Wy[static_cast<index_t>(active[i])];
        b[i] = wy - c[i];
        mu_wy += mu[i] * wy;
    }
    const double residual = pd.yy - 2.0 * mu_wy + t.mu_c;  // |y - W_A mu_A|^2
    linalg::lower_times(R, k, b, v.data());
    double b_lambda_b = 0.0;
    for (index_t i = 0; i < k; ++i) b_lambda_b += v[i] * v[i];
    const double lpj =
        -t.constant - 0.5 * (residual * dv.inv_s2 - b_lambda_b * dv.inv_s2 * dv.inv_s2);
    return std::isfinite(lpj) ? lpj : kMinusInf;
}

}  // namespace sssc_detail
}  // namespace zse
