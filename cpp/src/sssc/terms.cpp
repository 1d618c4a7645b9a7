// The terms of SSSC's states: parameter-derived arrays, the k x k terms of a state from scratch
// or from its parent's, and the log-pseudo-joint evaluated from them (ALGORITHM.md §3.2, §3.9,
// §3.12).
#include <algorithm>
#include <cmath>

#include "detail.hpp"
#include "zse/linalg.hpp"
#include "zse/simd.hpp"

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
    const bool full = !d.diagonal_psi;
    d.small.resize(static_cast<std::size_t>(n_small));
    d.small_arena.assign(
        static_cast<std::size_t>(H) * terms_size(1, D, full, false) +
            static_cast<std::size_t>(H * (H - 1) / 2) * terms_size(2, D, full, false),
        0.0);
    TermsScratch scratch;
    std::size_t offset = 0;
    auto add = [&](index_t entry, const index_t* A, index_t k) {
        StateTerms& t = d.small[static_cast<std::size_t>(entry)];
        t.offset = offset;
        compute_state_terms(d, A, k, t, d.small_arena.data() + offset, scratch);
        offset += terms_size(k, D, full, false);
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

// The body of compute_state_terms, inlined into a copy per k from 3 to 12 where the loops over
// the units have constant trip counts (unrolled by the compiler): states of at most two units
// come from the shared table, and the real crops' states hold 7-10 (bench/README.md).
static ZSE_SIMD_INLINE void state_terms_body(const Derived& dv, const index_t* A, index_t k,
                                             StateTerms& t, double* base, TermsScratch& scratch) {
    const SSSCParams& p = *dv.p;
    const index_t H = p.H;
    t.k = k;
    double* mu = base + k;
    double* c = base + 2 * k;
    double* Lambda = base + 3 * k;
    if (k == 0) return;
    // M_s is factorised in scratch; the arena keeps Lambda = M_s^-1 = R^T R with R = L^-1
    // (ALGORITHM.md §3.9) and, for a full Psi, Psi_s^-1 (the parent terms of §3.12).
    std::vector<double>& factor = scratch.factor;
    factor.resize(static_cast<std::size_t>(k * k));
    scratch.column.resize(static_cast<std::size_t>(k * k));
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
        psi.resize(static_cast<std::size_t>(k * k));
        double* psi_inv = base + 3 * k + k * k;
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j) psi[i * k + j] = p.Psi[A[i] * H + A[j]];
        // A Psi_s that is not positive definite (possible with the reference Psi update) makes
        // the state invalid on purpose: its log-determinant would otherwise be taken of |det|.
        if (!linalg::cholesky(psi.data(), k)) {
            t.valid = false;
            return;
        }
        log_det_psi = linalg::log_det_from_cholesky(psi.data(), k);
        linalg::inverse_from_cholesky_triangular(psi.data(), k, psi_inv, scratch.column.data());
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j)
                L[i * k + j] = psi_inv[i * k + j] + dv.WtW[A[i] * H + A[j]] * dv.inv_s2;
    }
    if (!linalg::cholesky(L, k)) {
        t.valid = false;
        return;
    }
    const double log_det_m = linalg::log_det_from_cholesky(L, k);
    linalg::inverse_from_cholesky_triangular(L, k, Lambda, scratch.column.data());
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

void compute_state_terms(const Derived& dv, const index_t* A, index_t k, StateTerms& t,
                         double* base, TermsScratch& scratch) {
    switch (k) {
#define ZSE_TERMS_CASE(K) \
    case K:               \
        return state_terms_body(dv, A, K, t, base, scratch);
        ZSE_TERMS_CASE(3)
        ZSE_TERMS_CASE(4)
        ZSE_TERMS_CASE(5)
        ZSE_TERMS_CASE(6)
        ZSE_TERMS_CASE(7)
        ZSE_TERMS_CASE(8)
        ZSE_TERMS_CASE(9)
        ZSE_TERMS_CASE(10)
        ZSE_TERMS_CASE(11)
        ZSE_TERMS_CASE(12)
#undef ZSE_TERMS_CASE
        default:
            return state_terms_body(dv, A, k, t, base, scratch);
    }
}

// Adding unit h to the units A of the parent (ALGORITHM.md §3.12). With p = Psi[A, h],
// u = Psi_A^-1 p and s = Psi_hh - p^T u (the Schur complement), the block inverse gives
// Psi_A+h^-1 = [[Psi_A^-1 + u u^T / s, -u / s], [-u^T / s, 1 / s]], so
// M_A+h = [[M_A + u u^T / s, q], [q^T, r]] with q = W^T W[A, h] / sigma2 - u / s and
// r = 1 / s + W^T W[h, h] / sigma2. Sherman-Morrison takes Lambda_A to Lambda_1 = (M_A + u u^T /
// s)^-1, the bordered inverse with t = r - q^T Lambda_1 q to Lambda_A+h, and the determinant
// lemma gives log|Psi_A+h| + log|M_A+h| = log|Psi_A| + log|M_A| + log((s + u^T Lambda_A u) t).
// A diagonal Psi has u = 0 and s = Psi_hh.
ZSE_HOT_CLONES bool extend_state_terms(const Derived& dv, const StateTerms& parent,
                                       const double* __restrict pbase, index_t h, StateTerms& t,
                                       double* __restrict base) {
    const SSSCParams& p = *dv.p;
    const index_t H = p.H, k = parent.k, n = k + 1;
    const bool full = !dv.diagonal_psi;
    const TermsArrays<const double> pa(pbase, k);
    const TermsArrays<double> ca(base, n);
    const double *pactive = pa.active, *pmu = pa.mu, *pc = pa.c, *pLambda = pa.Lambda,
                 *ppsi_inv = pa.psi_inv;
    double *active = ca.active, *mu = ca.mu, *c = ca.c, *Lambda = ca.Lambda, *psi_inv = ca.psi_inv;
    const double* wtw_h = dv.WtW.data() + h * H;
    const double* psi_h = p.Psi + h * H;  // Psi is symmetric: row h is column h
    const double psi_hh = psi_h[h];
    if (!(psi_hh > 0.0)) return false;
    // u = Psi_A^-1 p and s in the last row of psi_inv / Lambda as scratch: they are written
    // over below, after their last use.
    double* u = full ? psi_inv + k * n : mu;  // any k doubles; mu is filled last
    double s = psi_hh;
    if (full) {
        for (index_t i = 0; i < k; ++i) {
            double sum = 0.0;
            for (index_t j = 0; j < k; ++j)
                sum += ppsi_inv[i * k + j] * psi_h[static_cast<index_t>(pactive[j])];
            u[i] = sum;
        }
        for (index_t i = 0; i < k; ++i) s -= psi_h[static_cast<index_t>(pactive[i])] * u[i];
        if (!(s > 1e-10 * psi_hh)) return false;
    }
    // Lambda u (in c as scratch), u^T Lambda u, and Lambda_1 into Lambda's top-left block.
    double uLu = 0.0;
    if (full) {
        for (index_t i = 0; i < k; ++i) {
            double sum = 0.0;
            for (index_t j = 0; j < k; ++j) sum += pLambda[i * k + j] * u[j];
            c[i] = sum;
            uLu += u[i] * sum;
        }
        const double scale = 1.0 / (s + uLu);
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j)
                Lambda[i * n + j] = pLambda[i * k + j] - c[i] * c[j] * scale;
    } else {
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j) Lambda[i * n + j] = pLambda[i * k + j];
    }
    // q (in active as scratch), w = Lambda_1 q (in c), t.
    const double inv_s = 1.0 / s;
    for (index_t i = 0; i < k; ++i) {
        const index_t a = static_cast<index_t>(pactive[i]);
        active[i] = wtw_h[a] * dv.inv_s2 - (full ? u[i] * inv_s : 0.0);
    }
    const double r = inv_s + wtw_h[h] * dv.inv_s2;
    double qwq = 0.0;
    for (index_t i = 0; i < k; ++i) {
        double sum = 0.0;
        for (index_t j = 0; j < k; ++j) sum += Lambda[i * n + j] * active[j];
        c[i] = sum;
        qwq += active[i] * sum;
    }
    const double schur = r - qwq;
    if (!(schur > 1e-10 * r)) return false;
    const double inv_t = 1.0 / schur;
    for (index_t i = 0; i < k; ++i) {
        for (index_t j = 0; j < k; ++j) Lambda[i * n + j] += c[i] * c[j] * inv_t;
        Lambda[i * n + k] = Lambda[k * n + i] = -c[i] * inv_t;
    }
    Lambda[k * n + k] = inv_t;
    if (full) {
        for (index_t i = 0; i < k; ++i) {
            for (index_t j = 0; j < k; ++j)
                psi_inv[i * n + j] = ppsi_inv[i * k + j] + u[i] * u[j] * inv_s;
        }
        for (index_t i = 0; i < k; ++i) psi_inv[i * n + k] = -u[i] * inv_s;
        for (index_t i = 0; i < k; ++i) psi_inv[k * n + i] = psi_inv[i * n + k];  // u's row
        psi_inv[k * n + k] = inv_s;
    }
    // active, mu and c = W^T W[A, A] mu_A of the child.
    const double mu_h = p.mu[h];
    double ch = wtw_h[h] * mu_h;
    for (index_t i = 0; i < k; ++i) {
        const index_t a = static_cast<index_t>(pactive[i]);
        active[i] = pactive[i];
        mu[i] = pmu[i];
        c[i] = pc[i] + wtw_h[a] * mu_h;
        ch += wtw_h[a] * pmu[i];
    }
    active[k] = static_cast<double>(h);
    mu[k] = mu_h;
    c[k] = ch;
    double mu_c = 0.0;
    for (index_t i = 0; i < n; ++i) mu_c += mu[i] * c[i];
    t.k = n;
    t.valid = true;
    t.mu_c = mu_c;
    t.constant = parent.constant + 0.5 * std::log((s + uLu) * schur) - dv.logit[h];
    if (!std::isfinite(t.constant)) return false;
    return true;
}

// Removing the unit at position j of the parent's units (ALGORITHM.md §3.12): with
// w = Psi_A^-1[-j, j] and psi = Psi_A^-1[j, j], Psi_A-j^-1 = Psi_A^-1[-j, -j] - w w^T / psi and
// M_A-j = M_A[-j, -j] - w w^T / psi. Lambda_a = (M_A[-j, -j])^-1 = Lambda[-j, -j] -
// Lambda[-j, j] Lambda[j, -j] / Lambda_jj, then Sherman-Morrison for the downdate with
// d = psi - w^T Lambda_a w; log|Psi_A-j| + log|M_A-j| = log|Psi_A| + log|M_A| + log(Lambda_jj d).
// A diagonal Psi has w = 0 and d = psi.
ZSE_HOT_CLONES bool shrink_state_terms(const Derived& dv, const StateTerms& parent,
                                       const double* __restrict pbase, index_t j, StateTerms& t,
                                       double* __restrict base) {
    const SSSCParams& p = *dv.p;
    const index_t H = p.H, k = parent.k, n = k - 1;
    const bool full = !dv.diagonal_psi;
    const TermsArrays<const double> pa(pbase, k);
    const TermsArrays<double> ca(base, n);
    const double *pactive = pa.active, *pmu = pa.mu, *pc = pa.c, *pLambda = pa.Lambda,
                 *ppsi_inv = pa.psi_inv;
    double *active = ca.active, *mu = ca.mu, *c = ca.c, *Lambda = ca.Lambda, *psi_inv = ca.psi_inv;
    const index_t h = static_cast<index_t>(pactive[j]);
    const double* wtw_h = dv.WtW.data() + h * H;
    const double ljj = pLambda[j * k + j];
    if (!(ljj > 0.0)) return false;
    // the child's position i is the parent's position i + (i >= j)
    auto from = [j](index_t i) { return i + (i >= j ? 1 : 0); };
    const double inv_ljj = 1.0 / ljj;
    for (index_t i = 0; i < n; ++i) {
        const double li = pLambda[from(i) * k + j] * inv_ljj;
        for (index_t m = 0; m < n; ++m)
            Lambda[i * n + m] = pLambda[from(i) * k + from(m)] - li * pLambda[j * k + from(m)];
    }
    double d = 1.0, psi = 1.0;
    if (full) {
        psi = ppsi_inv[j * k + j];
        if (!(psi > 0.0)) return false;
        const double inv_psi = 1.0 / psi;
        // w in active as scratch, Lambda_a w in c, w^T Lambda_a w.
        for (index_t i = 0; i < n; ++i) active[i] = ppsi_inv[from(i) * k + j];
        double wLw = 0.0;
        for (index_t i = 0; i < n; ++i) {
            double sum = 0.0;
            for (index_t m = 0; m < n; ++m) sum += Lambda[i * n + m] * active[m];
            c[i] = sum;
            wLw += active[i] * sum;
        }
        d = psi - wLw;
        if (!(d > 1e-10 * psi)) return false;
        const double inv_d = 1.0 / d;
        for (index_t i = 0; i < n; ++i)
            for (index_t m = 0; m < n; ++m) Lambda[i * n + m] += c[i] * c[m] * inv_d;
        for (index_t i = 0; i < n; ++i)
            for (index_t m = 0; m < n; ++m)
                psi_inv[i * n + m] =
                    ppsi_inv[from(i) * k + from(m)] - active[i] * active[m] * inv_psi;
    } else {
        d = p.Psi[h * H + h] > 0.0 ? 1.0 / p.Psi[h * H + h] : 0.0;  // Psi_A^-1[j, j]
        if (!(d > 0.0)) return false;
    }
    const double mu_h = p.mu[h];
    double mu_c = 0.0;
    for (index_t i = 0; i < n; ++i) {
        const index_t f = from(i);
        active[i] = pactive[f];
        mu[i] = pmu[f];
        c[i] = pc[f] - wtw_h[static_cast<index_t>(pactive[f])] * mu_h;
        mu_c += mu[i] * c[i];
    }
    t.k = n;
    t.valid = true;
    t.mu_c = mu_c;
    // diagonal Psi: log|Psi_A-j| = log|Psi_A| - log Psi_hh = log|Psi_A| + log d
    t.constant = parent.constant + 0.5 * std::log(ljj * d) + dv.logit[h];
    return std::isfinite(t.constant);
}

// The child's log-pseudo-joint from the parent's terms and Lambda b (ALGORITHM.md §3.12), with
// the notation of extend_state_terms: the child's b splits into b_A = b_parent - sigma2 mu_h g
// (g = W^T W[A, h] / sigma2) and b_h; Lambda_1 x = Lambda x - (Lambda u)(Lambda u)^T x / (s +
// u^T Lambda u), Lambda g = Lambda q + Lambda u / s, w = Lambda_1 q and e = w^T b_A - b_h give
// b^T Lambda_A+h b = b_A^T Lambda_1 b_A + e^2 / t and Lambda_A+h b = (Lambda_1 b_A + w e / t,
// -e / t).
ZSE_HOT_CLONES double child_log_pseudo_joint(const Derived& dv, const StateTerms& parent,
                                             const double* pbase, const double* v_parent, index_t h,
                                             const PatchData& pd, std::vector<double>& scratch,
                                             double* v_child) {
    const SSSCParams& p = *dv.p;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const index_t H = p.H, k = parent.k;
    const bool full = !dv.diagonal_psi;
    const TermsArrays<const double> pa(pbase, k);
    const double* wtw_h = dv.WtW.data() + h * H;
    const double* psi_h = p.Psi + h * H;
    const double psi_hh = psi_h[h];
    if (!(psi_hh > 0.0)) return nan;
    scratch.resize(static_cast<std::size_t>(7 * k));
    double* __restrict g = scratch.data();
    double* __restrict u = g + k;
    double* __restrict Lu = g + 2 * k;
    double* __restrict q = g + 3 * k;
    double* __restrict Lq = g + 4 * k;
    double* __restrict bA = g + 5 * k;
    double* __restrict LbA = g + 6 * k;
    const double s2 = p.sigma2, inv_s2 = dv.inv_s2;
    for (index_t i = 0; i < k; ++i) g[i] = wtw_h[static_cast<index_t>(pa.active[i])] * inv_s2;
    double s = psi_hh, uLu = 0.0;
    if (full) {
        for (index_t i = 0; i < k; ++i) {
            double sum = 0.0;
            for (index_t j = 0; j < k; ++j)
                sum += pa.psi_inv[i * k + j] * psi_h[static_cast<index_t>(pa.active[j])];
            u[i] = sum;
        }
        for (index_t i = 0; i < k; ++i) s -= psi_h[static_cast<index_t>(pa.active[i])] * u[i];
        if (!(s > 1e-10 * psi_hh)) return nan;
        for (index_t i = 0; i < k; ++i) {
            double sum = 0.0;
            for (index_t j = 0; j < k; ++j) sum += pa.Lambda[i * k + j] * u[j];
            Lu[i] = sum;
            uLu += u[i] * sum;
        }
    } else {
        for (index_t i = 0; i < k; ++i) u[i] = Lu[i] = 0.0;
    }
    const double den = s + uLu, inv_s = 1.0 / s, inv_den = 1.0 / den;
    for (index_t i = 0; i < k; ++i) q[i] = g[i] - u[i] * inv_s;
    const double r = inv_s + wtw_h[h] * inv_s2;
    double Lu_q = 0.0;
    for (index_t i = 0; i < k; ++i) {
        double sum = 0.0;
        for (index_t j = 0; j < k; ++j) sum += pa.Lambda[i * k + j] * q[j];
        Lq[i] = sum;
        Lu_q += Lu[i] * q[i];
    }
    const double mu_h = p.mu[h];
    double g_mu = 0.0, mu_wy = mu_h * pd.Wy[h];
    for (index_t i = 0; i < k; ++i) {
        const double wy = pd.Wy[static_cast<index_t>(pa.active[i])];
        g_mu += g[i] * pa.mu[i];
        mu_wy += pa.mu[i] * wy;
        bA[i] = (wy - pa.c[i]) - s2 * mu_h * g[i];
        LbA[i] = v_parent[i] - s2 * mu_h * (Lq[i] + Lu[i] * inv_s);  // Lambda b_A
    }
    double t = r, Lu_b = 0.0;
    for (index_t i = 0; i < k; ++i) {
        Lq[i] -= Lu[i] * Lu_q * inv_den;  // w = Lambda_1 q
        t -= q[i] * Lq[i];
        Lu_b += Lu[i] * bA[i];
    }
    if (!(t > 1e-10 * r)) return nan;
    const double c_h = s2 * g_mu + wtw_h[h] * mu_h;
    const double mu_c = parent.mu_c + s2 * mu_h * g_mu + mu_h * c_h;
    const double b_h = pd.Wy[h] - c_h;
    double bL1b = 0.0, e = -b_h;
    for (index_t i = 0; i < k; ++i) {
        LbA[i] -= Lu[i] * Lu_b * inv_den;  // Lambda_1 b_A
        bL1b += bA[i] * LbA[i];
        e += Lq[i] * bA[i];
    }
    const double inv_t = 1.0 / t;
    const double b_lambda_b = bL1b + e * e * inv_t;
    for (index_t i = 0; i < k; ++i) v_child[i] = LbA[i] + Lq[i] * e * inv_t;
    v_child[k] = -e * inv_t;
    const double constant = parent.constant + 0.5 * std::log(den * t) - dv.logit[h];
    const double residual = pd.yy - 2.0 * mu_wy + mu_c;
    const double lpj = -constant - 0.5 * (residual * inv_s2 - b_lambda_b * inv_s2 * inv_s2);
    return std::isfinite(lpj) ? lpj : kMinusInf;
}

void fill_diag(const Derived& dv, StateTerms& t, double* base) {
    const SSSCParams& p = *dv.p;
    const index_t k = t.k;
    double* diag = base + terms_size(k, p.D, !dv.diagonal_psi, false);
    for (index_t d = 0; d < p.D; ++d)
        diag[d] = row_spread(p.fields_out() + d * p.H, base, lambda_of(t, base), k);
    t.diag_ready = true;
}

// Posterior quantities of one (patch, state): b = W_A^T (y - W_A mu_A), v = Lambda b, and the
// log-pseudo-joint (ALGORITHM.md §3.2) evaluated from W^T y in O(k^2), without divisions.
double log_pseudo_joint(const Derived& dv, const StateTerms& t, const double* data,
                        const PatchData& pd, std::vector<double>& v) {
    if (!t.valid) return kMinusInf;
    const index_t k = t.k;
    if (k == 0) return -0.5 * pd.yy * dv.inv_s2;
    const double* active = data;
    const double* mu = data + k;
    const double* c = data + 2 * k;
    const double* Lambda = data + 3 * k;
    v.resize(2 * static_cast<std::size_t>(k));
    double* b = v.data() + k;
    double mu_wy = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double wy = pd.Wy[static_cast<index_t>(active[i])];
        b[i] = wy - c[i];
        mu_wy += mu[i] * wy;
    }
    const double residual = pd.yy - 2.0 * mu_wy + t.mu_c;  // |y - W_A mu_A|^2
    double b_lambda_b = 0.0;
    for (index_t i = 0; i < k; ++i) {
        double sum = 0.0;
        for (index_t j = 0; j < k; ++j) sum += Lambda[i * k + j] * b[j];
        v[i] = sum;
        b_lambda_b += b[i] * sum;
    }
    const double lpj =
        -t.constant - 0.5 * (residual * dv.inv_s2 - b_lambda_b * dv.inv_s2 * dv.inv_s2);
    return std::isfinite(lpj) ? lpj : kMinusInf;
}

}  // namespace sssc_detail
}  // namespace zse
